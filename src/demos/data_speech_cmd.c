/* loom data speech: spoken Shapes World prompts and questions, synthesized by
 * espeak-ng (data/speech.h) at data-build time, as WAV files and a manifest
 * that `loom train --speech` and `loom eval listen --speech` read
 * (train/speech_bank.h). Deterministic from the seed. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <sndfile.h>

#include "cli.h"
#include "core/clock.h"
#include "core/threads.h"
#include "data/shapes.h"
#include "data/shapes_prompt.h"
#include "data/speech.h"

static void data_speech_usage(FILE *f) {
    fprintf(f,
            "usage: loom data speech --n N --out DIR [--seed S] [--split train|heldout]\n"
            "                        [--questions X] [--max-objects K] [--drop P]\n"
            "\n"
            "N utterances spoken by espeak-ng, DIR/audio/000000.wav ... (16 kHz mono,\n"
            "16-bit), and DIR/manifest.jsonl, one record per utterance:\n"
            "  {\"audio\":\"audio/000000.wav\",\"text\":\"what color is the circle?\",\n"
            "   \"task\":\"question\",\"scene\":\"<caption>\",\"reply\":\"red\",\"voice\":\"...\"}\n"
            "  {\"audio\":\"audio/000001.wav\",\"text\":\"a red circle at the top left\",\n"
            "   \"task\":\"prompt\",\"scene\":\"<caption>\",\"voice\":\"...\"}\n"
            "A question is asked about its scene and \"reply\" is the answer; a prompt\n"
            "describes its scene with some attributes left out, as the image-generation\n"
            "rows of training do. Voices (accent, variant, speed, pitch) are drawn per\n"
            "utterance; the train and heldout splits use disjoint voice variants, and\n"
            "heldout scenes come from the test split's streams.\n"
            "\n"
            "  --split S         train (default) or heldout\n"
            "  --questions X     fraction of questions (default 0.5); the rest are prompts\n"
            "  --max-objects K   objects in a prompt's scene, 1..4 (default 2)\n"
            "  --drop P          each stated attribute of a prompt left out with\n"
            "                    probability P (default 0.25)\n"
            "  -t, --threads N   utterances made at once (default: all cores)\n");
}

static int write_wav(const char *path, const loom_audio *a) {
    SF_INFO info = {.samplerate = AUDIO_RATE, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
    SNDFILE *f = sf_open(path, SFM_WRITE, &info);
    if (!f) return -1;
    sf_command(f, SFC_SET_CLIPPING, NULL, SF_TRUE);
    sf_count_t n = sf_writef_float(f, a->samples, a->n);
    int rc = n == a->n ? 0 : -1;
    if (sf_close(f) != 0) rc = -1;
    return rc;
}

static int write_line(FILE *f, const char *audio, const char *text, const char *task,
                      const char *scene, const char *reply, const char *voice, const char *split,
                      double seconds) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return -1;
    cJSON_AddStringToObject(j, "audio", audio);
    cJSON_AddStringToObject(j, "text", text);
    cJSON_AddStringToObject(j, "task", task);
    cJSON_AddStringToObject(j, "scene", scene);
    if (reply) cJSON_AddStringToObject(j, "reply", reply);
    cJSON_AddStringToObject(j, "voice", voice);
    cJSON_AddStringToObject(j, "split", split);
    cJSON_AddNumberToObject(j, "seconds", (double)(int64_t)(seconds * 1000.0 + 0.5) / 1000.0);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) return -1;
    int rc = fputs(s, f) < 0 || fputc('\n', f) == EOF ? -1 : 0;
    cJSON_free(s);
    return rc;
}

int cmd_data_speech(int argc, char **argv) {
    int64_t n = -1, seed = 1, max_objects = 2;
    const char *out = NULL, *split_name = "train";
    int64_t threads = 0;
    float questions = 0.5f, drop = 0.25f;
    const cli_opt opts[] = {
        {NULL, "--n", CLI_INT, &n, 1, 10000000},
        {"-s", "--seed", CLI_INT, &seed, 0, 9e15},
        {NULL, "--out", CLI_STR, &out, 0, 0},
        {"-o", NULL, CLI_STR, &out, 0, 0},
        {NULL, "--split", CLI_STR, &split_name, 0, 0},
        {NULL, "--questions", CLI_FLOAT, &questions, 0, 1},
        {NULL, "--max-objects", CLI_INT, &max_objects, 1, SHAPES_MAX_OBJECTS},
        {NULL, "--drop", CLI_FLOAT, &drop, 0, 1},
        {"-t", "--threads", CLI_INT, &threads, 0, 1024},
        {0}};
    int n_pos = 0, prc = cli_parse("data speech", argc - 1, argv + 1, opts, NULL, &n_pos);
    if (prc == 1) data_speech_usage(stdout);
    if (prc) return prc < 0 ? 1 : 0;
    if (n < 0 || !out) {
        data_speech_usage(stderr);
        return cli_fail("data speech", "--n and --out are required");
    }
    loom_threads_set((int)threads);
    enum speech_split vsplit;
    enum shapes_split ssplit;
    if (!strcmp(split_name, "train")) vsplit = SPEECH_TRAIN, ssplit = SHAPES_SPLIT_TRAIN;
    else if (!strcmp(split_name, "heldout")) vsplit = SPEECH_HELDOUT, ssplit = SHAPES_SPLIT_TEST;
    else return cli_fail("--split", "want train or heldout");
    char dir[4096], manifest[4200];
    if (snprintf(dir, sizeof dir, "%s/audio", out) >= (int)sizeof dir) return cli_fail(out, "path too long");
    if (mkdir(out, 0777) != 0 && errno != EEXIST) return cli_fail(out, strerror(errno));
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return cli_fail(dir, strerror(errno));
    snprintf(manifest, sizeof manifest, "%s/manifest.jsonl", out);
    FILE *f = fopen(manifest, "w");
    if (!f) return cli_fail(manifest, strerror(errno));
    int rc = 0;
    double seconds = 0.0, t0 = clock_now_s();
    /* Utterances are made in parallel (each espeak-ng run is its own process)
     * and written in order; utterance i depends only on (seed, i). */
#pragma omp parallel for ordered schedule(dynamic, 1) reduction(+ : seconds)
    for (int64_t i = 0; i < n; i++) {
        int failed;
#pragma omp atomic read
        failed = rc;
        if (failed) continue;
        loom_rng rng;
        shapes_split_rng(&rng, ssplit, ((uint64_t)seed << 24) ^ (uint64_t)i ^ 0x5bee000000000000ull);
        shapes_scene sc;
        char text[SHAPES_CAPTION_MAX], scene[SHAPES_CAPTION_MAX], reply[SHAPES_ANSWER_MAX] = "";
        char why[8192] = "";
        const int question = rng_uniform(&rng) < questions;
        do shapes_scene_sample_split(&sc, ssplit, &rng);
        while (!question && sc.n > max_objects);
        if (shapes_caption(&sc, scene, sizeof scene) < 0) snprintf(why, sizeof why, "caption too long");
        if (!why[0] && question) {
            shapes_question q;
            if (shapes_question_sample_mix(&sc, &rng, &q)) {
                snprintf(why, sizeof why, "no question is askable about a scene");
            } else {
                snprintf(text, sizeof text, "%s", q.prompt);
                snprintf(reply, sizeof reply, "%s", q.answer);
            }
        } else if (!why[0]) {
            shapes_prompt p;
            if (shapes_prompt_from_scene(&sc, &rng, drop, &p) || shapes_prompt_format(&p, text, sizeof text) < 0)
                snprintf(why, sizeof why, "cannot make a prompt");
        }
        speech_voice v;
        speech_voice_sample(vsplit, &rng, &v);
        char voice[SPEECH_VOICE_FORMAT_MAX], rel[64], path[4200];
        speech_voice_format(&v, voice, sizeof voice);
        loom_error err = {{0}};
        loom_audio a = {0};
        snprintf(rel, sizeof rel, "audio/%06" PRId64 ".wav", i);
        snprintf(path, sizeof path, "%s/%s", out, rel);
        if (!why[0] && speech_synth(&v, text, &a, &err)) snprintf(why, sizeof why, "\"%s\": %s", text, err.msg);
        if (!why[0] && write_wav(path, &a)) snprintf(why, sizeof why, "%s: cannot write WAV", path);
        const double secs = (double)a.n / AUDIO_RATE;
        seconds += secs;
        audio_free(&a);
#pragma omp ordered
        {
            int r;
#pragma omp atomic read
            r = rc;
            if (!r && why[0]) r = cli_fail("data speech", why);
            else if (!r && write_line(f, rel, text, question ? "question" : "prompt", scene,
                                      question ? reply : NULL, voice, split_name, secs))
                r = cli_fail(manifest, "write failed");
#pragma omp atomic write
            rc = r;
        }
    }
    if (fclose(f) != 0 && rc == 0) rc = cli_fail(manifest, strerror(errno));
    if (!rc)
        fprintf(stderr, "loom: data speech: %" PRId64 " utterances, %.0f s of audio in %.1f s\n", n,
                seconds, clock_now_s() - t0);
    return rc;
}
