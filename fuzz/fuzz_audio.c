/* fuzz_audio.c: audio decoding and the audio front end on hostile bytes, as
 * `loom listen` runs them: audio_load_memory (libsndfile from memory, the
 * limits of audio.h, downmix, libsamplerate to 16 kHz), mel_compute, and
 * audio_enc_prepare (log-mel grouped 4 frames a position, the default stack).
 *
 * Checked beyond "no sanitizer report": a refused file leaves *a zeroed;
 * decoded samples are finite; the log-mel is finite and, as whisper's
 * formula clamps it, within 2 of its maximum; grouping gives
 * ceil(frames / stack) positions. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_NAME "fuzz_audio"
#include "fuzz_common.h"

#include "encoders/audio.h"
#include "encoders/audio_enc.h"
#include "encoders/mel.h"

#define FUZZ_STACK 4

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    loom_error err = {{0}};
    loom_audio a;
    if (audio_load_memory(data, size, "fuzz", &a, &err)) {
        if (a.samples || a.n) fail("refused audio not zeroed", err.msg);
        if (!err.msg[0]) fail("refused audio without a message", NULL);
        return 0;
    }
    if (a.n < 1 || !a.samples) fail("decoded audio is empty", NULL);
    for (int64_t i = 0; i < a.n; i++)
        if (!isfinite(a.samples[i])) fail("decoded sample not finite", NULL);

    /* the spectrogram on its own: too short an input must be an error, not a read past the end */
    const int64_t T = mel_frames(a.n);
    float *mel = malloc((size_t)(T > 0 ? T : 1) * MEL_BINS * sizeof *mel);
    if (!mel) fail("out of memory", NULL);
    if (mel_compute(a.samples, a.n, mel, &err) == 0) {
        if (a.n < MEL_N_FFT / 2 + 1) fail("mel_compute took too short an input", NULL);
        float hi = -INFINITY;
        for (int64_t i = 0; i < T * MEL_BINS; i++) {
            if (!isfinite(mel[i])) fail("log-mel value not finite", NULL);
            if (mel[i] > hi) hi = mel[i];
        }
        for (int64_t i = 0; i < T * MEL_BINS; i++)
            if (mel[i] < hi - 2.0f - 1e-4f * (1.0f + fabsf(hi))) fail("log-mel below its floor (max - 8 in log10, /4)", NULL);
    } else if (a.n >= MEL_N_FFT / 2 + 1) {
        fail("mel_compute refused a long enough input", err.msg);
    }
    free(mel);

    /* the whole input side, as infer.c calls it */
    float *frames = NULL;
    int64_t P = 0;
    if (audio_enc_prepare(&a, FUZZ_STACK, &frames, &P, &err) == 0) {
        if (P != audio_enc_positions(T, FUZZ_STACK)) fail("wrong number of audio positions", NULL);
        for (int64_t i = 0; i < P * FUZZ_STACK * MEL_BINS; i++)
            if (!isfinite(frames[i])) fail("grouped frame not finite", NULL);
        free(frames);
    } else if (frames || P) {
        fail("audio_enc_prepare failed but left output", err.msg);
    }
    audio_free(&a);
    return 0;
}
