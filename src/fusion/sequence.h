/* sequence.h: laying text tokens and image patches into one sequence
 * (../shared/DESIGN.md, "Sequence layout"):
 *
 *   <bos> <img> p p p p <row> p p p p <row> ... </img> what color is the circle? <sep> red <eos>
 *   <bos> <img> ... </img> <sep> a large red circle at the top left <eos>        (caption)
 *   <bos> a text document <eos>                                                  (text only)
 *   <bos> <aud> a a a ... a </aud> <sep> a small blue square in the center <eos> (transcript)
 *   <bos> <img> ... </img> <aud> a ... a </aud> <sep> red <eos>        (spoken question)
 *
 * In training a row may go on with more turns about the same image
 * (`... <sep> red <eos> how many objects are there? <sep> two <eos>`); the
 * first turn is exactly the inference layout.
 *
 * A position holds a token id, FUSION_PATCH for an image patch whose raw
 * pixels (P*P*3 floats) are kept beside the batch, or FUSION_AUDIO for an
 * audio position whose stacked log-mel frames (audio_dim floats) are kept
 * beside it likewise; the model projects both.
 * The loss covers what follows <sep>: each answer token and the final <eos>.
 * Prompts are encoded by the tokenizer, so a user's literal "<img>" stays
 * text. Batches are right-padded with <pad> and target -1. */
#ifndef LOOM_FUSION_SEQUENCE_H
#define LOOM_FUSION_SEQUENCE_H

#include <stdint.h>

#include "core/error.h"

#define FUSION_PATCH (-2)  /* token slot of an image-patch position */
#define FUSION_AUDIO (-3)  /* token slot of an audio position */

typedef struct fusion_batch {
    int32_t  B, T;          /* capacity */
    int32_t *tokens;        /* (B, T) token id, FUSION_PATCH, or <pad> */
    int32_t *targets;       /* (B, T) token to predict at the next position, or -1 */
    int32_t *len;           /* (B) positions used in each row */
    int32_t  patch_dim;     /* P*P*3 */
    int64_t  max_patches;   /* capacity of patches */
    int64_t  n_patches;
    float   *patches;       /* (max_patches, patch_dim) in sequence order */
    int64_t *patch_pos;     /* (max_patches) flat position b*T + t of each patch */
    int32_t  audio_dim;     /* floats per audio position (0: no audio room) */
    int64_t  max_audio;     /* capacity of audio */
    int64_t  n_audio;
    float   *audio;         /* (max_audio, audio_dim) in sequence order */
    int64_t *audio_pos;     /* (max_audio) flat position of each audio position */
} fusion_batch;

/* One row's content: an optional image (rows x cols patches, row-major, each
 * patch_dim floats), optional audio (n_audio positions of audio_dim floats),
 * prompt tokens, then <sep> (with_sep) and answer tokens. close 0 builds an
 * inference prefix that ends at <sep>: no answer, no <eos>, no targets. */
typedef struct fusion_row {
    const float   *patches;
    int32_t        rows, cols;
    const float   *audio;
    int32_t        n_audio;
    const int32_t *prompt;
    int32_t        n_prompt;
    const int32_t *answer;
    int32_t        n_answer;
    int            with_sep, close;
} fusion_row;

int  fusion_batch_init(fusion_batch *fb, int32_t B, int32_t T, int32_t patch_dim,
                       int64_t max_patches, loom_error *err);
void fusion_batch_free(fusion_batch *fb);
/* Gives the batch room for max_audio audio positions of audio_dim floats. */
int  fusion_batch_reserve_audio(fusion_batch *fb, int32_t audio_dim, int64_t max_audio,
                                loom_error *err);
/* Empties every row (all <pad>, targets -1, no patches, no audio). */
void fusion_batch_clear(fusion_batch *fb);

/* Positions row r takes (with its <eos> if r->close). */
int64_t fusion_row_positions(const fusion_row *r);
/* Lays out row b from r; -1 (row unchanged) if it does not fit the context
 * or the batch's patch/audio capacity. */
int fusion_batch_put_row(fusion_batch *fb, int32_t b, const fusion_row *r, loom_error *err);

/* Positions a row needs for an image of rows x cols patches (0 x 0: none),
 * n_prompt prompt tokens and n_answer answer tokens. with_sep: 1 for
 * prompt/answer records, 0 for plain text (then the answer is the text and
 * the loss covers all of it, from the position before it). */
int64_t fusion_row_length(int32_t rows, int32_t cols, int32_t n_prompt, int32_t n_answer,
                          int with_sep);

/* fusion_batch_put_row without audio. patches: (rows*cols, patch_dim) in row-major patch order,
 * or NULL when rows*cols == 0. answer may be NULL with n_answer 0 and
 * close 0 to build an inference prefix that ends at <sep> (no <eos>, no
 * targets). Returns -1 (row unchanged) if it does not fit. */
int fusion_batch_set_row(fusion_batch *fb, int32_t b, const float *patches, int32_t rows,
                         int32_t cols, const int32_t *prompt, int32_t n_prompt,
                         const int32_t *answer, int32_t n_answer, int with_sep, int close,
                         loom_error *err);

/* Appends one more turn, `prompt <sep> answer <eos>`, to row b (which must
 * end with <eos>), with the loss on the answer and its <eos>: several
 * questions about one image share the image's positions in training.
 * Returns -1 (row unchanged) if it does not fit. */
int fusion_batch_add_turn(fusion_batch *fb, int32_t b, const int32_t *prompt, int32_t n_prompt,
                          const int32_t *answer, int32_t n_answer, loom_error *err);

#endif
