/* fuzz_manifest.c: the JSONL manifests on hostile bytes, through the
 * path-based readers the CLI uses (each input is written to
 * $TMPDIR/loom-fuzz-manifest.XXXXXX/manifest.jsonl):
 *
 *   speech_bank_load   `loom train --speech` and `loom eval listen --speech`
 *                      ({"audio", "text", "task", "scene", "reply", "voice"}),
 *                      then speech_bank_prepare / find / count
 *   source_open        `loom train --data X.jsonl`: text records, or records
 *                      with "image" / "audio" paths; then what train.c does
 *                      next with a small model (source_prepare, one training
 *                      batch, one evaluation batch)
 *
 * The manifest's directory holds a tiny WAV (a.wav: 50 ms, 16 kHz mono; b.wav:
 * 30 ms, 8 kHz stereo) and a tiny PPM (img.ppm: 9 x 9), so fuzzed records
 * that name them get past loading; other paths mostly do not exist, and that
 * is an error, not a crash. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_NAME "fuzz_manifest"
#include "fuzz_common.h"

#include "core/rng.h"
#include "encoders/audio_enc.h"
#include "fusion/sequence.h"
#include "fusion/tokenizer.h"
#include "model/model.h"
#include "train/source.h"
#include "train/speech_bank.h"

#define FUZZ_B 2
#define FUZZ_T 64

static int g_verbose; /* FUZZ_VERBOSE=1: what each reader made of the input, on stderr */
static char g_dir[4096];
static char g_manifest[4200];
static loom_model *g_model;
static fusion_batch g_fb;

static void write_file(const char *name, const void *p, size_t n) {
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) fail("cannot write", path);
}

static void put_le(uint8_t *p, uint32_t v, int bytes) {
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* A 16-bit PCM WAV of a 440 Hz square-ish wave. */
static void write_wav(const char *name, uint32_t rate, uint16_t channels, uint32_t frames) {
    const uint32_t data_bytes = frames * channels * 2;
    uint8_t *b = calloc(1, 44 + data_bytes);
    if (!b) fail("out of memory", NULL);
    memcpy(b, "RIFF", 4), put_le(b + 4, 36 + data_bytes, 4), memcpy(b + 8, "WAVEfmt ", 8);
    put_le(b + 16, 16, 4), put_le(b + 20, 1, 2), put_le(b + 22, channels, 2);
    put_le(b + 24, rate, 4), put_le(b + 28, rate * channels * 2, 4);
    put_le(b + 32, channels * 2u, 2), put_le(b + 34, 16, 2);
    memcpy(b + 36, "data", 4), put_le(b + 40, data_bytes, 4);
    for (uint32_t i = 0; i < frames * channels; i++)
        put_le(b + 44 + 2 * i, (uint16_t)(((i / channels) * 440u * 2u / rate) % 2 ? 8000 : -8000), 2);
    write_file(name, b, 44 + data_bytes);
    free(b);
}

static void cleanup(void) {
    const char *names[] = {"manifest.jsonl", "a.wav", "b.wav", "img.ppm"};
    char path[4300];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", g_dir, names[i]);
        unlink(path);
    }
    rmdir(g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    g_verbose = getenv("FUZZ_VERBOSE") != NULL;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/loom-fuzz-manifest.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) fail("mkdtemp", g_dir);
    atexit(cleanup);
    snprintf(g_manifest, sizeof g_manifest, "%s/manifest.jsonl", g_dir);
    write_wav("a.wav", 16000, 1, 800);
    write_wav("b.wav", 8000, 2, 240);
    uint8_t ppm[11 + 9 * 9 * 3];
    memcpy(ppm, "P6\n9 9\n255\n", 11);
    for (int i = 0; i < 9 * 9 * 3; i++) ppm[11 + i] = (uint8_t)(i * 37);
    write_file("img.ppm", ppm, sizeof ppm);

    /* the model train.c would build for such data: bytes-only tokenizer, image and audio input */
    loom_error err = {{0}};
    tokenizer *tok = tokenizer_from_merges(NULL, 0, &err);
    if (!tok) fail("tokenizer", err.msg);
    decoder_config cfg = decoder_default_config();
    cfg.vocab_size = tokenizer_vocab_size(tok);
    cfg.d_model = 8, cfg.n_layers = 1, cfg.n_heads = 2, cfg.n_kv_heads = 1, cfg.d_ff = 8;
    cfg.max_seq = FUZZ_T;
    model_image_config img = {.patch_size = 8, .max_patch_rows = 8, .max_patch_cols = 8};
    model_audio_config aud = {.stack = 4};
    g_model = model_new_ex(&cfg, &img, &aud, tok, &err);
    if (!g_model) fail("model", err.msg);
    const int64_t max_patches = (int64_t)FUZZ_B * 8 * 8, max_audio = (int64_t)FUZZ_B * FUZZ_T;
    if (fusion_batch_init(&g_fb, FUZZ_B, FUZZ_T, 8 * 8 * 3, max_patches, &err) ||
        fusion_batch_reserve_audio(&g_fb, (int32_t)audio_enc_dim(&g_model->acfg), max_audio, &err))
        fail("fusion batch", err.msg);
    return 0;
}

static void run_speech_bank(void) {
    loom_error err = {{0}};
    speech_bank b;
    if (speech_bank_load(&b, g_manifest, &err)) {
        if (g_verbose) fprintf(stderr, "speech_bank_load: %s\n", err.msg);
        if (b.u || b.n || b.by_text) fail("refused speech bank not emptied", err.msg);
        return;
    }
    if (g_verbose) fprintf(stderr, "speech_bank_load: %zu utterances\n", b.n);
    size_t counted = speech_bank_count(&b, SPEECH_TASK_OTHER) + speech_bank_count(&b, SPEECH_TASK_PROMPT) +
                     speech_bank_count(&b, SPEECH_TASK_QUESTION);
    if (counted != b.n) fail("speech_bank_count does not add up", NULL);
    for (size_t i = 0; i < b.n; i++) {
        size_t first, n = speech_bank_find(&b, b.u[i].text, &first);
        if (n < 1 || first + n > b.n) fail("speech_bank_find misses an utterance", b.u[i].text);
    }
    if (speech_bank_prepare(&b, g_model->aud.stack, &err) == 0)
        for (size_t i = 0; i < b.n; i++)
            if (b.u[i].n_pos < 1 || !b.u[i].frames) fail("prepared utterance without positions", b.u[i].path);
    speech_bank_free(&b);
}

/* What the model embeds must be in range: a token id, FUSION_PATCH or FUSION_AUDIO
 * backed by stored pixels / frames, and targets that are -1 or token ids. */
static void check_batch(const char *what) {
    const int32_t V = g_model->cfg.vocab_size;
    int64_t patches = 0, audio = 0;
    for (int64_t i = 0; i < (int64_t)g_fb.B * g_fb.T; i++) {
        const int32_t t = g_fb.tokens[i], y = g_fb.targets[i];
        if (t == FUSION_PATCH) patches++;
        else if (t == FUSION_AUDIO) audio++;
        else if (t < 0 || t >= V) fail(what, "token out of range");
        if (y < -1 || y >= V) fail(what, "target out of range");
    }
    if (patches != g_fb.n_patches || audio != g_fb.n_audio) fail(what, "patch/audio positions do not match the stored ones");
}

static void run_source(void) {
    loom_error err = {{0}};
    train_source s;
    if (source_open(&s, g_manifest, 0.25f, &err)) {
        if (g_verbose) fprintf(stderr, "source_open: %s\n", err.msg);
        return;
    }
    int rc = source_prepare(&s, g_model, FUZZ_T, &err);
    if (!rc) {
        loom_rng rng;
        rng_seed(&rng, 7);
        if (!(rc = source_sample(&s, g_model, &rng, &g_fb, &err))) check_batch("training batch");
        if (!rc && source_has_eval(&s) && !(rc = source_eval_batch(&s, g_model, 0, &g_fb, &err)))
            check_batch("evaluation batch");
    }
    if (g_verbose)
        fprintf(stderr, "source: kind %d, %zu records, %zu images, %zu audio; batches: %s\n", (int)s.kind,
                s.kind == SOURCE_TEXT ? s.raw.n : s.n_recs, s.n_images, s.n_audio, rc ? err.msg : "ok");
    source_close(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f = fopen(g_manifest, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) fail("cannot write", g_manifest);
    run_speech_bank();
    run_source();
    return 0;
}
