#include "model/infer.h"

#include <stdlib.h>
#include <string.h>

#include "encoders/patch.h"
#include "fusion/sequence.h"
#include "heads/sampler.h"

struct loom_infer {
    const loom_model *m;
    decoder_cache *kc;
    fusion_batch fb;   /* one row of max_seq positions */
    float *x0;         /* (max_seq, C) */
    float *scratch;    /* (max_patches, C) */
    float *logits;     /* (V) */
    float *sample;     /* (2V) sampler scratch */
    uint8_t *allowed;  /* (V) text tokens and <eos> */
    int32_t *ids;      /* (max_seq) prompt tokens */
};

loom_infer *infer_new(const loom_model *m, loom_error *err) {
    if (!m->tok) return loom_error_set(err, "model has no tokenizer"), NULL;
    loom_infer *inf = calloc(1, sizeof *inf);
    if (!inf) return loom_error_set(err, "out of memory"), NULL;
    inf->m = m;
    const int32_t T = m->cfg.max_seq, V = m->cfg.vocab_size, C = m->cfg.d_model;
    const int32_t P = m->img.patch_size;
    const int64_t max_patches = P > 0 ? (int64_t)m->img.max_patch_rows * m->img.max_patch_cols : 0;
    inf->kc = decoder_cache_new(&m->cfg, T, err);
    if (!inf->kc) goto fail;
    if (fusion_batch_init(&inf->fb, 1, T, P * P * 3, max_patches, err)) goto fail;
    inf->x0 = floats_alloc((size_t)T * C);
    inf->scratch = floats_alloc((size_t)(max_patches ? max_patches : 1) * C);
    inf->logits = floats_alloc((size_t)V);
    inf->sample = floats_alloc((size_t)V * 2);
    inf->allowed = calloc((size_t)V, 1);
    inf->ids = malloc((size_t)T * sizeof *inf->ids);
    if (!inf->x0 || !inf->scratch || !inf->logits || !inf->sample || !inf->allowed || !inf->ids) {
        loom_error_set(err, "out of memory");
        goto fail;
    }
    const int32_t tok_v = tokenizer_vocab_size(m->tok);
    for (int32_t i = TOKENIZER_N_SPECIAL; i < tok_v && i < V; i++) inf->allowed[i] = 1;
    inf->allowed[TOKEN_EOS] = 1;
    return inf;
fail:
    infer_free(inf);
    return NULL;
}

void infer_free(loom_infer *inf) {
    if (!inf) return;
    decoder_cache_free(inf->kc);
    fusion_batch_free(&inf->fb);
    free(inf->x0);
    free(inf->scratch);
    free(inf->logits);
    free(inf->sample);
    free(inf->allowed);
    free(inf->ids);
    free(inf);
}

int64_t infer_answer(loom_infer *inf, const loom_image *img, const char *prompt,
                     size_t prompt_len, int32_t max_tokens, char *out, size_t cap,
                     loom_error *err) {
    const loom_model *m = inf->m;
    const int32_t T = m->cfg.max_seq, C = m->cfg.d_model;
    if (cap) out[0] = '\0';
    if (img && m->img.patch_size <= 0) return loom_error_set(err, "this model has no image input");
    float *patches = NULL;
    int32_t rows = 0, cols = 0;
    if (img && patch_image(img, m->img.patch_size, m->img.max_patch_rows, m->img.max_patch_cols,
                           &patches, &rows, &cols, NULL, err))
        return -1;
    size_t needed = 0;
    int64_t n = tokenizer_encode(m->tok, prompt, prompt_len, inf->ids, (size_t)T, &needed, err);
    if (n < 0) {
        free(patches);
        if (needed) return loom_error_set(err, "prompt is %zu tokens; the context holds %d", needed, T);
        return -1;
    }
    fusion_batch_clear(&inf->fb);
    int rc = fusion_batch_set_row(&inf->fb, 0, patches, rows, cols, inf->ids, (int32_t)n, NULL, 0,
                                  1, 0, err);
    free(patches);
    if (rc) return -1;
    model_embed(m, &inf->fb, inf->x0, inf->scratch);
    const int32_t len = inf->fb.len[0];
    decoder_cache_reset(inf->kc);
    for (int32_t t = 0; t < len; t++)
        if (decoder_step(&m->cfg, &m->w, inf->kc, inf->x0 + (size_t)t * C,
                         t == len - 1 ? inf->logits : NULL, err))
            return -1;
    sampler_params greedy = {.temp = 0.0f};
    size_t used = 0;
    char piece[TOKENIZER_MAX_TOKEN_BYTES];
    for (int32_t i = 0; i < max_tokens; i++) {
        int32_t id = sampler_sample(inf->logits, m->cfg.vocab_size, inf->allowed, greedy, NULL,
                                    inf->sample);
        if (id < 0 || id == TOKEN_EOS) break;
        int64_t pl = tokenizer_decode_token(m->tok, id, 0, piece, sizeof piece);
        if (pl > 0 && cap) {
            size_t k = (size_t)pl < cap - 1 - used ? (size_t)pl : cap - 1 - used;
            memcpy(out + used, piece, k);
            used += k;
            out[used] = '\0';
        }
        if (inf->kc->n >= inf->kc->max_seq) break;
        if (decoder_step_token(&m->cfg, &m->w, inf->kc, id, inf->logits, err)) return -1;
    }
    return (int64_t)used;
}
