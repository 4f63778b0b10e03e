#include "model/infer.h"

#include <stdlib.h>
#include <string.h>

#include "encoders/patch.h"
#include "fusion/sequence.h"
#include "heads/sampler.h"

struct loom_infer {
    const loom_model *m;
    decoder_cache *kc;
    decoder_cache *kc_uncond; /* classifier-free guidance: the empty prompt's cache (lazy) */
    decoder_acts *acts;  /* (1, max_seq): the prompt runs as one batch (decoder_prefill) */
    fusion_batch fb;   /* one row of max_seq positions */
    float *x0;         /* (max_seq, C) */
    float *scratch;    /* (max_patches, C) */
    float *logits;     /* (V) */
    float *sample;     /* (2V) sampler scratch */
    uint8_t *allowed;  /* (V) text tokens and <eos> */
    uint8_t *allowed_codes; /* (V) image codes, or NULL without image output */
    float *logits_uncond;   /* (V) */
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
    inf->acts = decoder_acts_new(&m->cfg, 1, T, err);
    if (!inf->acts) goto fail;
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
    if (m->gen.n_codes > 0) {
        inf->allowed_codes = calloc((size_t)V, 1);
        inf->logits_uncond = floats_alloc((size_t)V);
        if (!inf->allowed_codes || !inf->logits_uncond) {
            loom_error_set(err, "out of memory");
            goto fail;
        }
        for (int32_t k = 0; k < m->gen.n_codes; k++) inf->allowed_codes[m->gen.code_base + k] = 1;
    }
    return inf;
fail:
    infer_free(inf);
    return NULL;
}

void infer_free(loom_infer *inf) {
    if (!inf) return;
    decoder_cache_free(inf->kc);
    decoder_cache_free(inf->kc_uncond);
    decoder_acts_free(inf->acts);
    free(inf->allowed_codes);
    free(inf->logits_uncond);
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
    memcpy(inf->acts->x0, inf->x0, (size_t)len * C * sizeof(float));
    if (decoder_prefill(&m->cfg, &m->w, inf->kc, inf->acts, len, inf->logits, err)) return -1;
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

/* Runs tokens through a fresh cache; logits of the last one. */
static int prefill_tokens(const loom_model *m, decoder_cache *kc, decoder_acts *a,
                          const int32_t *ids, int32_t n, float *logits, loom_error *err) {
    decoder_cache_reset(kc);
    if (n > kc->max_seq) return loom_error_set(err, "prompt is %d tokens; the context holds %d", n, kc->max_seq);
    decoder_embed(&m->cfg, &m->w, ids, n, a->x0);
    return decoder_prefill(&m->cfg, &m->w, kc, a, n, logits, err);
}

int infer_imagine(loom_infer *inf, const char *prompt, size_t prompt_len,
                  const infer_imagine_params *p, int32_t *codes, loom_error *err) {
    const loom_model *m = inf->m;
    const int32_t T = m->cfg.max_seq, V = m->cfg.vocab_size;
    if (m->gen.n_codes <= 0 || !inf->allowed_codes)
        return loom_error_set(err, "this model has no image output");
    const int32_t n_codes = m->gen.rows * m->gen.cols;
    /* <bos> prompt <sep> <boi>, then the codes: all must fit the context */
    size_t needed = 0;
    int64_t n = tokenizer_encode(m->tok, prompt, prompt_len, inf->ids + 1, (size_t)(T - 1), &needed, err);
    if (n < 0) {
        if (needed) return loom_error_set(err, "prompt is %zu tokens; the context holds %d", needed, T);
        return -1;
    }
    if (1 + n + 2 + n_codes > T)
        return loom_error_set(err, "prompt is %lld tokens; with <bos> <sep> <boi> and %d image codes "
                              "the context (%d) is exceeded", (long long)n, n_codes, T);
    inf->ids[0] = TOKEN_BOS;
    inf->ids[n + 1] = TOKEN_SEP;
    inf->ids[n + 2] = TOKEN_BOI;
    if (prefill_tokens(m, inf->kc, inf->acts, inf->ids, (int32_t)n + 3, inf->logits, err)) return -1;
    const int guide = p->cfg_scale != 1.0f;
    if (guide) {
        if (!inf->kc_uncond && !(inf->kc_uncond = decoder_cache_new(&m->cfg, T, err))) return -1;
        const int32_t empty[3] = {TOKEN_BOS, TOKEN_SEP, TOKEN_BOI};
        if (prefill_tokens(m, inf->kc_uncond, inf->acts, empty, 3, inf->logits_uncond, err)) return -1;
    }
    loom_rng rng;
    rng_seed(&rng, p->seed);
    for (int32_t i = 0; i < n_codes; i++) {
        if (guide)
            for (int32_t v = 0; v < V; v++)
                inf->logits[v] = inf->logits_uncond[v] + p->cfg_scale * (inf->logits[v] - inf->logits_uncond[v]);
        int32_t id = sampler_sample(inf->logits, V, inf->allowed_codes, p->sampling, &rng, inf->sample);
        if (id < 0) return loom_error_set(err, "imagine: no code could be sampled");
        codes[i] = id - m->gen.code_base;
        if (i == n_codes - 1) break; /* then <eoi>: nothing more to sample */
        if (decoder_step_token(&m->cfg, &m->w, inf->kc, id, inf->logits, err)) return -1;
        if (guide && decoder_step_token(&m->cfg, &m->w, inf->kc_uncond, id, inf->logits_uncond, err))
            return -1;
    }
    return 0;
}
