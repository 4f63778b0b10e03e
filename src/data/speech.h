/* speech.h: spoken training data: English text to loom audio (mono float at
 * AUDIO_RATE, encoders/audio.h) with varied voices, by eSpeak NG (Debian's
 * espeak-ng package, version 1.51).
 *
 * A voice is an accent (one of espeak-ng's own English voices; no mbrola
 * voices), a variant (espeak-ng's voices/!v: a speaker's pitch, formants,
 * roughness, or a Klatt synthesizer), a rate, a pitch and a pitch range. The
 * variants are split in two disjoint sets, so that a model can be evaluated on
 * speakers it never heard in training:
 *
 *     train (18):   (none) m1 m2 m3 m5 m6 m7 Andy max paul
 *                   f1 f2 f4 f5 Annie  klatt klatt2 klatt4
 *     held out (5): m4 john  f3 linda  klatt3
 *
 * Usage:
 *
 *     loom_rng rng;
 *     rng_seed(&rng, seed);
 *     speech_voice v;
 *     speech_voice_sample(SPEECH_TRAIN, &rng, &v);
 *     char name[SPEECH_VOICE_FORMAT_MAX];
 *     speech_voice_format(&v, name, sizeof name);      // "en-us+m3 rate 160 pitch 50 range 40"
 *     loom_audio a;
 *     if (speech_synth(&v, "how many objects are there?", &a, &err)) ... err.msg ...
 *     ... a.samples[0 .. a.n) at 16 kHz ...
 *     audio_free(&a);
 *
 * How it runs, and why. Each speech_synth runs the espeak-ng program (a child
 * process, posix_spawn, no shell) and reads its WAV output from a pipe.
 * libespeak-ng keeps its synthesizer state in static variables that no API
 * resets (pitch flutter phase, glottal cycle count, gain control, echo
 * buffer, the rand() state of its breath and Klatt noise): in one process
 * the same voice and text give different samples on every call, and
 * espeak_ng_Terminate followed by espeak_ng_Initialize hangs. A fresh process
 * per utterance starts from the same state every time, so the output depends
 * only on (voice, text) -- not on what was synthesized before, in which order,
 * or on which thread -- and the library's process-wide side effects
 * (setlocale(LC_CTYPE), stderr messages, exit() on missing data) stay out of
 * the caller's process. Calls are independent and may run concurrently. The
 * process costs ~20 ms per utterance; resampling 22.05 -> 16 kHz (libsamplerate's
 * best sinc) costs ~30 ms per second of speech.
 *
 * The espeak-ng program is the one CMake found (LOOM_ESPEAK_NG_PROGRAM), else
 * "espeak-ng" on PATH; it finds its data by itself (no environment variables
 * needed).
 */
#ifndef LOOM_DATA_SPEECH_H
#define LOOM_DATA_SPEECH_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/rng.h"
#include "encoders/audio.h"

enum { SPEECH_N_ACCENTS = 7, SPEECH_N_VARIANTS_TRAIN = 18, SPEECH_N_VARIANTS_HELDOUT = 5 };

/* en-gb en-us en-gb-scotland en-gb-x-gbclan en-gb-x-rp en-gb-x-gbcwmd en-029
 * (Great Britain, America, Scotland, Lancaster, Received Pronunciation, West
 * Midlands, Caribbean). */
extern const char *const speech_accents[SPEECH_N_ACCENTS];
extern const char *const speech_variants_train[SPEECH_N_VARIANTS_TRAIN];     /* "" is no variant */
extern const char *const speech_variants_heldout[SPEECH_N_VARIANTS_HELDOUT];

/* Ranges of speech_voice_sample (inclusive); speech_synth accepts any value in
 * the espeak-ng ranges below. */
enum { SPEECH_RATE_MIN = 130, SPEECH_RATE_MAX = 210,   /* words per minute */
       SPEECH_PITCH_MIN = 30, SPEECH_PITCH_MAX = 70,   /* 50 is the variant's own pitch */
       SPEECH_RANGE_MIN = 20, SPEECH_RANGE_MAX = 80 }; /* 50 is the variant's own range */
enum { SPEECH_RATE_LIMIT_MIN = 80, SPEECH_RATE_LIMIT_MAX = 450 }; /* espeak-ng's limits */

enum { SPEECH_MAX_TEXT_BYTES = 1000 };   /* longest text speech_synth takes */
enum { SPEECH_VOICE_FORMAT_MAX = 112 };  /* always enough for speech_voice_format */
#define SPEECH_TRIM_LEVEL 0.004f         /* |sample| below this is silence, for trimming */
#define SPEECH_TRIM_MARGIN 0.05f         /* seconds of silence kept at each end (if there) */

typedef struct speech_voice {
    char accent[32];  /* one of speech_accents, e.g. "en-us", "en-gb-scotland" */
    char variant[16]; /* one of speech_variants_*, e.g. "m3", "f2", "klatt2"; "" for none */
    int32_t rate;     /* words per minute, SPEECH_RATE_LIMIT_MIN..SPEECH_RATE_LIMIT_MAX */
    int32_t pitch;    /* 0..99, 50 = the variant's own */
    int32_t range;    /* pitch range 0..99 (0 monotone), 50 = the variant's own */
} speech_voice;

enum speech_split { SPEECH_TRAIN, SPEECH_HELDOUT };

/* A random voice of the split: accent, then variant (of the split's list),
 * then rate, pitch and range, each uniform (five rng_below draws, in that
 * order; never change them: they fix the voices of a seed). */
void speech_voice_sample(enum speech_split split, loom_rng *rng, speech_voice *v);
/* The split whose list holds the variant ("" is TRAIN), or -1 if none does. */
int speech_variant_split(const char *variant);
/* "en-us+m3 rate 160 pitch 50 range 40" ("en-us rate ..." without a variant),
 * for manifests and logs. Returns the length (excluding NUL), or -1 if cap is
 * too small or v has unterminated strings. */
int speech_voice_format(const speech_voice *v, char *out, size_t cap);

/* Speaks UTF-8 text with voice v into *a (mono, AUDIO_RATE, through
 * audio_from_frames). Silence below SPEECH_TRIM_LEVEL is trimmed at both
 * ends, keeping up to SPEECH_TRIM_MARGIN seconds of it; nothing else is
 * changed. Deterministic: the same voice and text give the same samples.
 * Thread-safe (no shared state). Text is read as plain text, except that
 * espeak-ng reads [[...]] as its phoneme mnemonics.
 *
 * Returns -1 with the reason in err, and *a zeroed, if: the voice's accent or
 * variant is not in the lists above or a number is out of range; the text is
 * empty or only spaces, longer than SPEECH_MAX_TEXT_BYTES, not UTF-8, or has
 * control characters other than tab, newline and carriage return; espeak-ng cannot be run,
 * fails, takes more than a minute, or produces no sound louder than
 * SPEECH_TRIM_LEVEL (e.g. for text that is only punctuation). */
int speech_synth(const speech_voice *v, const char *text, loom_audio *a, loom_error *err);

#endif
