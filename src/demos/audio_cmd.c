/* loom listen / eval listen: the audio-in commands.
 *
 *   loom listen [-m MODEL] [-t N] AUDIO...       one transcript per file, in order
 *   loom eval listen [-m MODEL] --speech FILE    transcripts, spoken questions and spoken
 *                                                prompts of a `loom data speech` set
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/threads.h"
#include "data/shapes.h"
#include "data/shapes_analyze.h"
#include "data/shapes_prompt.h"
#include "encoders/audio.h"
#include "model/imagine_check.h"
#include "model/infer.h"
#include "model/model.h"
#include "train/speech_bank.h"

#define TRANSCRIPT_MAX_TOKENS INFER_ANSWER_MAX_TOKENS

/* ---- listen ---------------------------------------------------------------- */

static void listen_usage(FILE *f) {
    fprintf(f,
            "usage: loom listen [-m MODEL] [-t N] AUDIO...\n"
            "\n"
            "Prints what is said in each audio file (WAV, FLAC, OGG and whatever else\n"
            "libsndfile reads; any sample rate and channel count), one line each, in order.\n"
            "The model is loaded once. A file that cannot be read is reported on stderr, its\n"
            "line is left empty, and the exit status is 1.\n"
            "\n"
            "  -m, --model FILE     model (default %s)\n"
            "  -t, --threads N      threads (default: all cores)\n",
            CLI_SHAPES_MODEL);
}

int cmd_listen(int argc, char **argv) {
    const char *model = CLI_SHAPES_MODEL;
    int64_t threads = 0;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STR, &model, 0, 0},
        {"-t", "--threads", CLI_INT, &threads, 0, 1024},
        {0}};
    char **files = calloc((size_t)argc + 1, sizeof *files);
    if (!files) return cli_fail("listen", "out of memory");
    int n_files = 0, prc = cli_parse("listen", argc, argv, opts, files, &n_files);
    if (prc == 1) listen_usage(stdout);
    if (prc) {
        free(files);
        return prc < 0 ? 1 : 0;
    }
    if (n_files == 0) {
        free(files);
        listen_usage(stderr);
        return cli_fail("listen", "no audio files given");
    }
    loom_threads_set((int)threads);
    loom_infer *inf = NULL;
    loom_model *m = cli_load_model(model, CLI_NEED_AUDIO_IN, &inf);
    if (!m) {
        free(files);
        return 1;
    }
    int rc = 0;
    char out[4096];
    for (int i = 0; i < n_files; i++) {
        loom_error err = {{0}};
        loom_audio a = {0};
        infer_input in = {.audio = &a};
        if (audio_load_file(files[i], &a, &err) ||
            infer_answer_input(inf, &in, TRANSCRIPT_MAX_TOKENS, out, sizeof out, &err) < 0) {
            cli_fail(files[i], err.msg);
            printf("\n");
            rc = 1;
        } else {
            printf("%s\n", out);
        }
        fflush(stdout);
        audio_free(&a);
    }
    infer_free(inf);
    model_free(m);
    free(files);
    return rc;
}

/* ---- eval listen ----------------------------------------------------------- */

static void eval_listen_usage(FILE *f) {
    fprintf(f,
            "usage: loom eval listen [-m MODEL] --speech FILE [--n N] [--spoken MODE] [--temp T] [--cfg G]\n"
            "                        [-t N] [-v]\n"
            "\n"
            "Evaluates audio input on a spoken set written by `loom data speech` (use\n"
            "--split heldout there: voices never heard in training):\n"
            "  transcript   exact match of `loom listen` on every utterance\n"
            "  spoken VQA   each spoken question asked about its scene (rendered 64 x 64),\n"
            "               the answer compared exactly\n"
            "  imagine      each spoken prompt drawn, the image judged by the scene analyzer\n"
            "               against the prompt's text (as `loom eval imagine` does)\n"
            "Spoken VQA and imagine run both ways unless --spoken says which: direct (the\n"
            "audio positions in the sequence) and transcribe (the model transcribes the\n"
            "audio first, then answers or draws from the transcript as typed text).\n"
            "\n"
            "  -m, --model FILE     model (default %s)\n"
            "  --speech FILE        the set's manifest.jsonl\n"
            "  --n N                at most N utterances (default: all)\n"
            "  --spoken MODE        direct, transcribe or both (default both)\n"
            "  --temp T             imagine: sampling temperature (default %g, as loom imagine)\n"
            "  --cfg G              imagine: guidance scale, 1 = off (default %g)\n"
            "  --tries N            imagine: draws per prompt, the first the model's caption\n"
            "                       passes kept (default %d; direct: one draw, no text to check)\n"
            "  -t, --threads N      threads (default: all cores)\n"
            "  -v, --verbose        print every miss\n",
            CLI_SHAPES_MODEL, (double)IMAGINE_DEFAULT_TEMP, (double)IMAGINE_DEFAULT_CFG, IMAGINE_DEFAULT_TRIES);
}

int cmd_eval_listen(int argc, char **argv) {
    const char *model = CLI_SHAPES_MODEL, *speech = NULL, *spoken = "both";
    int64_t n = INT64_C(1) << 40, threads = 0, tries = IMAGINE_DEFAULT_TRIES;
    float temp = IMAGINE_DEFAULT_TEMP, cfg = IMAGINE_DEFAULT_CFG;
    int verbose = 0;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STR, &model, 0, 0},
        {NULL, "--speech", CLI_STR, &speech, 0, 0},
        {NULL, "--n", CLI_INT, &n, 1, (double)(INT64_C(1) << 40)},
        {NULL, "--spoken", CLI_STR, &spoken, 0, 0},
        {NULL, "--temp", CLI_FLOAT, &temp, 0, 100},
        {NULL, "--cfg", CLI_FLOAT, &cfg, -100, 100},
        {NULL, "--tries", CLI_INT, &tries, 1, 1000},
        {"-t", "--threads", CLI_INT, &threads, 0, 1024},
        {"-v", "--verbose", CLI_FLAG, &verbose, 0, 0},
        {0}};
    int n_pos = 0, prc = cli_parse("eval listen", argc, argv, opts, NULL, &n_pos);
    if (prc == 1) eval_listen_usage(stdout);
    if (prc) return prc < 0 ? 1 : 0;
    if (!speech) {
        eval_listen_usage(stderr);
        return cli_fail("eval listen", "--speech is required");
    }
    const int modes = !strcmp(spoken, "direct") ? 1 : !strcmp(spoken, "transcribe") ? 2 : !strcmp(spoken, "both") ? 3 : 0;
    if (!modes) return cli_fail("eval listen", "--spoken: want direct, transcribe or both");
    loom_threads_set((int)threads);
    loom_error err = {{0}};
    speech_bank bank;
    if (speech_bank_load(&bank, speech, &err)) return cli_fail("eval listen", err.msg);
    loom_infer *inf = NULL;
    loom_model *m = cli_load_model(model, CLI_NEED_AUDIO_IN, &inf);
    if (!m) {
        speech_bank_free(&bank);
        return 1;
    }
    const int can_vqa = m->img.patch_size > 0, can_gen = m->gen.n_codes > 0;
    const int32_t side = 64, H = can_gen ? model_gen_height(m) : 0, W = can_gen ? model_gen_width(m) : 0;
    uint8_t *rgb = malloc((size_t)side * side * 3), *gen = malloc((size_t)(H * W * 3 + 1));
    int32_t *codes = malloc((size_t)(can_gen ? m->gen.rows * m->gen.cols : 1) * sizeof *codes);
    int rc = 0;
    if (!rgb || !gen || !codes) rc = cli_fail("eval listen", "out of memory");
    /* K_VQA + mode and K_IMAGINE + mode, mode 0 direct, 1 transcribe */
    enum { K_TRANSCRIPT, K_VQA, K_VQA_T, K_IMAGINE, K_IMAGINE_T, N_KINDS };
    static const char *const kname[N_KINDS] = {"transcript", "spoken VQA", "spoken VQA, transcribed",
                                               "imagine", "imagine, transcribed"};
    int64_t right[N_KINDS] = {0}, total[N_KINDS] = {0};
    char out[4096];
    const size_t count = (size_t)n < bank.n ? (size_t)n : bank.n;
    for (size_t i = 0; i < count && !rc; i++) {
        const speech_utt *u = &bank.u[i];
        infer_input in = {.audio = &u->audio};
        /* the transcript */
        if (infer_answer_input(inf, &in, TRANSCRIPT_MAX_TOKENS, out, sizeof out, &err) < 0) {
            rc = cli_fail(u->path, err.msg);
            break;
        }
        int ok = strcmp(out, u->text) == 0;
        right[K_TRANSCRIPT] += ok, total[K_TRANSCRIPT]++;
        if (!ok && verbose) fprintf(stderr, "[transcript] %s (%s)\n  said:  %s\n  heard: %s\n", u->path,
                                    u->voice ? u->voice : "?", u->text, out);
        shapes_scene sc;
        if (u->task == SPEECH_TASK_QUESTION && can_vqa) {
            loom_rng rng;
            rng_seed(&rng, 0x5ceeull + i);
            if (shapes_scene_from_caption(u->scene, &sc, &err) ||
                shapes_scene_layout(&sc, side, side, &rng, &err) || shapes_render(&sc, rgb, &rng, &err)) {
                rc = cli_fail(u->path, err.msg);
                break;
            }
            loom_image img = {.width = side, .height = side, .rgb = rgb};
            for (int mode = 0; mode < 2 && !rc; mode++) {
                if (!(modes >> mode & 1)) continue;
                infer_input q = {.image = &img, .audio = &u->audio,
                                 .spoken = mode ? INFER_SPOKEN_TRANSCRIBE : INFER_SPOKEN_DIRECT};
                if (infer_answer_input(inf, &q, TRANSCRIPT_MAX_TOKENS, out, sizeof out, &err) < 0) {
                    if (!mode) {
                        rc = cli_fail(u->path, err.msg);
                        break;
                    }
                    /* a transcript too long to ask with is the model's miss, not the input's fault */
                    snprintf(out, sizeof out, "(%s)", err.msg);
                }
                ok = strcmp(out, u->reply) == 0;
                right[K_VQA + mode] += ok, total[K_VQA + mode]++;
                if (!ok && verbose) fprintf(stderr, "[%s] %s: \"%s\" about \"%s\": want %s, got %s\n",
                                            kname[K_VQA + mode], u->path, u->text, u->scene, u->reply, out);
            }
            if (rc) break;
        }
        if (u->task == SPEECH_TASK_PROMPT && can_gen) {
            shapes_prompt p;
            shapes_scene got;
            int found;
            infer_imagine_params ip = {.sampling = {.temp = temp, .top_p = 1.0f}, .cfg_scale = cfg,
                                       .seed = (uint64_t)i};
            if (shapes_prompt_parse(u->text, &p, &err)) {
                rc = cli_fail(u->path, err.msg);
                break;
            }
            for (int mode = 0; mode < 2 && !rc; mode++) {
                if (!(modes >> mode & 1)) continue;
                infer_input q = {.audio = &u->audio, .spoken = mode ? INFER_SPOKEN_TRANSCRIBE : INFER_SPOKEN_DIRECT};
                imagine_check_result res;
                const int drawn = imagine_checked(inf, &q, &ip, (int32_t)tries, codes, gen, &res, &err);
                if (drawn && mode) {
                    total[K_IMAGINE + mode]++; /* the model's miss, as above */
                    if (verbose) fprintf(stderr, "[%s] %s: %s\n  %s\n", kname[K_IMAGINE + mode], u->path, u->text, err.msg);
                    continue;
                }
                if (drawn || (found = shapes_analyze(gen, W, H, &got, &err)) < 0) {
                    rc = cli_fail(u->path, err.msg);
                    break;
                }
                ok = found == got.n && shapes_prompt_matches(&p, &got);
                right[K_IMAGINE + mode] += ok, total[K_IMAGINE + mode]++;
                if (!ok && verbose) {
                    char seen[SHAPES_CAPTION_MAX];
                    if (shapes_caption(&got, seen, sizeof seen) < 0 || got.n == 0) snprintf(seen, sizeof seen, "(nothing)");
                    fprintf(stderr, "[%s] %s: %s\n  drawn: %s\n", kname[K_IMAGINE + mode], u->path, u->text, seen);
                }
            }
            if (rc) break;
        }
    }
    if (!rc) {
        printf("loom eval listen: %s on %s (%zu utterances, %.0f s of audio)\n", model, speech,
               count, bank.seconds * (double)count / (double)bank.n);
        if (total[K_IMAGINE] + total[K_IMAGINE_T])
            printf("imagine: temperature %g, guidance %g, up to %" PRId64 " draw%s\n", (double)temp, (double)cfg,
                   tries, tries == 1 ? "" : "s");
        printf("\n");
        printf("%-24s %8s %8s\n", "task", "right", "of");
        for (int k = 0; k < N_KINDS; k++)
            if (total[k]) printf("%-24s %7.1f%% %8" PRId64 "\n", kname[k], 100.0 * right[k] / total[k], total[k]);
    }
    free(rgb), free(gen), free(codes);
    infer_free(inf);
    model_free(m);
    speech_bank_free(&bank);
    return rc;
}
