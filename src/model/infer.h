/* infer.h: answering with a model: an optional image, optional audio and a
 * prompt in, greedy text out. One prompt template for every front end (CLI,
 * API, server):
 *
 *   <bos> [<img> patches </img>] [<aud> audio </aud>] prompt <sep>  ->  answer <eos>
 *
 * A caption is the answer to the empty prompt; a transcript is the answer to
 * audio alone; a spoken question is audio after the image. The prefix runs through the KV
 * cache, then tokens are decoded greedily, restricted to text tokens and
 * <eos>, until <eos>, max_tokens or the end of the context. */
#ifndef LOOM_MODEL_INFER_H
#define LOOM_MODEL_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "encoders/audio.h"
#include "encoders/image.h"
#include "heads/sampler.h"
#include "model/model.h"

typedef struct loom_infer loom_infer;

/* infer_input.contrast's plausibility cutoff (as visual contrastive decoding's
 * beta). Lower lets the contrast promote more, and measured worse: the stage-6
 * model, `loom eval --n 25 --questions 2` at contrast 1 and 2, cutoffs 0.1,
 * 0.01, 0.001 (a build reading the cutoff from the environment): test
 * captions 91/89/88% and 91/88/83%, held-out combinations 62/61/58% and
 * 66/66/54%. */
#define INFER_CONTRAST_CUTOFF 0.1f

/* The answer length every front end uses unless told otherwise (CLI, server). */
#define INFER_ANSWER_MAX_TOKENS 96

loom_infer *infer_new(const loom_model *m, loom_error *err);
void infer_free(loom_infer *inf);
/* The model inf answers with. */
const loom_model *infer_model(const loom_infer *inf);

/* How spoken words reach the model when there is more than the audio (an
 * image or typed text beside it: a question; or imagine: a prompt). Audio
 * alone to answer is a transcription either way. */
typedef enum infer_spoken {
    INFER_SPOKEN_DIRECT = 0,   /* the audio positions themselves: [<img> ..] <aud> .. </aud> <sep> */
    INFER_SPOKEN_TRANSCRIBE,   /* transcribed first (audio alone, the same model), then the
                                * transcript stands as the typed prompt (after any typed text) */
} infer_spoken;

/* What a request gives the model: each part optional (NULL / 0 length). */
typedef struct infer_input {
    const loom_image *image;
    const loom_audio *audio;   /* 16 kHz mono (encoders/audio.h); models with audio input */
    const char *prompt;
    size_t prompt_len;
    infer_spoken spoken;       /* 0: direct */
    int caption_first;         /* with an image and a typed (or transcribed) question: the
                                * model captions the image first and answers with its own
                                * caption in context (infer_caption):
                                * <bos> <img>..</img> <sep> caption <eos> question <sep> */
    float contrast;            /* with an image: image-contrastive decoding (as visual
                                * contrastive decoding): each answer token is chosen from
                                * (1 + a) l - a l0, l the logits with the image and l0 those
                                * of the same input without it, so what the text alone would
                                * say counts less than what the image shows. Only tokens whose
                                * probability with the image is at least INFER_CONTRAST_CUTOFF
                                * times the likeliest's compete. 0: off. Not with caption_first. */
} infer_input;

/* The transcript a TRANSCRIBE request was answered from (empty otherwise):
 * valid until the next request on inf. */
const char *infer_transcript(const loom_infer *inf);
/* The text prompt a TRANSCRIBE request was answered from: the typed text, a
 * space and the transcript ("" otherwise). Valid until the next request. */
const char *infer_heard_prompt(const loom_infer *inf);
/* The caption a caption_first request answered with ("" otherwise): valid
 * until the next request on inf. */
const char *infer_caption(const loom_infer *inf);

/* Greedy answer to in. Writes a NUL-terminated string (truncated to cap).
 * Returns its length, or -1. */
int64_t infer_answer_input(loom_infer *inf, const infer_input *in, int32_t max_tokens, char *out,
                           size_t cap, loom_error *err);
/* Incremental answering, for front ends that stream (the server): begin runs
 * the prefix; each next decodes one token and writes its text to out
 * (NUL-terminated; possibly empty: a UTF-8 sequence split across tokens is
 * held back until complete, and bytes that never complete one become
 * U+FFFD). next returns the bytes written (>= 0), INFER_DONE once the answer
 * has ended (then infer_answer_finish says why), or -1. infer_answer_input
 * is begin + next until INFER_DONE. out must hold INFER_PIECE_MAX bytes. */
#define INFER_DONE (-2)
#define INFER_PIECE_MAX 4096 /* 3 x (held bytes + one token), + NUL */
typedef enum infer_finish {
    INFER_FINISH_NONE,    /* still answering */
    INFER_FINISH_STOP,    /* <eos> */
    INFER_FINISH_LENGTH,  /* max_tokens or the end of the context */
} infer_finish;
int infer_answer_begin(loom_infer *inf, const infer_input *in, int32_t max_tokens, loom_error *err);
int64_t infer_answer_next(loom_infer *inf, char *out, loom_error *err);
infer_finish infer_answer_finish(const loom_infer *inf);
/* Batched answering (a server's concurrent requests): emit is next's first
 * half (the next token chosen and its text written, same returns) and leaves
 * that token pending; infer_answer_step_batch then runs the pending tokens
 * of up to max_seqs contexts through the decoder together (one weight pass
 * for all; decoder_step_batch), which is what next's second half does for
 * one. The answers equal those of next, token for token, up to float
 * rounding. The contexts must share b's model; those with nothing pending
 * are skipped. On failure every pending context finishes (LENGTH). */
typedef struct infer_batch infer_batch;
infer_batch *infer_batch_new(const loom_model *m, int32_t max_seqs, loom_error *err);
void infer_batch_free(infer_batch *b);
int64_t infer_answer_emit(loom_infer *inf, char *out, loom_error *err);
int infer_answer_pending(const loom_infer *inf);
int infer_answer_step_batch(infer_batch *b, loom_infer *const *infs, int32_t n, loom_error *err);

/* Positions of the prefix (with, for a transcribed spoken input, every
 * position the transcription ran) and tokens generated so far (OpenAI's usage). */
int32_t infer_prompt_tokens(const loom_infer *inf);
int32_t infer_answer_tokens(const loom_infer *inf);

/* The same for (img, prompt); img may be NULL. */
int64_t infer_answer(loom_infer *inf, const loom_image *img, const char *prompt,
                     size_t prompt_len, int32_t max_tokens, char *out, size_t cap,
                     loom_error *err);

/* Image generation (models with image output, m->gen):
 *
 *   <bos> prompt <sep> <boi>  ->  exactly rows x cols codes, then <eoi>
 *
 * Inside the block only image codes can be sampled; outside it (text
 * answers) codes never are. cfg_scale != 1 turns on classifier-free
 * guidance: logits = u + cfg_scale (c - u), where u continues the empty
 * prompt `<bos> <sep> <boi>` (trained as the unconditional case). */
typedef struct infer_imagine_params {
    sampler_params sampling;  /* temp 0 = greedy */
    float    cfg_scale;       /* 1 = off */
    uint64_t seed;            /* the same seed, model and prompt give the same codes */
} infer_imagine_params;

/* Writes rows * cols codes (each in [0, n_codes)) to codes. Returns 0, or -1.
 * A spoken prompt (in->audio) takes the text prompt's place:
 * <bos> <aud> audio </aud> <sep> <boi> ... */
int infer_imagine_input(loom_infer *inf, const infer_input *in, const infer_imagine_params *p,
                        int32_t *codes, loom_error *err);
int infer_imagine(loom_infer *inf, const char *prompt, size_t prompt_len,
                  const infer_imagine_params *p, int32_t *codes, loom_error *err);

#endif
