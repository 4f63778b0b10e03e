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
    free(fb->audio);
    free(fb->audio_pos);
    memset(fb, 0, sizeof *fb);
}

void fusion_batch_clear(fusion_batch *fb) {
    for (size_t i = 0; i < (size_t)fb->B * (size_t)fb->T; i++) {
        fb->tokens[i] = TOKEN_PAD;
        fb->targets[i] = -1;
    }
    memset(fb->len, 0, (size_t)fb->B * sizeof *fb->len);
    fb->n_patches = 0;
    fb->n_audio = 0;
}

int fusion_batch_reserve_audio(fusion_batch *fb, int32_t audio_dim, int64_t max_audio,
                               loom_error *err) {
    size_t bytes;
    if (audio_dim < 1 || max_audio < 1) return loom_error_set(err, "fusion batch: bad audio size");
    if (loom_mul_size((size_t)max_audio, (size_t)audio_dim * sizeof(float), &bytes))
        return loom_error_set(err, "fusion batch: too many audio positions");
    float *a = malloc(bytes);
    int64_t *pos = malloc((size_t)max_audio * sizeof *pos);
    if (!a || !pos) {
        free(a), free(pos);
        return loom_error_set(err, "fusion batch: out of memory");
    }
    free(fb->audio), free(fb->audio_pos);
    fb->audio = a, fb->audio_pos = pos;
    fb->audio_dim = audio_dim, fb->max_audio = max_audio, fb->n_audio = 0;
    return 0;
}

int64_t fusion_row_positions(const fusion_row *r) {
    int64_t n = 1;                                                   /* <bos> */
    if (r->rows > 0 && r->cols > 0) n += 2 + (int64_t)r->rows * (r->cols + 1); /* <img> (p.. <row>)* </img> */
    if (r->n_audio > 0) n += 2 + (int64_t)r->n_audio;                /* <aud> a.. </aud> */
    n += r->n_prompt + (r->with_sep ? 1 : 0) + r->n_answer + (r->close ? 1 : 0); /* prompt <sep> answer <eos> */
    return n;
}

int64_t fusion_row_length(int32_t rows, int32_t cols, int32_t n_prompt, int32_t n_answer,
                          int with_sep) {
    fusion_row r = {.rows = rows, .cols = cols, .n_prompt = n_prompt, .n_answer = n_answer,
                    .with_sep = with_sep, .close = 1};
    return fusion_row_positions(&r);
}

int fusion_batch_put_row(fusion_batch *fb, int32_t b, const fusion_row *r, loom_error *err) {
    if (b < 0 || b >= fb->B) return loom_error_set(err, "fusion: row %d out of range", b);
    if (r->rows < 0 || r->cols < 0 || r->n_audio < 0 || r->n_prompt < 0 || r->n_answer < 0)
        return loom_error_set(err, "fusion: negative size");
    const int64_t np = r->rows > 0 && r->cols > 0 ? (int64_t)r->rows * r->cols : 0;
    if (np > 0 && !r->patches) return loom_error_set(err, "fusion: no patches");
    if (r->n_audio > 0 && !r->audio) return loom_error_set(err, "fusion: no audio");
    int64_t need = fusion_row_positions(r);
    if (need > fb->T)
        return loom_error_set(err, "sequence of %lld positions exceeds the context (%d)",
                              (long long)need, fb->T);
    if (fb->n_patches + np > fb->max_patches)
        return loom_error_set(err, "fusion: batch patch capacity (%lld) exceeded",
                              (long long)fb->max_patches);
    if (fb->n_audio + r->n_audio > fb->max_audio)
        return loom_error_set(err, "fusion: batch audio capacity (%lld) exceeded",
                              (long long)fb->max_audio);
    int32_t *tok = fb->tokens + (size_t)b * fb->T, *tgt = fb->targets + (size_t)b * fb->T;
    int32_t t = 0;
    tok[t++] = TOKEN_BOS;
    if (np > 0) {
        tok[t++] = TOKEN_IMG;
        for (int32_t y = 0; y < r->rows; y++) {
            for (int32_t x = 0; x < r->cols; x++) {
                int64_t pi = fb->n_patches++;
                memcpy(fb->patches + pi * fb->patch_dim,
                       r->patches + ((int64_t)y * r->cols + x) * fb->patch_dim,
                       (size_t)fb->patch_dim * sizeof(float));
                fb->patch_pos[pi] = (int64_t)b * fb->T + t;
                tok[t++] = FUSION_PATCH;
            }
            tok[t++] = TOKEN_ROW;
        }
        tok[t++] = TOKEN_IMG_END;
    }
    if (r->n_audio > 0) {
        tok[t++] = TOKEN_AUD;
        memcpy(fb->audio + fb->n_audio * fb->audio_dim, r->audio,
               (size_t)r->n_audio * (size_t)fb->audio_dim * sizeof(float));
        for (int32_t i = 0; i < r->n_audio; i++) {
            fb->audio_pos[fb->n_audio++] = (int64_t)b * fb->T + t;
            tok[t++] = FUSION_AUDIO;
        }
        tok[t++] = TOKEN_AUD_END;
    }
    for (int32_t i = 0; i < r->n_prompt; i++) tok[t++] = r->prompt[i];
    if (r->with_sep) tok[t++] = TOKEN_SEP;
    /* the position that predicts the first answer token: <sep>, or for plain
     * text the position before it (<bos>, or </img> / </aud> of a record
     * with media): the loss never asks to predict a patch or audio slot */
    int32_t first_loss = t - 1;
    for (int32_t i = 0; i < r->n_answer; i++) tok[t++] = r->answer[i];
    if (r->close) tok[t++] = TOKEN_EOS;
    for (int32_t i = 0; i < t; i++) tgt[i] = -1;
    if (r->close)
        for (int32_t i = first_loss; i < t - 1; i++) tgt[i] = tok[i + 1];
    for (int32_t i = t; i < fb->T; i++) {
        tok[i] = TOKEN_PAD;
        tgt[i] = -1;
    }
    fb->len[b] = t;
    return 0;
}

int fusion_batch_set_row(fusion_batch *fb, int32_t b, const float *patches, int32_t rows,
                         int32_t cols, const int32_t *prompt, int32_t n_prompt,
                         const int32_t *answer, int32_t n_answer, int with_sep, int close,
                         loom_error *err) {
    fusion_row r = {.patches = patches, .rows = rows, .cols = cols, .prompt = prompt,
                    .n_prompt = n_prompt, .answer = answer, .n_answer = n_answer,
                    .with_sep = with_sep, .close = close};
    return fusion_batch_put_row(fb, b, &r, err);
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
