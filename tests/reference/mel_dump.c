/* mel_dump: writes test signals and loom's log-mel spectrograms of them for
 * mel_parity.py to recompute with whisper's formula in PyTorch.
 *
 *   mel_dump --out DIR        writes DIR/mel.safetensors:
 *
 *   case<i>.x       F32 (n)              16 kHz mono samples
 *   case<i>.mel     F32 (80, n / 160)    loom's mel_compute (the fast path)
 *   case<i>.mel_ref F32 (80, n / 160)    loom's mel_compute_ref (its naive oracle)
 *   filters         F64 (80, 201)        loom's filterbank (also compared)
 *   __metadata__    n_cases
 *
 * Cases: two tones (440 Hz and 3 kHz), white noise of a length that is no
 * multiple of the hop, a chirp 50 Hz -> 7.9 kHz, a click in near silence (the
 * max - 8 floor), the shortest input (201 samples), and a loud 60 Hz tone over
 * noise 63 dB down (mel values at the floor of the loudest frames, where
 * rounding in the FFT shows most: an FFT in single precision is off by 3.8e-5
 * here, by up to 1.4e-4 on similar signals in tests/test_mel.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/rng.h"
#include "core/safetensors.h"
#include "encoders/mel.h"

#define N_CASES 6
#define PI 3.14159265358979323846

static void die(const char *what, const loom_error *err) {
    fprintf(stderr, "mel_dump: %s: %s\n", what, err ? err->msg : "failed");
    exit(1);
}

int main(int argc, char **argv) {
    const char *out = NULL;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
    if (!out) {
        fprintf(stderr, "usage: mel_dump --out DIR\n");
        return 2;
    }
    mkdir(out, 0755);
    static const int64_t lens[N_CASES] = {16000, 11237, 36800, 8000, 201, 16000};
    loom_error err = {{0}};
    loom_rng rng;
    rng_seed(&rng, 42);
    st_writer *sw = st_writer_new();
    float *x[N_CASES], *mel[N_CASES], *mel_ref[N_CASES];
    int rc = 0;
    for (int c = 0; c < N_CASES; c++) {
        const int64_t n = lens[c], T = mel_frames(n);
        x[c] = malloc((size_t)n * sizeof(float));
        mel[c] = malloc((size_t)(T ? T : 1) * MEL_BINS * sizeof(float));
        mel_ref[c] = malloc((size_t)(T ? T : 1) * MEL_BINS * sizeof(float));
        for (int64_t i = 0; i < n; i++) {
            double t = (double)i / MEL_RATE, v = 0.0;
            switch (c) {
            case 0: v = 0.5 * sin(2 * PI * 440 * t) + 0.3 * sin(2 * PI * 3000 * t); break;
            case 1: v = 0.4 * (2.0 * rng_uniform(&rng) - 1.0); break;
            case 2: v = 0.6 * sin(2 * PI * (50 * t + (7900.0 - 50.0) / (2 * 2.3) * t * t)); break;
            case 3: v = (i == 4000 ? 0.9 : 0.0) + 1e-6 * (2.0 * rng_uniform(&rng) - 1.0); break;
            case 4: v = 0.25 * cos(2 * PI * 1000 * t); break;
            default: v = 0.9 * sin(2 * PI * 60 * t) + 6.5e-4 * (2.0 * rng_uniform(&rng) - 1.0); break;
            }
            x[c][i] = (float)v;
        }
        if (mel_compute(x[c], n, mel[c], &err)) die("mel_compute", &err);
        if (mel_compute_ref(x[c], n, mel_ref[c], &err)) die("mel_compute_ref", &err);
        char name[64];
        int64_t xs[1] = {n}, ms[2] = {MEL_BINS, T};
        snprintf(name, sizeof name, "case%d.x", c);
        rc |= st_writer_add(sw, name, ST_F32, 1, xs, x[c], &err);
        snprintf(name, sizeof name, "case%d.mel", c);
        rc |= st_writer_add(sw, name, ST_F32, 2, ms, mel[c], &err);
        snprintf(name, sizeof name, "case%d.mel_ref", c);
        rc |= st_writer_add(sw, name, ST_F32, 2, ms, mel_ref[c], &err);
    }
    double *filt = malloc(MEL_BINS * (MEL_N_FFT / 2 + 1) * sizeof(double));
    mel_filters(filt);
    int64_t fs[2] = {MEL_BINS, MEL_N_FFT / 2 + 1};
    rc |= st_writer_add(sw, "filters", ST_F64, 2, fs, filt, &err);
    char nc[16];
    snprintf(nc, sizeof nc, "%d", N_CASES);
    rc |= st_writer_meta(sw, "n_cases", nc, &err);
    /* too short: refused with a message */
    float tiny[200] = {0};
    float tiny_out[MEL_BINS];
    if (mel_compute(tiny, 200, tiny_out, &err) == 0) die("200 samples were accepted", NULL);
    char path[4096];
    snprintf(path, sizeof path, "%s/mel.safetensors", out);
    if (rc || st_writer_save(sw, path, &err)) die(path, &err);
    st_writer_free(sw);
    for (int c = 0; c < N_CASES; c++) free(x[c]), free(mel[c]), free(mel_ref[c]);
    free(filt);
    printf("mel_dump: wrote %s (%d cases)\n", path, N_CASES);
    return 0;
}
