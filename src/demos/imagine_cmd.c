/* loom imagine / loom eval imagine: the image-out commands.
 *
 *   loom imagine [-m MODEL] -p PROMPT -o OUT.png [-s SEED] [--temp T] [-n K] [--scale S]
 *   loom eval imagine [-m MODEL] [--n N] [--seed S]   prompt match and VQ reconstruction
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/threads.h"
#include "data/shapes.h"
#include "data/shapes_analyze.h"
#include "data/shapes_prompt.h"
#include "heads/png.h"
#include "model/imagine_check.h"
#include "model/infer.h"
#include "model/model.h"



/* Nearest-neighbour upscale by s (s = 1: a copy). */
static uint8_t *upscale(const uint8_t *rgb, int32_t W, int32_t H, int32_t s) {
    uint8_t *out = malloc((size_t)W * s * H * s * 3);
    if (!out) return NULL;
    for (int32_t y = 0; y < H * s; y++)
        for (int32_t x = 0; x < W * s; x++)
            memcpy(out + ((size_t)y * W * s + x) * 3, rgb + ((size_t)(y / s) * W + x / s) * 3, 3);
    return out;
}

/* OUT.png with k of n: OUT.png itself for n == 1, else OUT-k.png. */
static int nth_path(char *buf, size_t cap, const char *out, int64_t k, int64_t n) {
    if (n == 1) return snprintf(buf, cap, "%s", out) >= (int)cap ? -1 : 0;
    const char *dot = strrchr(out, '.'), *slash = strrchr(out, '/');
    if (!dot || (slash && dot < slash)) dot = out + strlen(out);
    return snprintf(buf, cap, "%.*s-%" PRId64 "%s", (int)(dot - out), out, k, dot) >= (int)cap ? -1 : 0;
}

/* ---- imagine --------------------------------------------------------------- */

static void imagine_usage(FILE *f) {
    fprintf(f,
            "usage: loom imagine [-m MODEL] (-p PROMPT | --audio FILE) -o OUT.png [options]\n"
            "\n"
            "Draws the scene a prompt describes, e.g. \"a large red circle at the top left\"\n"
            "(size, color and position may be left out: \"a red circle\"), and writes a PNG\n"
            "with the prompt, seed and model in its text chunks. The same model, prompt and\n"
            "seed give the same bytes.\n"
            "\n"
            "  -m, --model FILE     model (default %s)\n"
            "  -p, --prompt TEXT    what to draw\n"
            "  --audio FILE         what to draw, spoken (models with audio input)\n"
            CLI_SPOKEN_HELP
            "  -o, --out FILE       output PNG; with -n K > 1, FILE-1.png ... FILE-K.png\n"
            "  -s, --seed N         sampling seed (default 0); image k uses seed + k - 1\n"
            "  --temp T             sampling temperature, 0 = greedy (default %g)\n"
            "  --top-k K            sample among the K likeliest codes, 0 = all (default 0)\n"
            "  --cfg G              classifier-free guidance scale, 1 = off (default %g)\n"
            "  --tries N            draw up to N times, keeping the first image that the\n"
            "                       model's own caption of it says answers the prompt\n"
            "                       (Shapes World prompts; else one draw) (default %d)\n"
            "  -n K                 images to draw (default 1)\n"
            "  --scale S            upscale the PNG S times for viewing (default 1)\n"
            "  -t, --threads N      threads (default: all cores)\n",
            CLI_SHAPES_MODEL, (double)IMAGINE_DEFAULT_TEMP, (double)IMAGINE_DEFAULT_CFG, IMAGINE_DEFAULT_TRIES);
}

int cmd_imagine(int argc, char **argv) {
    const char *model = CLI_SHAPES_MODEL, *prompt = NULL, *out = NULL, *audio = NULL, *spoken = "transcribe";
    int64_t seed = 0, n = 1, scale = 1, top_k = 0, threads = 0, tries = IMAGINE_DEFAULT_TRIES;
    float temp = IMAGINE_DEFAULT_TEMP, cfg = IMAGINE_DEFAULT_CFG;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STR, &model, 0, 0},
        {"-p", "--prompt", CLI_STR, &prompt, 0, 0},
        {NULL, "--audio", CLI_STR, &audio, 0, 0},
        {NULL, "--spoken", CLI_STR, &spoken, 0, 0},
        {"-o", "--out", CLI_STR, &out, 0, 0},
        {"-s", "--seed", CLI_INT, &seed, 0, (double)(INT64_C(1) << 53)},
        {NULL, "--temp", CLI_FLOAT, &temp, 0, 100},
        {NULL, "--top-k", CLI_INT, &top_k, 0, 1 << 20},
        {NULL, "--cfg", CLI_FLOAT, &cfg, -100, 100},
        {NULL, "--tries", CLI_INT, &tries, 1, 1000},
        {"-n", NULL, CLI_INT, &n, 1, 10000},
        {NULL, "--scale", CLI_INT, &scale, 1, 64},
        {"-t", "--threads", CLI_INT, &threads, 0, 1024},
        {0}};
    int n_pos = 0, prc = cli_parse("imagine", argc, argv, opts, NULL, &n_pos);
    if (prc == 1) imagine_usage(stdout);
    if (prc) return prc < 0 ? 1 : 0;
    if ((!prompt && !audio) || !out) {
        imagine_usage(stderr);
        return cli_fail("imagine", "-p (or --audio) and -o are required");
    }
    if (prompt && audio) return cli_fail("imagine", "give the prompt as -p or as --audio, not both");
    int transcribe = 1;
    if (cli_spoken(spoken, &transcribe)) return 1;
    loom_threads_set((int)threads);
    loom_error lerr = {{0}};
    loom_audio aud = {0};
    if (audio && audio_load_file(audio, &aud, &lerr)) return cli_fail(audio, lerr.msg);
    loom_infer *inf = NULL;
    loom_model *m = cli_load_model(model, CLI_NEED_IMAGE_OUT | (audio ? CLI_NEED_AUDIO_IN : 0), &inf);
    if (!m) {
        audio_free(&aud);
        return 1;
    }
    infer_input in = {.audio = audio ? &aud : NULL, .prompt = prompt, .prompt_len = prompt ? strlen(prompt) : 0,
                      .spoken = transcribe ? INFER_SPOKEN_TRANSCRIBE : INFER_SPOKEN_DIRECT};
    const int32_t R = m->gen.rows, C = m->gen.cols, H = model_gen_height(m), W = model_gen_width(m);
    int32_t *codes = malloc((size_t)R * C * sizeof *codes);
    uint8_t *rgb = malloc((size_t)W * H * 3);
    int rc = 0;
    if (!codes || !rgb) rc = cli_fail("imagine", "out of memory");
    for (int64_t k = 0; k < n && !rc; k++) {
        loom_error err = {{0}};
        infer_imagine_params p = {.sampling = {.temp = temp, .top_k = (int32_t)top_k, .top_p = 1.0f},
                                  .cfg_scale = cfg, .seed = (uint64_t)(seed + k)};
        char path[4096];
        if (nth_path(path, sizeof path, out, k + 1, n)) {
            rc = cli_fail(out, "path too long");
            break;
        }
        imagine_check_result res;
        if (imagine_checked(inf, &in, &p, (int32_t)tries, codes, rgb, &res, &err)) {
            rc = cli_fail("imagine", err.msg);
            break;
        }
        uint8_t *big = upscale(rgb, W, H, (int32_t)scale);
        if (!big) {
            rc = cli_fail("imagine", "out of memory");
            break;
        }
        imagine_meta meta;
        imagine_meta_fill(&meta, &in, prompt ? prompt : audio, model, &p, (int32_t)tries, &res);
        if (res.checked && !res.passed && tries > 1)
            fprintf(stderr, "loom: imagine: %s: none of %d draws read back as the prompt; kept the first (read as \"%s\")\n",
                    path, res.draws, res.caption);
        if (png_write_file(path, big, W * (int32_t)scale, H * (int32_t)scale, meta.text, meta.n, &err))
            rc = cli_fail("imagine", err.msg);
        else
            printf("%s\n", path);
        free(big);
    }
    free(codes);
    free(rgb);
    audio_free(&aud);
    infer_free(inf);
    model_free(m);
    return rc;
}

/* ---- eval imagine ------------------------------------------------------------ */

static void eval_imagine_usage(FILE *f) {
    fprintf(f,
            "usage: loom eval imagine [-m MODEL] [--n N] [--seed S] [--temp T] [--cfg G] [--tries N] [-t N] [-v]\n"
            "\n"
            "Judges generated images with the classical scene analyzer (data/shapes_analyze.h):\n"
            "for N prompts of each kind (full captions of test-split scenes; partial prompts,\n"
            "each attribute but the shape left out with probability 1/2; full captions of\n"
            "held-out attribute combinations) it draws an image and checks that it holds\n"
            "exactly the stated objects with every stated attribute. Also the VQ head alone:\n"
            "reconstruction PSNR of N test-split scenes and how many reconstructions the\n"
            "analyzer reads back exactly.\n"
            "\n"
            "  -m, --model FILE     model (default %s)\n"
            "  --n N                prompts per kind and scenes for the VQ (default 100)\n"
            "  --seed S             first scene seed (default 0)\n"
            "  --temp T             sampling temperature (default %g, as loom imagine)\n"
            "  --top-k K            (default 0: all)\n"
            "  --cfg G              classifier-free guidance scale, 1 = off (default %g)\n"
            "  --tries N            draws per prompt, the first the model's caption passes\n"
            "                       kept (loom imagine --tries; default %d); 1 judges the\n"
            "                       model's single draws\n"
            "  -t, --threads N      threads (default: all cores)\n"
            "  -v, --verbose        print every miss\n",
            CLI_SHAPES_MODEL, (double)IMAGINE_DEFAULT_TEMP, (double)IMAGINE_DEFAULT_CFG, IMAGINE_DEFAULT_TRIES);
}


int cmd_eval_imagine(int argc, char **argv) {
    const char *model = CLI_SHAPES_MODEL;
    int64_t n = 100, seed = 0, top_k = 0, threads = 0, tries = IMAGINE_DEFAULT_TRIES;
    float temp = IMAGINE_DEFAULT_TEMP, cfg = IMAGINE_DEFAULT_CFG;
    int verbose = 0;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STR, &model, 0, 0},
        {NULL, "--n", CLI_INT, &n, 1, 1000000},
        {NULL, "--seed", CLI_INT, &seed, 0, (double)(INT64_C(1) << 40)},
        {NULL, "--temp", CLI_FLOAT, &temp, 0, 100},
        {NULL, "--top-k", CLI_INT, &top_k, 0, 1 << 20},
        {NULL, "--cfg", CLI_FLOAT, &cfg, -100, 100},
        {NULL, "--tries", CLI_INT, &tries, 1, 1000},
        {"-t", "--threads", CLI_INT, &threads, 0, 1024},
        {"-v", "--verbose", CLI_FLAG, &verbose, 0, 0},
        {0}};
    int n_pos = 0, prc = cli_parse("eval imagine", argc, argv, opts, NULL, &n_pos);
    if (prc == 1) eval_imagine_usage(stdout);
    if (prc) return prc < 0 ? 1 : 0;
    loom_threads_set((int)threads);
    loom_infer *inf = NULL;
    loom_model *m = cli_load_model(model, CLI_NEED_IMAGE_OUT, &inf);
    if (!m) return 1;
    const int32_t H = model_gen_height(m), W = model_gen_width(m), nc = m->gen.rows * m->gen.cols;
    uint8_t *rgb = malloc((size_t)W * H * 3), *rec = malloc((size_t)W * H * 3);
    int32_t *codes = malloc((size_t)nc * sizeof *codes);
    loom_error err = {{0}};
    int rc = 0;
    if (!rgb || !rec || !codes) rc = cli_fail("eval imagine", "out of memory");
    enum { K_FULL, K_PARTIAL, K_COMBOS, N_KINDS };
    static const char *const kname[N_KINDS] = {"full", "partial", "combos"};
    int64_t right[N_KINDS] = {0}, total[N_KINDS] = {0}, draws = 0, passed = 0, false_pass = 0;
    imagine_check_result res;
    for (int kind = 0; kind < N_KINDS && !rc; kind++)
        for (int64_t i = 0; i < n && !rc; i++) {
            const enum shapes_split split = kind == K_COMBOS ? SHAPES_SPLIT_COMBOS : SHAPES_SPLIT_TEST;
            loom_rng rng;
            shapes_split_rng(&rng, split, ((uint64_t)(seed + i) << 2) ^ 0x1a6e0000ull);
            shapes_scene sc;
            shapes_prompt p;
            char text[256];
            shapes_scene_sample_split(&sc, split, &rng);
            if (shapes_prompt_from_scene(&sc, &rng, kind == K_PARTIAL ? 0.5f : 0.0f, &p) ||
                shapes_prompt_format(&p, text, sizeof text) < 0) {
                rc = cli_fail("eval imagine", "cannot make a prompt");
                break;
            }
            infer_imagine_params ip = {.sampling = {.temp = temp, .top_k = (int32_t)top_k, .top_p = 1.0f},
                                       .cfg_scale = cfg, .seed = (uint64_t)(seed + i)};
            shapes_scene got;
            int found;
            const infer_input in = {.prompt = text, .prompt_len = strlen(text)};
            if (imagine_checked(inf, &in, &ip, (int32_t)tries, codes, rgb, &res, &err) ||
                (found = shapes_analyze(rgb, W, H, &got, &err)) < 0) {
                rc = cli_fail("eval imagine", err.msg);
                break;
            }
            int ok = found == got.n && shapes_prompt_matches(&p, &got);
            right[kind] += ok;
            total[kind]++;
            draws += res.draws, passed += res.passed, false_pass += res.passed && !ok;
            if (!ok && verbose) {
                char seen[SHAPES_CAPTION_MAX];
                if (shapes_caption(&got, seen, sizeof seen) < 0 || got.n == 0) snprintf(seen, sizeof seen, "(nothing)");
                fprintf(stderr, "[%s] prompt: %s\n  drawn:  %s%s\n", kname[kind], text, seen,
                        found > got.n ? " (and more)" : "");
            }
        }
    /* the VQ head alone: reconstructions of test-split scenes */
    double se = 0.0;
    int64_t vq_right = 0;
    for (int64_t i = 0; i < n && !rc; i++) {
        loom_rng rng;
        shapes_split_rng(&rng, SHAPES_SPLIT_TEST, ((uint64_t)(seed + i) << 2) ^ 0x7a5e0001ull);
        shapes_scene sc;
        shapes_scene_sample_split(&sc, SHAPES_SPLIT_TEST, &rng);
        int ok;
        if (shapes_scene_layout(&sc, W, H, &rng, &err) || shapes_render(&sc, rgb, &rng, &err) ||
            model_encode_images(m, rgb, 1, H, W, codes, &err) || model_decode_codes(m, codes, rec, &err) ||
            (ok = shapes_analyze_reads_back(rec, W, H, &sc, &err)) < 0) {
            rc = cli_fail("eval imagine", err.msg);
            break;
        }
        vq_right += ok;
        for (size_t k = 0; k < (size_t)W * H * 3; k++) {
            double d = (double)rgb[k] - (double)rec[k];
            se += d * d;
        }
    }
    if (!rc) {
        printf("loom eval imagine: %s, %" PRId64 " prompts per kind, temperature %g, top-k %" PRId64
               ", guidance %g, up to %" PRId64 " draw%s\n\n", model, n, (double)temp, top_k, (double)cfg, tries,
               tries == 1 ? "" : "s");
        printf("%-10s %14s\n", "prompts", "scene match");
        int64_t r = 0, t = 0;
        for (int k = 0; k < N_KINDS; k++) {
            printf("%-10s %13.1f%%\n", kname[k], total[k] ? 100.0 * right[k] / total[k] : 0.0);
            r += right[k], t += total[k];
        }
        printf("%-10s %13.1f%%\n\n", "all", t ? 100.0 * r / t : 0.0);
        if (tries > 1)
            printf("up to %" PRId64 " draws per prompt, kept when the model's caption of it answers the prompt:\n"
                   "%.2f draws per prompt; the caption passed %.1f%% of the kept images, %.1f%% wrongly\n\n",
                   tries, t ? (double)draws / t : 0.0, t ? 100.0 * passed / t : 0.0, t ? 100.0 * false_pass / t : 0.0);
        double mse = se / ((double)n * W * H * 3);
        printf("VQ reconstruction of %" PRId64 " test scenes: PSNR %.2f dB, analyzer reads back %.1f%%\n",
               n, mse > 0 ? 10.0 * log10(255.0 * 255.0 / mse) : INFINITY, 100.0 * vq_right / n);
    }
    free(rgb), free(rec), free(codes);
    infer_free(inf);
    model_free(m);
    return rc;
}
