#include "fusion/sequence.h"

#include <stdlib.h>
#include <string.h>

#include "fusion/tokenizer.h"

int fusion_batch_init(fusion_batch *fb, int32_t B, int32_t T, int32_t patch_dim,
                      int64_t max_patches, loom_error *err) {
    memset(fb, 0, sizeof *fb);
    if (B < 1 || T < 1 || patch_dim < 0 || max_patches < 0)
        return loom_error_set(err, "fusion batch: bad size");
    size_t bt = (size_t)B * (size_t)T, pbytes;
    if (loom_mul_size((size_t)max_patches, (size_t)patch_dim * sizeof(float), &pbytes))
        return loom_error_set(err, "fusion batch: too many patches");
    fb->B = B;
    fb->T = T;
    fb->patch_dim = patch_dim;
    fb->max_patches = max_patches;
    fb->tokens = malloc(bt * sizeof *fb->tokens);
    fb->targets = malloc(bt * sizeof *fb->targets);
    fb->len = calloc((size_t)B, sizeof *fb->len);
    fb->patches = malloc(pbytes ? pbytes : 1);
    fb->patch_pos = malloc((size_t)(max_patches ? max_patches : 1) * sizeof *fb->patch_pos);
    if (!fb->tokens || !fb->targets || !fb->len || !fb->patches || !fb->patch_pos) {
        fusion_batch_free(fb);
        return loom_error_set(err, "fusion batch: out of memory");
    }
    fusion_batch_clear(fb);
    return 0;
}

void fusion_batch_free(fusion_batch *fb) {
    free(fb->tokens);
    free(fb->targets);
    free(fb->len);
    free(fb->patches);
    free(fb->patch_pos);
    memset(fb, 0, sizeof *fb);
}

void fusion_batch_clear(fusion_batch *fb) {
    for (size_t i = 0; i < (size_t)fb->B * (size_t)fb->T; i++) {
        fb->tokens[i] = TOKEN_PAD;
        fb->targets[i] = -1;
    }
    memset(fb->len, 0, (size_t)fb->B * sizeof *fb->len);
    fb->n_patches = 0;
}

int64_t fusion_row_length(int32_t rows, int32_t cols, int32_t n_prompt, int32_t n_answer,
                          int with_sep) {
    int64_t n = 1;                                            /* <bos> */
    if (rows > 0 && cols > 0) n += 2 + (int64_t)rows * (cols + 1); /* <img> (p.. <row>)* </img> */
    n += n_prompt + (with_sep ? 1 : 0) + n_answer + 1;       /* prompt <sep> answer <eos> */
    return n;
}

int fusion_batch_set_row(fusion_batch *fb, int32_t b, const float *patches, int32_t rows,
                         int32_t cols, const int32_t *prompt, int32_t n_prompt,
                         const int32_t *answer, int32_t n_answer, int with_sep, int close,
                         loom_error *err) {
    if (b < 0 || b >= fb->B) return loom_error_set(err, "fusion: row %d out of range", b);
    if (rows < 0 || cols < 0 || n_prompt < 0 || n_answer < 0)
        return loom_error_set(err, "fusion: negative size");
    if (rows * (int64_t)cols > 0 && !patches) return loom_error_set(err, "fusion: no patches");
    int64_t need = fusion_row_length(rows, cols, n_prompt, n_answer, with_sep) - (close ? 0 : 1);
    if (need > fb->T)
        return loom_error_set(err, "sequence of %lld positions exceeds the context (%d)",
                              (long long)need, fb->T);
    int64_t np = (int64_t)rows * cols;
    if (fb->n_patches + np > fb->max_patches)
        return loom_error_set(err, "fusion: batch patch capacity (%lld) exceeded",
                              (long long)fb->max_patches);
    int32_t *tok = fb->tokens + (size_t)b * fb->T, *tgt = fb->targets + (size_t)b * fb->T;
    int32_t t = 0;
    tok[t++] = TOKEN_BOS;
    if (np > 0) {
        tok[t++] = TOKEN_IMG;
        for (int32_t r = 0; r < rows; r++) {
            for (int32_t c = 0; c < cols; c++) {
                int64_t pi = fb->n_patches++;
                memcpy(fb->patches + pi * fb->patch_dim,
                       patches + ((int64_t)r * cols + c) * fb->patch_dim,
                       (size_t)fb->patch_dim * sizeof(float));
                fb->patch_pos[pi] = (int64_t)b * fb->T + t;
                tok[t++] = FUSION_PATCH;
            }
            tok[t++] = TOKEN_ROW;
        }
        tok[t++] = TOKEN_IMG_END;
    }
    for (int32_t i = 0; i < n_prompt; i++) tok[t++] = prompt[i];
    if (with_sep) tok[t++] = TOKEN_SEP;
    int32_t first_loss = with_sep ? t - 1 : 0;  /* the position that predicts the first answer token */
    for (int32_t i = 0; i < n_answer; i++) tok[t++] = answer[i];
    if (close) tok[t++] = TOKEN_EOS;
    for (int32_t i = 0; i < t; i++) tgt[i] = -1;
    if (close)
        for (int32_t i = first_loss; i < t - 1; i++) tgt[i] = tok[i + 1];
    for (int32_t i = t; i < fb->T; i++) {
        tok[i] = TOKEN_PAD;
        tgt[i] = -1;
    }
    fb->len[b] = t;
    return 0;
}

int fusion_batch_add_turn(fusion_batch *fb, int32_t b, const int32_t *prompt, int32_t n_prompt,
                          const int32_t *answer, int32_t n_answer, loom_error *err) {
    if (b < 0 || b >= fb->B) return loom_error_set(err, "fusion: row %d out of range", b);
    if (n_prompt < 0 || n_answer < 0) return loom_error_set(err, "fusion: negative size");
    int32_t t = fb->len[b];
    int32_t *tok = fb->tokens + (size_t)b * fb->T, *tgt = fb->targets + (size_t)b * fb->T;
    if (t < 1 || tok[t - 1] != TOKEN_EOS)
        return loom_error_set(err, "fusion: row %d does not end a turn", b);
    if ((int64_t)t + n_prompt + 1 + n_answer + 1 > fb->T)
        return loom_error_set(err, "fusion: the turn does not fit the context (%d)", fb->T);
    for (int32_t i = 0; i < n_prompt; i++) tok[t++] = prompt[i];
    tok[t++] = TOKEN_SEP;
    int32_t first_loss = t - 1;
    for (int32_t i = 0; i < n_answer; i++) tok[t++] = answer[i];
    tok[t++] = TOKEN_EOS;
    for (int32_t i = first_loss; i < t - 1; i++) tgt[i] = tok[i + 1];
    fb->len[b] = t;
    return 0;
}
