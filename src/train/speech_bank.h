/* speech_bank.h: spoken Shapes World prompts and questions for training and
 * evaluation, read from the manifest `loom data speech` writes (one JSON
 * object per line, paths relative to the manifest):
 *
 *   {"audio":"audio/000000.wav","text":"what color is the circle?","task":"question",
 *    "scene":"a large red circle at the top left","reply":"red","voice":"en-us+m3 ..."}
 *   {"audio":"audio/000001.wav","text":"a red circle","task":"prompt",
 *    "scene":"a large red circle at the center","voice":"..."}
 *
 * "text" is what is said (the transcript). A question comes with a scene it
 * was asked about ("scene", that scene's caption) and the answer ("reply");
 * a prompt with a scene that answers it. Audio files go through the same
 * loader as users' audio (libsndfile, 16 kHz mono). speech_bank_prepare
 * turns each utterance into the model's audio positions (log-mel, frames
 * grouped by the model's stack) and drops the samples.
 *
 *     speech_bank b;
 *     if (speech_bank_load(&b, "speech/manifest.jsonl", &err)) ...
 *     if (speech_bank_prepare(&b, m->aud.stack, &err)) ...
 *     size_t first, n = speech_bank_find(&b, "what color is the circle?", &first);
 *     ... b.u[b.by_text[first + k]] for k < n ...
 *     speech_bank_free(&b);
 */
#ifndef LOOM_TRAIN_SPEECH_BANK_H
#define LOOM_TRAIN_SPEECH_BANK_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "encoders/audio.h"

typedef enum { SPEECH_TASK_OTHER, SPEECH_TASK_PROMPT, SPEECH_TASK_QUESTION } speech_task;

typedef struct speech_utt {
    char       *text;     /* the transcript */
    char       *scene;    /* caption of the scene it is about, or NULL */
    char       *reply;    /* a question's answer about that scene, or NULL */
    char       *voice;    /* how it was spoken (for reports), or NULL */
    char       *path;     /* the audio file as written in the manifest */
    speech_task task;
    loom_audio  audio;    /* the samples, until speech_bank_prepare */
    float      *frames;   /* (n_pos, stack * MEL_BINS) after speech_bank_prepare */
    int32_t     n_pos;
} speech_utt;

typedef struct speech_bank {
    speech_utt *u;
    size_t      n;
    int32_t     stack;     /* 0 until prepared */
    size_t     *by_text;   /* (n) indices into u sorted by text */
    double      seconds;   /* total audio */
} speech_bank;

/* Reads the manifest and decodes every audio file. -1 with err naming the
 * line on a malformed record or an unreadable file. */
int speech_bank_load(speech_bank *b, const char *manifest, loom_error *err);
/* Log-mel and grouping for every utterance (in parallel); frees the samples. */
int speech_bank_prepare(speech_bank *b, int32_t stack, loom_error *err);
/* How many utterances say exactly text; *first is where they start in by_text. */
size_t speech_bank_find(const speech_bank *b, const char *text, size_t *first);
/* How many utterances have the task. */
size_t speech_bank_count(const speech_bank *b, speech_task task);
void speech_bank_free(speech_bank *b);

#endif
