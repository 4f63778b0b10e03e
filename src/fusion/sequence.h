/* sequence.h: laying text tokens and image patches into one sequence
 * (../shared/DESIGN.md, "Sequence layout"):
 *
 *   <bos> <img> p p p p <row> p p p p <row> ... </img> what color is the circle? <sep> red <eos>
 *   <bos> <img> ... </img> <sep> a large red circle at the top left <eos>        (caption)
 *   <bos> a text document <eos>                                                  (text only)
 *
 * In training a row may go on with more turns about the same image
 * (`... <sep> red <eos> how many objects are there? <sep> two <eos>`); the
 * first turn is exactly the inference layout.
 *
 * A position holds a token id, or FUSION_PATCH for an image patch whose raw
 * pixels (P*P*3 floats) are kept beside the batch; the model projects them.
 * The loss covers what follows <sep>: each answer token and the final <eos>.
 * Prompts are encoded by the tokenizer, so a user's literal "<img>" stays
 * text. Batches are right-padded with <pad> and target -1. */
#ifndef LOOM_FUSION_SEQUENCE_H
#define LOOM_FUSION_SEQUENCE_H

#include <stdint.h>

#include "core/error.h"

#define FUSION_PATCH (-2)  /* token slot of an image-patch position */

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
} fusion_batch;

int  fusion_batch_init(fusion_batch *fb, int32_t B, int32_t T, int32_t patch_dim,
                       int64_t max_patches, loom_error *err);
void fusion_batch_free(fusion_batch *fb);
/* Empties every row (all <pad>, targets -1, no patches). */
void fusion_batch_clear(fusion_batch *fb);

/* Positions a row needs for an image of rows x cols patches (0 x 0: none),
 * n_prompt prompt tokens and n_answer answer tokens. with_sep: 1 for
 * prompt/answer records, 0 for plain text (then the answer is the text and
 * the loss covers all of it). */
int64_t fusion_row_length(int32_t rows, int32_t cols, int32_t n_prompt, int32_t n_answer,
                          int with_sep);

/* Lays out row b. patches: (rows*cols, patch_dim) in row-major patch order,
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
