/* mel_bench: the log-mel spectrogram of 30 s of 16 kHz audio (whisper's
 * parameters, src/encoders/mel.h), timed over repeats; prints one JSON line
 * {"seconds_audio":30,"ms_median":..,"ms_min":..,"repeats":..,"threads":..,
 *  "ms_median_naive":..} and, with --dump FILE, writes the signal and loom's
 * spectrogram (float32, raw) so bench/mel_torch.py can time torchaudio on the
 * same input and compare.
 *
 *   mel_bench [--repeats N] [--threads N] [--dump FILE]
 *
 * --threads is loom's thread knob (core/threads.h; default: all cores).
 * ms_median_naive times mel_compute_ref, the one-thread double-precision
 * reference, on the same signal (a few repeats), and max_diff_naive is the
 * largest difference between the two spectrograms. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/threads.h"
#include "encoders/mel.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int repeats = 20, threads = 0;
    const char *dump = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dump") && i + 1 < argc) dump = argv[++i];
        else {
            fprintf(stderr, "usage: mel_bench [--repeats N] [--threads N] [--dump FILE]\n");
            return 2;
        }
    }
    if (repeats < 1 || repeats > 10000) repeats = 20;
    if (threads < 0 || threads > 1024) threads = 0;
    threads = loom_threads_set(threads);
    const int64_t n = (int64_t)30 * MEL_RATE, T = mel_frames(n);
    float *x = malloc((size_t)n * sizeof *x), *mel = malloc((size_t)T * MEL_BINS * sizeof *mel);
    float *naive = malloc((size_t)T * MEL_BINS * sizeof *naive);
    double *ms = malloc((size_t)repeats * sizeof *ms), ms_naive[5];
    if (!x || !mel || !naive || !ms) return 1;
    /* a speech-like signal: a gliding harmonic tone with noise, silent gaps */
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int64_t i = 0; i < n; i++) {
        double t = (double)i / MEL_RATE, f0 = 120.0 + 60.0 * sin(0.7 * t);
        double v = 0.0;
        for (int h = 1; h <= 8; h++) v += sin(6.283185307179586 * f0 * h * t) / h;
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        v = 0.2 * v + 0.01 * ((double)(s >> 11) / 9007199254740992.0 - 0.5);
        x[i] = fmod(t, 2.0) < 1.6 ? (float)v : 0.0f;
    }
    loom_error err = {{0}};
    if (mel_compute(x, n, mel, &err)) { /* warm-up: the FFTW plan */
        fprintf(stderr, "mel_bench: %s\n", err.msg);
        return 1;
    }
    for (int r = 0; r < repeats; r++) {
        double t0 = clock_now_s();
        mel_compute(x, n, mel, &err);
        ms[r] = 1000.0 * (clock_now_s() - t0);
    }
    qsort(ms, (size_t)repeats, sizeof *ms, cmp_double);
    for (int r = 0; r < 5; r++) {
        double t0 = clock_now_s();
        if (mel_compute_ref(x, n, naive, &err)) {
            fprintf(stderr, "mel_bench: %s\n", err.msg);
            return 1;
        }
        ms_naive[r] = 1000.0 * (clock_now_s() - t0);
    }
    qsort(ms_naive, 5, sizeof *ms_naive, cmp_double);
    double max_diff = 0.0;
    for (int64_t i = 0; i < T * MEL_BINS; i++) max_diff = fmax(max_diff, fabs((double)mel[i] - naive[i]));
    if (dump) {
        FILE *f = fopen(dump, "wb");
        if (!f || fwrite(x, sizeof *x, (size_t)n, f) != (size_t)n ||
            fwrite(mel, sizeof *mel, (size_t)T * MEL_BINS, f) != (size_t)T * MEL_BINS || fclose(f)) {
            fprintf(stderr, "mel_bench: %s: cannot write\n", dump);
            return 1;
        }
    }
    printf("{\"seconds_audio\":30,\"samples\":%lld,\"frames\":%lld,\"ms_median\":%.3f,\"ms_min\":%.3f,"
           "\"repeats\":%d,\"threads\":%d,\"ms_median_naive\":%.3f,\"max_diff_naive\":%.2e}\n",
           (long long)n, (long long)T, ms[repeats / 2], ms[0], repeats, threads, ms_naive[2], max_diff);
    free(x), free(mel), free(naive), free(ms);
    return 0;
}
