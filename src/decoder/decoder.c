/* decoder.c: forward, backward and incremental decoding of the transformer.
 * Read docs/model-format.md for the math; each kernel's backward sits next to
 * its forward. */
#include "decoder/decoder.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm.h"
#include "core/gemv.h"
#include "core/q8.h"
#include "core/safetensors.h"
#include "core/vec.h"

/* ------------------------------------------------------------------------ */
/* config */

decoder_config decoder_default_config(void) {
    decoder_config c = {
        .vocab_size = 1024, .d_model = 256, .n_layers = 6, .n_heads = 8, .n_kv_heads = 8,
        .d_ff = 688, .max_seq = 256, .window = 0, .rope_theta = 10000.0f, .norm_eps = 1e-5f,
        .tie_embeddings = 1,
    };
    return c;
}

int decoder_config_check(const decoder_config *c, loom_error *err) {
    if (c->vocab_size < 1 || c->vocab_size > (1 << 20))
        return loom_error_set(err, "vocab_size %d out of range [1, 1048576]", c->vocab_size);
    if (c->d_model < 2 || c->d_model > 16384)
        return loom_error_set(err, "d_model %d out of range [2, 16384]", c->d_model);
    if (c->n_layers < 1 || c->n_layers > 256)
        return loom_error_set(err, "n_layers %d out of range [1, 256]", c->n_layers);
    if (c->n_heads < 1 || c->d_model % c->n_heads != 0)
        return loom_error_set(err, "n_heads %d must divide d_model %d", c->n_heads, c->d_model);
    if ((c->d_model / c->n_heads) % 2 != 0)
        return loom_error_set(err, "head dim %d must be even (rotary pairs)", c->d_model / c->n_heads);
    if (c->n_kv_heads < 1 || c->n_heads % c->n_kv_heads != 0)
        return loom_error_set(err, "n_kv_heads %d must divide n_heads %d", c->n_kv_heads, c->n_heads);
    if (c->d_ff < 1 || c->d_ff > 65536)
        return loom_error_set(err, "d_ff %d out of range [1, 65536]", c->d_ff);
    if (c->max_seq < 1 || c->max_seq > DECODER_MAX_SEQ)
        return loom_error_set(err, "max_seq %d out of range [1, %d]", c->max_seq, DECODER_MAX_SEQ);
    if (c->window < 0) return loom_error_set(err, "window %d must be >= 0", c->window);
    if (!(c->rope_theta > 0.0f) || !isfinite(c->rope_theta))
        return loom_error_set(err, "rope_theta must be positive");
    if (!(c->norm_eps > 0.0f) || !isfinite(c->norm_eps))
        return loom_error_set(err, "norm_eps must be positive");
    if (c->tie_embeddings != 0 && c->tie_embeddings != 1)
        return loom_error_set(err, "tie_embeddings must be 0 or 1");
    if (c->quant_group != 0 && q8_group_check(c->quant_group, err))
        return loom_error_wrap(err, "quant");
    if (c->quant_head != 0 && c->quant_head != 1)
        return loom_error_set(err, "quant: head must be 0 or 1");
    if (c->quant_head && !c->quant_group)
        return loom_error_set(err, "quant: an int8 head needs a quantized decoder");
    return 0;
}

char *decoder_config_to_json(const decoder_config *c) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(o, "d_model", c->d_model);
    cJSON_AddNumberToObject(o, "n_layers", c->n_layers);
    cJSON_AddNumberToObject(o, "n_heads", c->n_heads);
    cJSON_AddNumberToObject(o, "n_kv_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(o, "d_ff", c->d_ff);
    cJSON_AddNumberToObject(o, "max_seq", c->max_seq);
    cJSON_AddNumberToObject(o, "window", c->window);
    cJSON_AddNumberToObject(o, "rope_theta", c->rope_theta);
    cJSON_AddNumberToObject(o, "norm_eps", c->norm_eps);
    cJSON_AddNumberToObject(o, "tie_embeddings", c->tie_embeddings);
    if (c->quant_group > 0) { /* fp32 configs: no key, so their files are unchanged */
        cJSON *q = cJSON_AddObjectToObject(o, "quant");
        if (!q) {
            cJSON_Delete(o);
            return NULL;
        }
        cJSON_AddStringToObject(q, "type", "q8");
        cJSON_AddNumberToObject(q, "group", c->quant_group);
        cJSON_AddNumberToObject(q, "head", c->quant_head);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static int json_int(const cJSON *o, const char *key, int32_t *out, loom_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) return loom_error_set(err, "config: \"%s\" missing or not a number", key);
    double d = v->valuedouble;
    if (!(d >= -2147483648.0 && d <= 2147483647.0) || d != floor(d))
        return loom_error_set(err, "config: \"%s\" is not an integer", key);
    *out = (int32_t)d;
    return 0;
}

static int json_float(const cJSON *o, const char *key, float *out, loom_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) return loom_error_set(err, "config: \"%s\" missing or not a number", key);
    *out = (float)v->valuedouble;
    return 0;
}

int decoder_config_from_json(const char *json, decoder_config *c, loom_error *err) {
    cJSON *o = cJSON_Parse(json);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return loom_error_set(err, "config: not a JSON object");
    }
    decoder_config d = decoder_default_config();
    int rc = 0;
    rc |= json_int(o, "vocab_size", &d.vocab_size, err);
    if (!rc) rc |= json_int(o, "d_model", &d.d_model, err);
    if (!rc) rc |= json_int(o, "n_layers", &d.n_layers, err);
    if (!rc) rc |= json_int(o, "n_heads", &d.n_heads, err);
    if (!rc) rc |= json_int(o, "n_kv_heads", &d.n_kv_heads, err);
    if (!rc) rc |= json_int(o, "d_ff", &d.d_ff, err);
    if (!rc) rc |= json_int(o, "max_seq", &d.max_seq, err);
    if (!rc) rc |= json_int(o, "window", &d.window, err);
    if (!rc) rc |= json_float(o, "rope_theta", &d.rope_theta, err);
    if (!rc) rc |= json_float(o, "norm_eps", &d.norm_eps, err);
    if (!rc) rc |= json_int(o, "tie_embeddings", &d.tie_embeddings, err);
    /* "quant": {"type": "q8", "group": G, "head": 0|1}: int8 weights (absent: fp32) */
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, "quant");
    if (!rc && q) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(q, "type");
        if (!cJSON_IsObject(q) || !cJSON_IsString(type) || strcmp(type->valuestring, "q8") != 0)
            rc = loom_error_set(err, "config: \"quant\" must be {\"type\": \"q8\", \"group\": G, "
                                "\"head\": 0 or 1}");
        if (!rc) rc = json_int(q, "group", &d.quant_group, err);
        if (!rc && cJSON_GetObjectItemCaseSensitive(q, "head"))
            rc = json_int(q, "head", &d.quant_head, err);
        if (!rc && d.quant_group == 0)
            rc = loom_error_set(err, "config: \"quant\": group must be > 0");
    }
    cJSON_Delete(o);
    if (rc) return -1;
    if (decoder_config_check(&d, err)) return loom_error_wrap(err, "config");
    *c = d;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* parameters */

int64_t decoder_param_count(const decoder_config *c) {
    int64_t C = c->d_model, L = c->n_layers, V = c->vocab_size, F = c->d_ff;
    int64_t HD = C / c->n_heads, QD = c->n_heads * HD, KD = c->n_kv_heads * HD;
    int64_t per_layer = 2 * C + QD * C + 2 * KD * C + C * QD + 3 * F * C;
    return V * C + L * per_layer + C + (c->tie_embeddings ? 0 : V * C);
}

int decoder_register(const decoder_config *c, param_table *t, loom_error *err) {
    int64_t C = c->d_model, L = c->n_layers, V = c->vocab_size, F = c->d_ff;
    int64_t HD = C / c->n_heads, QD = c->n_heads * HD, KD = c->n_kv_heads * HD;
    struct { const char *name; int32_t ndim; int64_t shape[3]; int decay; } tab[] = {
        {"decoder.tok_emb", 2, {V, C}, 1},
        {"decoder.attn_norm", 2, {L, C}, 0},
        {"decoder.wq", 3, {L, QD, C}, 1},
        {"decoder.wk", 3, {L, KD, C}, 1},
        {"decoder.wv", 3, {L, KD, C}, 1},
        {"decoder.wo", 3, {L, C, QD}, 1},
        {"decoder.mlp_norm", 2, {L, C}, 0},
        {"decoder.w_gate", 3, {L, F, C}, 1},
        {"decoder.w_up", 3, {L, F, C}, 1},
        {"decoder.w_down", 3, {L, C, F}, 1},
        {"decoder.final_norm", 1, {C}, 0},
        {"decoder.lm_head", 2, {V, C}, 1},
    };
    const int n = (int)(sizeof tab / sizeof tab[0]);
    for (int i = 0; i < n; i++) {
        const int head = i == n - 1;
        if (head && c->tie_embeddings) continue;
        /* a quantized decoder's matrices live in its decoder_q8, not here */
        if (c->quant_group > 0 && tab[i].ndim == 3) continue;
        if (head && c->quant_head) continue;
        if (params_add(t, tab[i].name, tab[i].ndim, tab[i].shape, tab[i].decay, err)) return -1;
    }
    return 0;
}

static float *bind_one(const param_table *t, float *base, const char *name) {
    const param_info *p = params_find(t, name);
    return p ? base + p->offset : NULL;
}

void decoder_bind(const decoder_config *c, const param_table *t, float *base, decoder_weights *w) {
    w->tok_emb = bind_one(t, base, "decoder.tok_emb");
    w->attn_norm = bind_one(t, base, "decoder.attn_norm");
    w->wq = bind_one(t, base, "decoder.wq");
    w->wk = bind_one(t, base, "decoder.wk");
    w->wv = bind_one(t, base, "decoder.wv");
    w->wo = bind_one(t, base, "decoder.wo");
    w->mlp_norm = bind_one(t, base, "decoder.mlp_norm");
    w->w_gate = bind_one(t, base, "decoder.w_gate");
    w->w_up = bind_one(t, base, "decoder.w_up");
    w->w_down = bind_one(t, base, "decoder.w_down");
    w->final_norm = bind_one(t, base, "decoder.final_norm");
    w->lm_head = c->tie_embeddings ? w->tok_emb : bind_one(t, base, "decoder.lm_head");
    w->q8 = NULL;
}

static void fill_normal(float *p, size_t n, float std, loom_rng *rng) {
    for (size_t i = 0; i < n; i++) p[i] = std * rng_normal(rng);
}

static void fill_const(float *p, size_t n, float v) {
    for (size_t i = 0; i < n; i++) p[i] = v;
}

void decoder_init_weights(const decoder_config *c, decoder_weights *w, loom_rng *rng) {
    assert(c->quant_group == 0 && "decoder_init_weights: fp32 decoders only");
    size_t C = c->d_model, L = c->n_layers, V = c->vocab_size, F = c->d_ff;
    size_t HD = C / c->n_heads, QD = c->n_heads * HD, KD = c->n_kv_heads * HD;
    float std = 0.02f, std_out = 0.02f / sqrtf(2.0f * (float)L);
    fill_normal(w->tok_emb, V * C, std, rng);
    fill_const(w->attn_norm, L * C, 1.0f);
    fill_normal(w->wq, L * QD * C, std, rng);
    fill_normal(w->wk, L * KD * C, std, rng);
    fill_normal(w->wv, L * KD * C, std, rng);
    fill_normal(w->wo, L * C * QD, std_out, rng);
    fill_const(w->mlp_norm, L * C, 1.0f);
    fill_normal(w->w_gate, L * F * C, std, rng);
    fill_normal(w->w_up, L * F * C, std, rng);
    fill_normal(w->w_down, L * C * F, std_out, rng);
    fill_const(w->final_norm, C, 1.0f);
    if (!c->tie_embeddings) fill_normal(w->lm_head, V * C, std, rng);
}

int decoder_grow_layers(const decoder_config *from, const decoder_weights *src,
                        const decoder_config *to, decoder_weights *dst, loom_error *err) {
    if (from->d_model != to->d_model || from->n_heads != to->n_heads ||
        from->n_kv_heads != to->n_kv_heads || from->d_ff != to->d_ff)
        return loom_error_set(err, "growing a decoder: the layers differ in shape, not only in number");
    if (from->quant_group > 0 || to->quant_group > 0)
        return loom_error_set(err, "growing a decoder: a quantized (int8) decoder cannot be grown");
    const int32_t L = from->n_layers, L2 = to->n_layers, E = L2 - L;
    if (L < 1 || E < 0)
        return loom_error_set(err, "growing a decoder: %d layers cannot become %d", L, L2);
    const size_t C = from->d_model, F = from->d_ff, HD = C / from->n_heads;
    const size_t QD = from->n_heads * HD, KD = from->n_kv_heads * HD;
    struct { const float *s; float *d; size_t n; int out; } t[] = {
        {src->attn_norm, dst->attn_norm, C, 0},      {src->wq, dst->wq, QD * C, 0},
        {src->wk, dst->wk, KD * C, 0},               {src->wv, dst->wv, KD * C, 0},
        {src->wo, dst->wo, C * QD, 1},               {src->mlp_norm, dst->mlp_norm, C, 0},
        {src->w_gate, dst->w_gate, F * C, 0},        {src->w_up, dst->w_up, F * C, 0},
        {src->w_down, dst->w_down, C * F, 1},
    };
    const int nt = (int)(sizeof t / sizeof t[0]);
    int32_t j = 0; /* the next layer of dst */
    for (int32_t l = 0; l < L; l++) {
        /* layer l, then its share of the extra layers: floor((l+1)E/L) - floor(lE/L) */
        const int32_t copies = 1 + (int32_t)(((int64_t)(l + 1) * E) / L - ((int64_t)l * E) / L);
        for (int32_t k = 0; k < copies; k++, j++)
            for (int i = 0; i < nt; i++) {
                float *d = t[i].d + (size_t)j * t[i].n;
                if (k > 0 && t[i].out) memset(d, 0, t[i].n * sizeof(float));
                else memcpy(d, t[i].s + (size_t)l * t[i].n, t[i].n * sizeof(float));
            }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* int8 weights of a quantized decoder */

/* One int8 tensor stack: its name, where it lives in decoder_q8 and (fp32)
 * in decoder_weights, and its shape (NL, N, K); NL 0: a 2-D (N, K) tensor. */
typedef struct q8_entry {
    const char *name;
    size_t q8_off, w_off;
    int64_t NL, N, K;
} q8_entry;

#define Q8_ENTRIES_MAX 8

/* The int8 tensors of c in file order; returns how many (0 for fp32). */
static int q8_entries(const decoder_config *c, q8_entry e[Q8_ENTRIES_MAX]) {
    if (c->quant_group <= 0) return 0;
    const int64_t C = c->d_model, L = c->n_layers, F = c->d_ff, V = c->vocab_size;
    const int64_t HD = C / c->n_heads, QD = c->n_heads * HD, KD = c->n_kv_heads * HD;
#define Q8E(field, nl, n, k) \
    (q8_entry){"decoder." #field, offsetof(decoder_q8, field), offsetof(decoder_weights, field), nl, n, k}
    int n = 0;
    e[n++] = Q8E(wq, L, QD, C);
    e[n++] = Q8E(wk, L, KD, C);
    e[n++] = Q8E(wv, L, KD, C);
    e[n++] = Q8E(wo, L, C, QD);
    e[n++] = Q8E(w_gate, L, F, C);
    e[n++] = Q8E(w_up, L, F, C);
    e[n++] = Q8E(w_down, L, C, F);
    if (c->quant_head) e[n++] = Q8E(lm_head, 0, V, C);
#undef Q8E
    return n;
}

static decoder_q8_matrix *q8_matrix_of(decoder_q8 *q, const q8_entry *e) {
    return (decoder_q8_matrix *)((char *)q + e->q8_off);
}

static int64_t q8_rows(const q8_entry *e) { return (e->NL ? e->NL : 1) * e->N; }

/* The file shapes of e at group G: sq of "<name>.q8" (NL, N, KP), sd of
 * "<name>.q8_scale" (NL, N, KP/G), without NL for a 2-D tensor; returns ndim. */
static int32_t q8_file_shapes(const q8_entry *e, int64_t G, int64_t sq[3], int64_t sd[3]) {
    const int64_t KP = q8_padded(e->K, G);
    int32_t nd = 0;
    if (e->NL) sq[nd] = sd[nd] = e->NL, nd++;
    sq[nd] = sd[nd] = e->N, nd++;
    sq[nd] = KP, sd[nd] = KP / G, nd++;
    return nd;
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

void decoder_q8_counts(const decoder_config *c, int64_t *n_int8, int64_t *n_scales) {
    q8_entry e[Q8_ENTRIES_MAX];
    const int n = q8_entries(c, e);
    *n_int8 = *n_scales = 0;
    for (int i = 0; i < n; i++) {
        const int64_t KP = q8_padded(e[i].K, c->quant_group);
        *n_int8 += q8_rows(&e[i]) * KP;
        *n_scales += q8_rows(&e[i]) * (KP / c->quant_group);
    }
}

int decoder_q8_tensor(const decoder_config *c, int i, const decoder_q8 *q,
                      const decoder_weights *w, decoder_q8_info *out) {
    q8_entry e[Q8_ENTRIES_MAX];
    if (i < 0 || i >= q8_entries(c, e)) return 0;
    *out = (decoder_q8_info){.name = e[i].name, .NL = e[i].NL, .N = e[i].N, .K = e[i].K,
                             .KP = q8_padded(e[i].K, c->quant_group)};
    if (q) out->m = q8_matrix_of((decoder_q8 *)q, &e[i]);
    if (w) out->fp32 = *(float *const *)((const char *)w + e[i].w_off);
    return 1;
}

decoder_q8 *decoder_q8_new(const decoder_config *c, loom_error *err) {
    if (c->quant_group <= 0) return loom_error_set(err, "not a quantized decoder"), NULL;
    q8_entry e[Q8_ENTRIES_MAX];
    const int n = q8_entries(c, e);
    const int64_t G = c->quant_group;
    size_t total = 0; /* every array 64-byte aligned; sizes are bounded by decoder_config_check */
    for (int i = 0; i < n; i++) {
        const size_t vals = (size_t)(q8_rows(&e[i]) * q8_padded(e[i].K, G));
        total += align64(vals) + align64(vals / (size_t)G * sizeof(float));
    }
    decoder_q8 *q = calloc(1, sizeof *q);
    if (!q || !(q->mem = aligned_alloc(64, total ? total : 64))) {
        free(q);
        return loom_error_set(err, "out of memory for %zu MB of int8 weights", total >> 20), NULL;
    }
    memset(q->mem, 0, total);
    q->group = (int32_t)G;
    char *p = q->mem;
    for (int i = 0; i < n; i++) {
        const size_t vals = (size_t)(q8_rows(&e[i]) * q8_padded(e[i].K, G));
        decoder_q8_matrix *m = q8_matrix_of(q, &e[i]);
        m->q = (int8_t *)p;
        p += align64(vals);
        m->d = (float *)p;
        p += align64(vals / (size_t)G * sizeof(float));
    }
    return q;
}

void decoder_q8_free(decoder_q8 *q) {
    if (!q) return;
    free(q->mem);
    free(q);
}

int decoder_q8_quantize(const decoder_config *qc, decoder_q8 *q, const decoder_weights *w,
                        loom_error *err) {
    q8_entry e[Q8_ENTRIES_MAX];
    const int n = q8_entries(qc, e);
    if (n == 0 || q->group != qc->quant_group)
        return loom_error_set(err, "quantize: int8 storage does not match the config");
    for (int i = 0; i < n; i++) {
        const float *src = *(float *const *)((const char *)w + e[i].w_off);
        if (!src) return loom_error_set(err, "quantize: %s has no fp32 weights", e[i].name);
        const int64_t count = q8_rows(&e[i]) * e[i].K;
        for (int64_t j = 0; j < count; j++)
            if (!isfinite(src[j]))
                return loom_error_set(err, "quantize: %s holds a non-finite weight (%g at flat index %lld)",
                                      e[i].name, (double)src[j], (long long)j);
        decoder_q8_matrix *m = q8_matrix_of(q, &e[i]);
        q8_quantize(m->q, m->d, src, q8_rows(&e[i]), e[i].K, e[i].K, q->group);
    }
    return 0;
}

int decoder_q8_write(const decoder_config *c, const decoder_q8 *q, st_writer *w, loom_error *err) {
    q8_entry e[Q8_ENTRIES_MAX];
    const int n = q8_entries(c, e);
    for (int i = 0; i < n; i++) {
        int64_t sq[3], sd[3];
        const int32_t nd = q8_file_shapes(&e[i], c->quant_group, sq, sd);
        const decoder_q8_matrix *m = q8_matrix_of((decoder_q8 *)q, &e[i]);
        char name[96];
        snprintf(name, sizeof name, "%s.q8", e[i].name);
        if (st_writer_add(w, name, ST_I8, nd, sq, m->q, err)) return -1;
        snprintf(name, sizeof name, "%s.q8_scale", e[i].name);
        if (st_writer_add(w, name, ST_F32, nd, sd, m->d, err)) return -1;
    }
    return 0;
}

int decoder_q8_read(const decoder_config *c, decoder_q8 *q, const st_file *f, loom_error *err) {
    q8_entry e[Q8_ENTRIES_MAX];
    const int n = q8_entries(c, e);
    const int64_t G = c->quant_group;
    if (q->group != G) return loom_error_set(err, "int8 storage does not match the config");
    for (int i = 0; i < n; i++) {
        const int64_t KP = q8_padded(e[i].K, G), ng = KP / G, rows = q8_rows(&e[i]);
        int64_t sq[3], sd[3];
        const int32_t nd = q8_file_shapes(&e[i], G, sq, sd);
        decoder_q8_matrix *m = q8_matrix_of(q, &e[i]);
        char name[96];
        const void *p;
        snprintf(name, sizeof name, "%s.q8", e[i].name);
        if (st_get(f, name, ST_I8, nd, sq, &p, err)) return -1;
        memcpy(m->q, p, (size_t)(rows * KP));
        for (int64_t r = 0; r < rows; r++)
            for (int64_t k = 0; k < KP; k++) {
                const int v = m->q[r * KP + k];
                if (v < -Q8_MAX)
                    return loom_error_set(err, "%s: value %d at row %lld, column %lld is outside "
                                          "[-%d, %d]", name, v, (long long)r, (long long)k, Q8_MAX, Q8_MAX);
                if (k >= e[i].K && v != 0)
                    return loom_error_set(err, "%s: padding value %d at row %lld, column %lld "
                                          "(rows of %lld padded to %lld must end in zeros)", name, v,
                                          (long long)r, (long long)k, (long long)e[i].K, (long long)KP);
            }
        snprintf(name, sizeof name, "%s.q8_scale", e[i].name);
        if (st_get(f, name, ST_F32, nd, sd, &p, err)) return -1;
        memcpy(m->d, p, (size_t)(rows * ng) * sizeof(float));
        for (int64_t j = 0; j < rows * ng; j++)
            if (!(isfinite(m->d[j]) && m->d[j] >= 0.0f))
                return loom_error_set(err, "%s: scale %g at row %lld, group %lld is not finite and >= 0",
                                      name, (double)m->d[j], (long long)(j / ng), (long long)(j % ng));
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* kernels: each forward with its backward */

/* out = x / sqrt(mean(x^2) + eps) * w, per row of C. rstd: (N) */
static void rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int64_t N,
                            int64_t C, float eps) {
#pragma omp parallel for schedule(static) if(N * C >= 16384)
    for (int64_t i = 0; i < N; i++) {
        float r = vec_rmsnorm_forward(out + i * C, x + i * C, w, C, eps);
        if (rstd) rstd[i] = r;
    }
}

/* dx (+)= d rmsnorm / dx; dw += sum over rows of dout * x * rstd.
 * accumulate: dx += instead of dx =. */
#define NORM_DW_BLOCK 32
static void rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x,
                             const float *w, const float *rstd, int64_t N, int64_t C,
                             int accumulate) {
#pragma omp parallel for schedule(static) if(N * C >= 16384)
    for (int64_t i = 0; i < N; i++)
        vec_rmsnorm_backward(dx + i * C, dout + i * C, x + i * C, w, rstd[i], C, accumulate);
    /* The weight gradient goes by column blocks, so each thread owns its own
     * dw[j] and the sum order does not depend on the thread count. */
#pragma omp parallel for schedule(static) if(N * C >= 16384)
    for (int64_t j = 0; j < C; j += NORM_DW_BLOCK)
        vec_rmsnorm_dw(dw, dout, x, rstd, N, C, j, j + NORM_DW_BLOCK < C ? j + NORM_DW_BLOCK : C);
}

static void rope_table(float *cos_t, float *sin_t, int32_t T, int32_t HD, float theta) {
    for (int32_t t = 0; t < T; t++)
        for (int32_t i = 0; i < HD / 2; i++) {
            double freq = pow((double)theta, -2.0 * i / HD);
            double a = (double)t * freq;
            cos_t[(size_t)t * (HD / 2) + i] = (float)cos(a);
            sin_t[(size_t)t * (HD / 2) + i] = (float)sin(a);
        }
}

/* Rotates x (B, T, NH, HD) in place by each position's angles; sign = -1
 * rotates back, which is the backward of the forward rotation. */
static void rope_apply(float *x, int32_t B, int32_t T, int32_t NH, int32_t HD,
                       const float *cos_t, const float *sin_t, float sign) {
#pragma omp parallel for collapse(2) schedule(static) if((int64_t)B * T * NH * HD >= 16384)
    for (int32_t b = 0; b < B; b++)
        for (int32_t t = 0; t < T; t++) {
            const float *ct = cos_t + (size_t)t * (HD / 2), *st = sin_t + (size_t)t * (HD / 2);
            for (int32_t h = 0; h < NH; h++) {
                float *v = x + (((size_t)b * T + t) * NH + h) * HD;
                for (int32_t i = 0; i < HD / 2; i++) {
                    float c = ct[i], s = sign * st[i];
                    float x0 = v[2 * i], x1 = v[2 * i + 1];
                    v[2 * i] = x0 * c - x1 * s;
                    v[2 * i + 1] = x0 * s + x1 * c;
                }
            }
        }
}

static inline int32_t window_start(int32_t i, int32_t window) {
    return (window > 0 && i - window + 1 > 0) ? i - window + 1 : 0;
}

/* Causal (optionally windowed) attention, per (batch, head) with small
 * single-threaded sgemms inside one OpenMP loop. Queries go in blocks of
 * ATT_QBLOCK rows, and each block multiplies only the keys some row of it may
 * see, so fully masked blocks above the diagonal (and left of the window) are
 * never computed.
 * q (B, T, H, HD), k v (B, T, KVH, HD) -> out (B, T, H, HD),
 * att (B, H, T, T) probabilities; only each block's key range [jlo, i1) is
 * written (zero outside each row's band), and only that range is read back. */
#define ATT_QBLOCK 32

static void attention_forward(float *out, float *att, const float *q, const float *k,
                              const float *v, int32_t B, int32_t T, int32_t H, int32_t KVH,
                              int32_t HD, int32_t window) {
    const int32_t group = H / KVH;
    const float scale = 1.0f / sqrtf((float)HD);
    const int64_t qs = (int64_t)H * HD, ks = (int64_t)KVH * HD;
#pragma omp parallel for collapse(2) schedule(static) if(B * H > 1)
    for (int32_t b = 0; b < B; b++)
        for (int32_t h = 0; h < H; h++) {
            const int32_t kh = h / group;
            const float *qb = q + (size_t)b * T * qs + (size_t)h * HD;
            const float *kb = k + (size_t)b * T * ks + (size_t)kh * HD;
            const float *vb = v + (size_t)b * T * ks + (size_t)kh * HD;
            float *ob = out + (size_t)b * T * qs + (size_t)h * HD;
            float *P = att + ((size_t)b * H + h) * T * T;
            for (int32_t i0 = 0; i0 < T; i0 += ATT_QBLOCK) {
                const int32_t i1 = i0 + ATT_QBLOCK < T ? i0 + ATT_QBLOCK : T;
                const int32_t jlo = window_start(i0, window);
                float *Pb = P + (size_t)i0 * T + jlo;
                gemm_nt(i1 - i0, i1 - jlo, HD, qb + i0 * qs, qs, kb + jlo * ks, ks, 0.0f, Pb, T);
                for (int32_t i = i0; i < i1; i++) {
                    float *row = P + (size_t)i * T;
                    const int32_t j0 = window_start(i, window);
                    /* softmax of the scaled scores (scale > 0 keeps the max) */
                    const int32_t n = i + 1 - j0;
                    const float maxv = vec_max(row + j0, n) * scale;
                    const float sum = vec_exp_sum(row + j0, row + j0, scale, maxv, n);
                    for (int32_t j = jlo; j < j0; j++) row[j] = 0.0f;
                    vec_scale(row + j0, 1.0f / sum, n);
                    for (int32_t j = i + 1; j < i1; j++) row[j] = 0.0f;
                }
                gemm_nn(i1 - i0, HD, i1 - jlo, Pb, T, vb + jlo * ks, ks, 0.0f, ob + i0 * qs, qs);
            }
        }
}

/* Backward of attention_forward: dq, dk, dv are overwritten. datt (B, H, T, T)
 * is scratch, used in the same block ranges as att. Work is split by
 * (batch, kv head) so each thread owns its dk/dv rows. */
static void attention_backward(float *dq, float *dk, float *dv, float *datt, const float *dout,
                               const float *att, const float *q, const float *k, const float *v,
                               int32_t B, int32_t T, int32_t H, int32_t KVH, int32_t HD,
                               int32_t window) {
    const int32_t group = H / KVH;
    const float scale = 1.0f / sqrtf((float)HD);
    const int64_t qs = (int64_t)H * HD, ks = (int64_t)KVH * HD;
#pragma omp parallel for collapse(2) schedule(static) if(B * KVH > 1)
    for (int32_t b = 0; b < B; b++)
        for (int32_t kh = 0; kh < KVH; kh++) {
            const float *kb = k + (size_t)b * T * ks + (size_t)kh * HD;
            const float *vb = v + (size_t)b * T * ks + (size_t)kh * HD;
            float *dkb = dk + (size_t)b * T * ks + (size_t)kh * HD;
            float *dvb = dv + (size_t)b * T * ks + (size_t)kh * HD;
            for (int32_t t = 0; t < T; t++)
                for (int32_t d = 0; d < HD; d++) dkb[t * ks + d] = dvb[t * ks + d] = 0.0f;
            for (int32_t h = kh * group; h < (kh + 1) * group; h++) {
                const float *P = att + ((size_t)b * H + h) * T * T;
                float *dS = datt + ((size_t)b * H + h) * T * T;
                const float *dob = dout + (size_t)b * T * qs + (size_t)h * HD;
                const float *qb = q + (size_t)b * T * qs + (size_t)h * HD;
                float *dqb = dq + (size_t)b * T * qs + (size_t)h * HD;
                for (int32_t i0 = 0; i0 < T; i0 += ATT_QBLOCK) {
                    const int32_t i1 = i0 + ATT_QBLOCK < T ? i0 + ATT_QBLOCK : T;
                    const int32_t jlo = window_start(i0, window);
                    const int32_t m = i1 - i0, n = i1 - jlo;
                    const float *Pb = P + (size_t)i0 * T + jlo;
                    float *dSb = dS + (size_t)i0 * T + jlo;
                    gemm_tn(n, HD, m, Pb, T, dob + i0 * qs, qs, 1.0f, dvb + jlo * ks, ks); /* dV += P^T dO */
                    gemm_nt(m, n, HD, dob + i0 * qs, qs, vb + jlo * ks, ks, 0.0f, dSb, T);  /* dP = dO V^T */
                    for (int32_t i = i0; i < i1; i++) {
                        const float *p = P + (size_t)i * T;
                        float *ds = dS + (size_t)i * T;
                        const int32_t j0 = window_start(i, window);
                        float sum = 0.0f;
                        for (int32_t j = j0; j <= i; j++) sum += p[j] * ds[j];
                        for (int32_t j = jlo; j < j0; j++) ds[j] = 0.0f;
                        for (int32_t j = j0; j <= i; j++) ds[j] = p[j] * (ds[j] - sum) * scale;
                        for (int32_t j = i + 1; j < i1; j++) ds[j] = 0.0f;
                    }
                    gemm_nn(m, HD, n, dSb, T, kb + jlo * ks, ks, 0.0f, dqb + i0 * qs, qs); /* dQ = dS K */
                    gemm_tn(n, HD, m, dSb, T, qb + i0 * qs, qs, 1.0f, dkb + jlo * ks, ks); /* dK += dS^T Q */
                }
            }
        }
}

/* act = silu(gate) * up, elementwise over n, in chunks across threads. */
#define ELEM_CHUNK 4096
static void swiglu_forward(float *act, const float *gate, const float *up, int64_t n) {
#pragma omp parallel for schedule(static) if(n >= 4 * ELEM_CHUNK)
    for (int64_t i = 0; i < n; i += ELEM_CHUNK)
        vec_swiglu_forward(act + i, gate + i, up + i, i + ELEM_CHUNK < n ? ELEM_CHUNK : n - i);
}

static void swiglu_backward(float *dgate, float *dup, const float *dact, const float *gate,
                            const float *up, int64_t n) {
#pragma omp parallel for schedule(static) if(n >= 4 * ELEM_CHUNK)
    for (int64_t i = 0; i < n; i += ELEM_CHUNK)
        vec_swiglu_backward(dgate + i, dup + i, dact + i, gate + i, up + i,
                            i + ELEM_CHUNK < n ? ELEM_CHUNK : n - i);
}

/* Per-position cross-entropy of logits (N, V) against targets (-1 = skip). */
static void crossentropy_forward(float *losses, const float *logits, const int32_t *targets,
                                 int64_t N, int64_t V) {
#pragma omp parallel for schedule(static) if(N * V >= 16384)
    for (int64_t i = 0; i < N; i++) {
        losses[i] = 0.0f;
        int32_t t = targets[i];
        if (t < 0) continue;
        const float *li = logits + i * V;
        const float maxv = vec_max(li, V);
        const float sum = vec_exp_sum(NULL, li, 1.0f, maxv, V);
        losses[i] = (float)(log((double)sum) + maxv - li[t]);
    }
}

/* In place: logits (N, V) -> d loss / d logits, with loss = scale * sum of losses. */
static void crossentropy_backward(float *logits, const int32_t *targets, int64_t N, int64_t V,
                                  float scale) {
#pragma omp parallel for schedule(static) if(N * V >= 16384)
    for (int64_t i = 0; i < N; i++) {
        float *li = logits + i * V;
        int32_t t = targets[i];
        if (t < 0) {
            memset(li, 0, (size_t)V * sizeof *li);
            continue;
        }
        const float maxv = vec_max(li, V);
        const float sum = vec_exp_sum(li, li, 1.0f, maxv, V);
        vec_scale(li, scale / sum, V);
        li[t] -= scale;
    }
}

/* ------------------------------------------------------------------------ */
/* activations */

/* Floats of the scratch that holds `rows` quantized activation rows of a
 * quantized decoder: nq for the int8 values (rows, KP of the widest input),
 * nd for their scales; both 0 for an fp32 decoder. */
static void q8_scratch_floats(const decoder_config *c, size_t rows, size_t *nq, size_t *nd) {
    *nq = *nd = 0;
    if (c->quant_group <= 0) return;
    const int64_t HD = c->d_model / c->n_heads, QD = (int64_t)c->n_heads * HD;
    int64_t K = c->d_model > c->d_ff ? c->d_model : c->d_ff;
    if (QD > K) K = QD;
    const size_t KP = (size_t)q8_padded(K, c->quant_group);
    *nq = (rows * KP + sizeof(float) - 1) / sizeof(float);
    *nd = rows * (KP / (size_t)c->quant_group);
}

/* One arena for a table of float buffers plus, for a quantized decoder, the
 * int8 activation scratch (nq, nd floats from q8_scratch_floats): planned,
 * allocated once, handed out. */
typedef struct buf_spec {
    float **p;
    size_t n;
} buf_spec;

static int arena_carve(arena *mem, const buf_spec *tab, size_t n, size_t nq, size_t nd, int8_t **xq,
                       float **xd, loom_error *err) {
    for (size_t i = 0; i < n; i++) arena_plan(mem, tab[i].n);
    if (nq) arena_plan(mem, nq), arena_plan(mem, nd);
    if (arena_alloc(mem, err)) return -1;
    for (size_t i = 0; i < n; i++) *tab[i].p = arena_take(mem, tab[i].n);
    if (nq) *xq = (int8_t *)arena_take(mem, nq), *xd = arena_take(mem, nd);
    return 0;
}

decoder_acts *decoder_acts_new(const decoder_config *c, int32_t B, int32_t T, loom_error *err) {
    if (B < 1 || T < 1 || T > c->max_seq)
        return loom_error_set(err, "batch %d x %d does not fit (max_seq %d)", B, T, c->max_seq),
               NULL;
    decoder_acts *a = calloc(1, sizeof *a);
    if (!a) return loom_error_set(err, "out of memory"), NULL;
    a->B = B;
    a->T = T;
    size_t BT = (size_t)B * T, C = c->d_model, L = c->n_layers, V = c->vocab_size, F = c->d_ff;
    size_t HD = C / c->n_heads, QD = c->n_heads * HD, KD = c->n_kv_heads * HD, H = c->n_heads;
    const buf_spec tab[] = {
        {&a->rope_cos, (size_t)T * HD / 2}, {&a->rope_sin, (size_t)T * HD / 2},
        {&a->x0, BT * C}, {&a->resid, (L + 1) * BT * C}, {&a->xmid, L * BT * C},
        {&a->ln1, L * BT * C}, {&a->ln2, L * BT * C}, {&a->rstd1, L * BT}, {&a->rstd2, L * BT},
        {&a->q, L * BT * QD}, {&a->k, L * BT * KD}, {&a->v, L * BT * KD},
        {&a->att, L * B * H * (size_t)T * T}, {&a->atty, L * BT * QD},
        {&a->gate, L * BT * F}, {&a->up, L * BT * F}, {&a->act, L * BT * F},
        {&a->lnf, BT * C}, {&a->rstdf, BT}, {&a->logits, BT * V}, {&a->losses, BT},
        {&a->datt, (size_t)B * H * T * T}, {&a->dx, BT * C}, {&a->dln, BT * C}, {&a->dq, BT * QD}, {&a->datty, BT * QD},
        {&a->dk, BT * KD}, {&a->dv, BT * KD}, {&a->dgate, BT * F}, {&a->dup, BT * F},
        {&a->dact, BT * F}, {&a->dx0, BT * C},
    };
    size_t nq, nd;
    q8_scratch_floats(c, BT, &nq, &nd);
    if (arena_carve(&a->mem, tab, sizeof tab / sizeof tab[0], nq, nd, &a->xq, &a->xd, err)) {
        free(a);
        return loom_error_wrap(err, "activations"), NULL;
    }
    rope_table(a->rope_cos, a->rope_sin, T, (int32_t)HD, c->rope_theta);
    return a;
}

void decoder_acts_free(decoder_acts *a) {
    if (!a) return;
    arena_free(&a->mem);
    free(a);
}

void decoder_embed(const decoder_config *c, const decoder_weights *w, const int32_t *tokens,
                   int64_t n, float *x0) {
    size_t C = c->d_model;
    for (int64_t i = 0; i < n; i++) memcpy(x0 + i * C, w->tok_emb + (size_t)tokens[i] * C, C * 4);
}

void decoder_embed_backward(const decoder_config *c, decoder_weights *g, const int32_t *tokens,
                            int64_t n, const float *dx0) {
    size_t C = c->d_model;
    for (int64_t i = 0; i < n; i++) {
        float *row = g->tok_emb + (size_t)tokens[i] * C;
        const float *d = dx0 + i * C;
        for (size_t j = 0; j < C; j++) row[j] += d[j];
    }
}

/* ------------------------------------------------------------------------ */
/* forward and backward */

/* The int8 version of a weight matrix, or NULL when the decoder is fp32. */
#define Q8_OF(w, field) ((w)->q8 ? &(w)->q8->field : NULL)
#define Q8_HEAD(w) ((w)->q8 && (w)->q8->lm_head.q ? &(w)->q8->lm_head : NULL)

/* y (M, N) = x (M, K) W^T through the int8 matrix qm (layer l of an (L, N, K)
 * stack): x is quantized by groups of G into xq (M, KP), xd (M, KP/G) first.
 * beta 0 overwrites y, 1 adds to it. */
static void linear_q8(float *y, const float *x, int64_t M, int64_t N, int64_t K,
                      const decoder_q8_matrix *qm, int64_t l, int32_t G, float beta, int8_t *xq,
                      float *xd) {
    const int64_t KP = q8_padded(K, G);
    q8_quantize(xq, xd, x, M, K, K, G);
    q8_matmul(y, N, xq, xd, M, qm->q + l * N * KP, qm->d + l * N * (KP / G), N, KP, G, beta);
}

/* y (M, N) (+)= x (M, K) W^T, W layer l of an (L, N, K) stack: fp32 W by
 * gemm_nt, or its int8 version qm when not NULL (then W is not touched). */
static void linear_forward(float *y, const float *x, int64_t M, int64_t N, int64_t K,
                           const float *W, const decoder_q8_matrix *qm, int64_t l, int32_t G,
                           float beta, int8_t *xq, float *xd) {
    if (qm) linear_q8(y, x, M, N, K, qm, l, G, beta, xq, xd);
    else gemm_nt(M, N, K, x, K, W + l * N * K, K, beta, y, N);
}

float decoder_forward(const decoder_config *c, const decoder_weights *w, decoder_acts *a,
                      int32_t B, int32_t T, const int32_t *targets) {
    const int64_t BT = (int64_t)B * T, C = c->d_model, V = c->vocab_size, F = c->d_ff;
    const int32_t H = c->n_heads, KVH = c->n_kv_heads, HD = c->d_model / c->n_heads;
    const int64_t QD = (int64_t)H * HD, KD = (int64_t)KVH * HD;
    const int32_t G = c->quant_group;
    memcpy(a->resid, a->x0, (size_t)(BT * C) * sizeof(float));
    for (int32_t l = 0; l < c->n_layers; l++) {
        float *xin = a->resid + l * BT * C, *xout = a->resid + (l + 1) * BT * C;
        float *xmid = a->xmid + l * BT * C;
        float *ln1 = a->ln1 + l * BT * C, *ln2 = a->ln2 + l * BT * C;
        float *q = a->q + l * BT * QD, *k = a->k + l * BT * KD, *v = a->v + l * BT * KD;
        float *att = a->att + (size_t)l * B * H * T * T, *atty = a->atty + l * BT * QD;
        float *gate = a->gate + l * BT * F, *up = a->up + l * BT * F, *act = a->act + l * BT * F;
        /* attention block */
        rmsnorm_forward(ln1, a->rstd1 + l * BT, xin, w->attn_norm + l * C, BT, C, c->norm_eps);
        linear_forward(q, ln1, BT, QD, C, w->wq, Q8_OF(w, wq), l, G, 0.0f, a->xq, a->xd);
        linear_forward(k, ln1, BT, KD, C, w->wk, Q8_OF(w, wk), l, G, 0.0f, a->xq, a->xd);
        linear_forward(v, ln1, BT, KD, C, w->wv, Q8_OF(w, wv), l, G, 0.0f, a->xq, a->xd);
        rope_apply(q, B, T, H, HD, a->rope_cos, a->rope_sin, 1.0f);
        rope_apply(k, B, T, KVH, HD, a->rope_cos, a->rope_sin, 1.0f);
        attention_forward(atty, att, q, k, v, B, T, H, KVH, HD, c->window);
        memcpy(xmid, xin, (size_t)(BT * C) * sizeof(float));
        linear_forward(xmid, atty, BT, C, QD, w->wo, Q8_OF(w, wo), l, G, 1.0f, a->xq, a->xd);
        /* MLP block */
        rmsnorm_forward(ln2, a->rstd2 + l * BT, xmid, w->mlp_norm + l * C, BT, C, c->norm_eps);
        linear_forward(gate, ln2, BT, F, C, w->w_gate, Q8_OF(w, w_gate), l, G, 0.0f, a->xq, a->xd);
        linear_forward(up, ln2, BT, F, C, w->w_up, Q8_OF(w, w_up), l, G, 0.0f, a->xq, a->xd);
        swiglu_forward(act, gate, up, BT * F);
        memcpy(xout, xmid, (size_t)(BT * C) * sizeof(float));
        linear_forward(xout, act, BT, C, F, w->w_down, Q8_OF(w, w_down), l, G, 1.0f, a->xq, a->xd);
    }
    rmsnorm_forward(a->lnf, a->rstdf, a->resid + c->n_layers * BT * C, w->final_norm, BT, C,
                    c->norm_eps);
    linear_forward(a->logits, a->lnf, BT, V, C, w->lm_head, Q8_HEAD(w), 0, G, 0.0f, a->xq, a->xd);
    if (!targets) return 0.0f;
    crossentropy_forward(a->losses, a->logits, targets, BT, V);
    double sum = 0.0;  /* summed in order: the same bits at any thread count */
    int64_t count = 0;
    for (int64_t i = 0; i < BT; i++)
        if (targets[i] >= 0) {
            sum += a->losses[i];
            count++;
        }
    return count ? (float)(sum / (double)count) : 0.0f;
}

void decoder_backward(const decoder_config *c, const decoder_weights *w, decoder_weights *g,
                      decoder_acts *a, int32_t B, int32_t T, const int32_t *targets,
                      float loss_scale) {
    const int64_t BT = (int64_t)B * T, C = c->d_model, V = c->vocab_size, F = c->d_ff;
    const int32_t H = c->n_heads, KVH = c->n_kv_heads, HD = c->d_model / c->n_heads;
    const int64_t QD = (int64_t)H * HD, KD = (int64_t)KVH * HD;
    assert(!w->q8 && c->quant_group == 0 && "decoder_backward: fp32 decoders only");
    int64_t count = 0;
    for (int64_t i = 0; i < BT; i++) count += targets[i] >= 0;
    float scale = count ? loss_scale / (float)count : 0.0f;

    /* head and final norm */
    crossentropy_backward(a->logits, targets, BT, V, scale);
    gemm_nn(BT, C, V, a->logits, V, w->lm_head, C, 0.0f, a->dln, C);
    gemm_tn(V, C, BT, a->logits, V, a->lnf, C, 1.0f, g->lm_head, C);
    rmsnorm_backward(a->dx, g->final_norm, a->dln, a->resid + c->n_layers * BT * C,
                     w->final_norm, a->rstdf, BT, C, 0);

    for (int32_t l = c->n_layers - 1; l >= 0; l--) {
        float *xin = a->resid + l * BT * C, *xmid = a->xmid + l * BT * C;
        float *ln1 = a->ln1 + l * BT * C, *ln2 = a->ln2 + l * BT * C;
        float *q = a->q + l * BT * QD, *k = a->k + l * BT * KD, *v = a->v + l * BT * KD;
        float *att = a->att + (size_t)l * B * H * T * T, *atty = a->atty + l * BT * QD;
        float *gate = a->gate + l * BT * F, *up = a->up + l * BT * F, *act = a->act + l * BT * F;
        /* MLP block: xout = xmid + act w_down^T; a->dx holds d xout */
        gemm_nn(BT, F, C, a->dx, C, w->w_down + l * C * F, F, 0.0f, a->dact, F);
        gemm_tn(C, F, BT, a->dx, C, act, F, 1.0f, g->w_down + l * C * F, F);
        swiglu_backward(a->dgate, a->dup, a->dact, gate, up, BT * F);
        gemm_nn(BT, C, F, a->dgate, F, w->w_gate + l * F * C, C, 0.0f, a->dln, C);
        gemm_nn(BT, C, F, a->dup, F, w->w_up + l * F * C, C, 1.0f, a->dln, C);
        gemm_tn(F, C, BT, a->dgate, F, ln2, C, 1.0f, g->w_gate + l * F * C, C);
        gemm_tn(F, C, BT, a->dup, F, ln2, C, 1.0f, g->w_up + l * F * C, C);
        rmsnorm_backward(a->dx, g->mlp_norm + l * C, a->dln, xmid, w->mlp_norm + l * C,
                         a->rstd2 + l * BT, BT, C, 1);
        /* attention block: xmid = xin + atty wo^T; a->dx holds d xmid */
        gemm_nn(BT, QD, C, a->dx, C, w->wo + l * C * QD, QD, 0.0f, a->datty, QD);
        gemm_tn(C, QD, BT, a->dx, C, atty, QD, 1.0f, g->wo + l * C * QD, QD);
        attention_backward(a->dq, a->dk, a->dv, a->datt, a->datty, att, q, k, v, B, T, H, KVH,
                           HD, c->window);
        rope_apply(a->dq, B, T, H, HD, a->rope_cos, a->rope_sin, -1.0f);
        rope_apply(a->dk, B, T, KVH, HD, a->rope_cos, a->rope_sin, -1.0f);
        gemm_nn(BT, C, QD, a->dq, QD, w->wq + l * QD * C, C, 0.0f, a->dln, C);
        gemm_nn(BT, C, KD, a->dk, KD, w->wk + l * KD * C, C, 1.0f, a->dln, C);
        gemm_nn(BT, C, KD, a->dv, KD, w->wv + l * KD * C, C, 1.0f, a->dln, C);
        gemm_tn(QD, C, BT, a->dq, QD, ln1, C, 1.0f, g->wq + l * QD * C, C);
        gemm_tn(KD, C, BT, a->dk, KD, ln1, C, 1.0f, g->wk + l * KD * C, C);
        gemm_tn(KD, C, BT, a->dv, KD, ln1, C, 1.0f, g->wv + l * KD * C, C);
        rmsnorm_backward(a->dx, g->attn_norm + l * C, a->dln, xin, w->attn_norm + l * C,
                         a->rstd1 + l * BT, BT, C, 1);
    }
    memcpy(a->dx0, a->dx, (size_t)(BT * C) * sizeof(float));
}

/* ------------------------------------------------------------------------ */
/* incremental decoding */

decoder_cache *decoder_cache_new(const decoder_config *c, int32_t max_seq, loom_error *err) {
    if (max_seq < 1 || max_seq > c->max_seq)
        return loom_error_set(err, "cache length %d out of range [1, %d]", max_seq, c->max_seq),
               NULL;
    decoder_cache *kc = calloc(1, sizeof *kc);
    if (!kc) return loom_error_set(err, "out of memory"), NULL;
    kc->max_seq = max_seq;
    size_t C = c->d_model, L = c->n_layers, F = c->d_ff, S = (size_t)max_seq;
    size_t HD = C / c->n_heads, QD = c->n_heads * HD, KD = c->n_kv_heads * HD;
    const buf_spec tab[] = {
        {&kc->k, L * S * KD}, {&kc->v, L * S * KD}, {&kc->rope_cos, S * HD / 2},
        {&kc->rope_sin, S * HD / 2}, {&kc->x, C}, {&kc->h, C}, {&kc->q, QD}, {&kc->atty, QD},
        {&kc->gate, F}, {&kc->up, F}, {&kc->scores, S},
    };
    size_t nq, nd;
    q8_scratch_floats(c, 1, &nq, &nd);
    if (arena_carve(&kc->mem, tab, sizeof tab / sizeof tab[0], nq, nd, &kc->xq, &kc->xd, err)) {
        free(kc);
        return loom_error_wrap(err, "KV cache"), NULL;
    }
    rope_table(kc->rope_cos, kc->rope_sin, max_seq, (int32_t)HD, c->rope_theta);
    return kc;
}

void decoder_cache_free(decoder_cache *kc) {
    if (!kc) return;
    arena_free(&kc->mem);
    free(kc);
}

void decoder_cache_reset(decoder_cache *kc) { kc->n = 0; }

/* One query row of head hh against cache kc of layer l up to position pos:
 * decoder_step's and decoder_step_batch's attention. */
static void step_attend(const decoder_config *c, const decoder_cache *kc, int32_t l, int32_t pos,
                        const float *qh, int32_t kh, float *sc, float *oh) {
    const int32_t HD = c->d_model / c->n_heads, j0 = window_start(pos, c->window);
    const int64_t KD = (int64_t)c->n_kv_heads * HD, S = kc->max_seq;
    const float *kl = kc->k + (size_t)l * S * KD, *vl = kc->v + (size_t)l * S * KD;
    const float scale = 1.0f / sqrtf((float)HD);
    float maxv = -INFINITY, sum = 0.0f;
    for (int32_t j = j0; j <= pos; j++) {
        const float *kj = kl + (size_t)j * KD + (size_t)kh * HD;
        float s = 0.0f;
        for (int32_t d = 0; d < HD; d++) s += qh[d] * kj[d];
        sc[j] = s * scale;
        if (sc[j] > maxv) maxv = sc[j];
    }
    for (int32_t j = j0; j <= pos; j++) {
        sc[j] = expf(sc[j] - maxv);
        sum += sc[j];
    }
    for (int32_t d = 0; d < HD; d++) oh[d] = 0.0f;
    for (int32_t j = j0; j <= pos; j++) {
        const float *vj = vl + (size_t)j * KD + (size_t)kh * HD;
        float p = sc[j] / sum;
        for (int32_t d = 0; d < HD; d++) oh[d] += p * vj[d];
    }
}

/* y (N) = W x (K) (beta 0), or y += W x (beta 1), W layer l of an (L, N, K)
 * stack: fp32 W by loom_gemv_nt, or its int8 version qm when not NULL. */
static void linear_step(float *y, const float *x, int64_t N, int64_t K, const float *W,
                        const decoder_q8_matrix *qm, int64_t l, int32_t G, float beta,
                        decoder_cache *kc) {
    if (qm)
        linear_q8(y, x, 1, N, K, qm, l, G, beta, kc->xq, kc->xd);
    else
        loom_gemv_nt(1, N, K, x, K, W + l * N * K, K, beta, y, N);
}

int decoder_step(const decoder_config *c, const decoder_weights *w, decoder_cache *kc,
                 const float *x_in, float *logits, loom_error *err) {
    if (kc->n >= kc->max_seq)
        return loom_error_set(err, "context full (%d positions)", kc->max_seq);
    const int64_t C = c->d_model, F = c->d_ff, S = kc->max_seq;
    const int32_t H = c->n_heads, KVH = c->n_kv_heads, HD = c->d_model / c->n_heads;
    const int64_t QD = (int64_t)H * HD, KD = (int64_t)KVH * HD;
    const int32_t pos = kc->n, group = H / KVH, G = c->quant_group;
    float *x = kc->x, *h = kc->h;
    memcpy(x, x_in, (size_t)C * sizeof(float));
    for (int32_t l = 0; l < c->n_layers; l++) {
        float *kl = kc->k + (size_t)l * S * KD, *vl = kc->v + (size_t)l * S * KD;
        rmsnorm_forward(h, NULL, x, w->attn_norm + l * C, 1, C, c->norm_eps);
        linear_step(kc->q, h, QD, C, w->wq, Q8_OF(w, wq), l, G, 0.0f, kc);
        linear_step(kl + pos * KD, h, KD, C, w->wk, Q8_OF(w, wk), l, G, 0.0f, kc);
        linear_step(vl + pos * KD, h, KD, C, w->wv, Q8_OF(w, wv), l, G, 0.0f, kc);
        rope_apply(kc->q, 1, 1, H, HD, kc->rope_cos + (size_t)pos * (HD / 2),
                   kc->rope_sin + (size_t)pos * (HD / 2), 1.0f);
        rope_apply(kl + pos * KD, 1, 1, KVH, HD, kc->rope_cos + (size_t)pos * (HD / 2),
                   kc->rope_sin + (size_t)pos * (HD / 2), 1.0f);
        for (int32_t hh = 0; hh < H; hh++)
            step_attend(c, kc, l, pos, kc->q + (size_t)hh * HD, hh / group, kc->scores,
                        kc->atty + (size_t)hh * HD);
        linear_step(x, kc->atty, C, QD, w->wo, Q8_OF(w, wo), l, G, 1.0f, kc);
        rmsnorm_forward(h, NULL, x, w->mlp_norm + l * C, 1, C, c->norm_eps);
        linear_step(kc->gate, h, F, C, w->w_gate, Q8_OF(w, w_gate), l, G, 0.0f, kc);
        linear_step(kc->up, h, F, C, w->w_up, Q8_OF(w, w_up), l, G, 0.0f, kc);
        vec_swiglu_forward(kc->gate, kc->gate, kc->up, F);  /* in place */
        linear_step(x, kc->gate, C, F, w->w_down, Q8_OF(w, w_down), l, G, 1.0f, kc);
    }
    kc->n++;
    if (logits) {
        rmsnorm_forward(h, NULL, x, w->final_norm, 1, C, c->norm_eps);
        linear_step(logits, h, c->vocab_size, C, w->lm_head, Q8_HEAD(w), 0, G, 0.0f, kc);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* batched incremental decoding */

struct decoder_batch {
    int32_t max_batch, max_seq;
    float *x, *h, *q, *k, *v, *atty, *gate, *up; /* (max_batch, width) */
    float *scores;      /* (max_batch * H, max_seq) */
    int8_t *xq;         /* quantized decoder: (max_batch, KP); else NULL */
    float *xd;
    arena mem;
};

decoder_batch *decoder_batch_new(const decoder_config *c, int32_t max_batch, int32_t max_seq,
                                 loom_error *err) {
    if (max_batch < 1 || max_batch > 4096 || max_seq < 1 || max_seq > c->max_seq)
        return loom_error_set(err, "batch of %d sequences of %d positions out of range", max_batch,
                              max_seq), NULL;
    decoder_batch *b = calloc(1, sizeof *b);
    if (!b) return loom_error_set(err, "out of memory"), NULL;
    b->max_batch = max_batch;
    b->max_seq = max_seq;
    size_t n = (size_t)max_batch, C = c->d_model, F = c->d_ff, H = c->n_heads;
    size_t HD = C / H, QD = H * HD, KD = (size_t)c->n_kv_heads * HD;
    const buf_spec tab[] = {
        {&b->x, n * C}, {&b->h, n * C}, {&b->q, n * QD}, {&b->k, n * KD}, {&b->v, n * KD},
        {&b->atty, n * QD}, {&b->gate, n * F}, {&b->up, n * F}, {&b->scores, n * H * (size_t)max_seq},
    };
    size_t nq, nd;
    q8_scratch_floats(c, n, &nq, &nd);
    if (arena_carve(&b->mem, tab, sizeof tab / sizeof tab[0], nq, nd, &b->xq, &b->xd, err)) {
        free(b);
        return loom_error_wrap(err, "batch scratch"), NULL;
    }
    return b;
}

void decoder_batch_free(decoder_batch *b) {
    if (!b) return;
    arena_free(&b->mem);
    free(b);
}

int32_t decoder_batch_capacity(const decoder_batch *b) { return b->max_batch; }

/* linear_forward for the rows of a batched step: loom_gemv_nt, 16 rows at a
 * time, reads each fp32 weight once per 16 rows and gives each row the bits
 * it gets alone (as does q8_matmul). */
static void linear_rows(float *y, const float *x, int64_t M, int64_t N, int64_t K, const float *W,
                        const decoder_q8_matrix *qm, int64_t l, int32_t G, float beta, int8_t *xq,
                        float *xd) {
    if (qm) {
        linear_forward(y, x, M, N, K, W, qm, l, G, beta, xq, xd);
        return;
    }
    for (int64_t m0 = 0; m0 < M; m0 += 16)
        loom_gemv_nt(M - m0 < 16 ? M - m0 : 16, N, K, x + m0 * K, K, W + l * N * K, K, beta,
                     y + m0 * N, N);
}

int decoder_step_batch(const decoder_config *c, const decoder_weights *w, decoder_cache *const *kc,
                       int32_t n, decoder_batch *b, const float *x_in, float *logits,
                       loom_error *err) {
    if (n < 1 || n > b->max_batch)
        return loom_error_set(err, "batch of %d sequences (room for %d)", n, b->max_batch);
    if (n == 1 && kc[0]->max_seq <= b->max_seq) /* alone: the matrix-vector path */
        return decoder_step(c, w, kc[0], x_in, logits, err);
    for (int32_t i = 0; i < n; i++) {
        if (kc[i]->n >= kc[i]->max_seq)
            return loom_error_set(err, "sequence %d: context full (%d positions)", i, kc[i]->max_seq);
        if (kc[i]->max_seq > b->max_seq)
            return loom_error_set(err, "sequence %d: cache of %d positions, batch scratch for %d", i,
                                  kc[i]->max_seq, b->max_seq);
    }
    const int64_t C = c->d_model, F = c->d_ff;
    const int32_t H = c->n_heads, KVH = c->n_kv_heads, HD = c->d_model / c->n_heads;
    const int64_t QD = (int64_t)H * HD, KD = (int64_t)KVH * HD;
    const int32_t group = H / KVH, G = c->quant_group;
    float *x = b->x, *h = b->h;
    memcpy(x, x_in, (size_t)(n * C) * sizeof(float));
    for (int32_t l = 0; l < c->n_layers; l++) {
        rmsnorm_forward(h, NULL, x, w->attn_norm + l * C, n, C, c->norm_eps);
        linear_rows(b->q, h, n, QD, C, w->wq, Q8_OF(w, wq), l, G, 0.0f, b->xq, b->xd);
        linear_rows(b->k, h, n, KD, C, w->wk, Q8_OF(w, wk), l, G, 0.0f, b->xq, b->xd);
        linear_rows(b->v, h, n, KD, C, w->wv, Q8_OF(w, wv), l, G, 0.0f, b->xq, b->xd);
        for (int32_t i = 0; i < n; i++) {
            decoder_cache *ki = kc[i];
            const int32_t pos = ki->n;
            const int64_t S = ki->max_seq;
            float *kp = ki->k + (size_t)l * S * KD + pos * KD, *vp = ki->v + (size_t)l * S * KD + pos * KD;
            memcpy(kp, b->k + i * KD, (size_t)KD * sizeof(float));
            memcpy(vp, b->v + i * KD, (size_t)KD * sizeof(float));
            rope_apply(b->q + i * QD, 1, 1, H, HD, ki->rope_cos + (size_t)pos * (HD / 2),
                       ki->rope_sin + (size_t)pos * (HD / 2), 1.0f);
            rope_apply(kp, 1, 1, KVH, HD, ki->rope_cos + (size_t)pos * (HD / 2),
                       ki->rope_sin + (size_t)pos * (HD / 2), 1.0f);
        }
#pragma omp parallel for schedule(static) if (n * H >= 8)
        for (int32_t ih = 0; ih < n * H; ih++) {
            const int32_t i = ih / H, hh = ih % H;
            step_attend(c, kc[i], l, kc[i]->n, b->q + i * QD + (size_t)hh * HD, hh / group,
                        b->scores + (size_t)ih * b->max_seq, b->atty + i * QD + (size_t)hh * HD);
        }
        linear_rows(x, b->atty, n, C, QD, w->wo, Q8_OF(w, wo), l, G, 1.0f, b->xq, b->xd);
        rmsnorm_forward(h, NULL, x, w->mlp_norm + l * C, n, C, c->norm_eps);
        linear_rows(b->gate, h, n, F, C, w->w_gate, Q8_OF(w, w_gate), l, G, 0.0f, b->xq, b->xd);
        linear_rows(b->up, h, n, F, C, w->w_up, Q8_OF(w, w_up), l, G, 0.0f, b->xq, b->xd);
        vec_swiglu_forward(b->gate, b->gate, b->up, n * F);  /* in place */
        linear_rows(x, b->gate, n, C, F, w->w_down, Q8_OF(w, w_down), l, G, 1.0f, b->xq, b->xd);
    }
    for (int32_t i = 0; i < n; i++) kc[i]->n++;
    if (logits) {
        rmsnorm_forward(h, NULL, x, w->final_norm, n, C, c->norm_eps);
        linear_rows(logits, h, n, c->vocab_size, C, w->lm_head, Q8_HEAD(w), 0, G, 0.0f, b->xq, b->xd);
    }
    return 0;
}

int decoder_prefill(const decoder_config *c, const decoder_weights *w, decoder_cache *kc,
                    decoder_acts *a, int32_t T, float *logits, loom_error *err) {
    if (kc->n != 0) return loom_error_set(err, "prefill needs an empty cache");
    if (T < 1 || T > kc->max_seq || T > a->T || a->B < 1)
        return loom_error_set(err, "prefill of %d positions (cache %d, activations %d)", T,
                              kc->max_seq, a->T);
    const int64_t S = kc->max_seq, V = c->vocab_size;
    const int64_t KD = (int64_t)c->n_kv_heads * (c->d_model / c->n_heads);
    decoder_forward(c, w, a, 1, T, NULL);
    for (int32_t l = 0; l < c->n_layers; l++) {
        memcpy(kc->k + (size_t)l * S * KD, a->k + (size_t)l * T * KD, (size_t)T * KD * sizeof(float));
        memcpy(kc->v + (size_t)l * S * KD, a->v + (size_t)l * T * KD, (size_t)T * KD * sizeof(float));
    }
    kc->n = T;
    if (logits) memcpy(logits, a->logits + (size_t)(T - 1) * V, (size_t)V * sizeof(float));
    return 0;
}

int decoder_step_token(const decoder_config *c, const decoder_weights *w, decoder_cache *kc,
                       int32_t token, float *logits, loom_error *err) {
    if (token < 0 || token >= c->vocab_size)
        return loom_error_set(err, "token %d outside the vocabulary (%d)", token, c->vocab_size);
    return decoder_step(c, w, kc, w->tok_emb + (size_t)token * c->d_model, logits, err);
}
