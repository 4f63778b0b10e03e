/* audio.h: decoded audio for the audio front end: mono float samples at
 * 16 kHz, whatever the file was.
 *
 * Audio is untrusted input. Files are read into memory (at most
 * AUDIO_MAX_FILE_BYTES) and decoded by libsndfile (WAV, FLAC, OGG/Vorbis,
 * AIFF, and the rest it knows); before any sample buffer is allocated the
 * header's channel count, sample rate and length are checked against the
 * limits below. Samples that are NaN or infinite, and files with no
 * samples, are refused. Channels are averaged (a downmix that keeps the
 * level of a mono signal copied to every channel), then libsamplerate's
 * best sinc converter resamples to AUDIO_RATE.
 *
 *     loom_audio a;
 *     if (audio_load_file("q.wav", &a, &err)) { fprintf(stderr, "loom: %s\n", err.msg); ... }
 *     ... a.samples[0 .. a.n) at 16 kHz ...
 *     audio_free(&a);
 */
#ifndef LOOM_ENCODERS_AUDIO_H
#define LOOM_ENCODERS_AUDIO_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define AUDIO_RATE 16000                                 /* Hz, what the front end takes */
#define AUDIO_MAX_SECONDS 600                            /* 10 minutes */
#define AUDIO_MAX_CHANNELS 32
#define AUDIO_MIN_RATE 1000                              /* Hz */
#define AUDIO_MAX_RATE 768000
#define AUDIO_MAX_FILE_BYTES ((size_t)512 * 1024 * 1024)

typedef struct loom_audio {
    int64_t n;        /* samples, >= 1 */
    float *samples;   /* (n) mono at AUDIO_RATE; malloc'd, owned */
} loom_audio;

/* Reads and decodes a file. On failure returns -1, sets err (naming the file
 * and the reason) and leaves *a zeroed. */
int audio_load_file(const char *path, loom_audio *a, loom_error *err);
/* Decodes len bytes of an encoded file (name, may be NULL, is for messages). */
int audio_load_memory(const void *buf, size_t len, const char *name, loom_audio *a,
                      loom_error *err);
/* Mono AUDIO_RATE samples from interleaved frames (n_frames, channels) at
 * rate: the downmix and resampling of the loaders, for callers that have
 * raw samples. Same checks (finite values, limits). */
int audio_from_frames(const float *frames, int64_t n_frames, int32_t channels, int32_t rate,
                      loom_audio *a, loom_error *err);
void audio_free(loom_audio *a);

#endif
