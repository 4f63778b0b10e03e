/* vq.c: the VQ autoencoder: config, tensors, forward and backward, the EMA
 * codebook (k-means initialisation, dead-code restarts), encode/decode. The
 * architecture and the math are in vq.h; the convolutions in conv.h. */
#include "heads/vq.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm.h"
#include "heads/conv.h"

/* Loops smaller than this many floats of work stay on one thread. */
#define PAR_MIN 32768

/* ------------------------------------------------------------------------ */
/* config */

vq_config vq_default_config(void) {
    vq_config c = {
        .n_levels = 3, .channels = {64, 128, 128}, .res_blocks = 1, .code_dim = 64,
        .codes = 512, .beta = 0.25f, .ema_decay = 0.99f,
    };
    return c;
}

int32_t vq_stride(const vq_config *c) { return (int32_t)1 << c->n_levels; }

int vq_config_check(const vq_config *c, loom_error *err) {
    if (c->n_levels < 1 || c->n_levels > VQ_MAX_LEVELS)
        return loom_error_set(err, "vq: %d channel counts, expected 1 to %d", c->n_levels,
                              VQ_MAX_LEVELS);
    for (int32_t i = 0; i < c->n_levels; i++)
        if (c->channels[i] < 1 || c->channels[i] > VQ_MAX_CHANNELS)
            return loom_error_set(err, "vq: channels[%d] = %d out of range [1, %d]", i,
                                  c->channels[i], VQ_MAX_CHANNELS);
    if (c->res_blocks < 0 || c->res_blocks > VQ_MAX_RES_BLOCKS)
        return loom_error_set(err, "vq: res_blocks %d out of range [0, %d]", c->res_blocks,
                              VQ_MAX_RES_BLOCKS);
    if (c->code_dim < 1 || c->code_dim > VQ_MAX_CHANNELS)
        return loom_error_set(err, "vq: code_dim %d out of range [1, %d]", c->code_dim,
                              VQ_MAX_CHANNELS);
    if (c->codes < 1 || c->codes > VQ_MAX_CODES)
        return loom_error_set(err, "vq: codes %d out of range [1, %d]", c->codes, VQ_MAX_CODES);
    if (!(c->beta >= 0.0f) || !isfinite(c->beta))
        return loom_error_set(err, "vq: beta must be finite and >= 0");
    if (!(c->ema_decay >= 0.0f && c->ema_decay < 1.0f))
        return loom_error_set(err, "vq: ema_decay must be in [0, 1)");
    return 0;
}

/* The shortest decimal that reads back as the same float. */
static double short_float(float x) {
    char buf[32];
    for (int p = 6; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)x);
        if ((float)strtod(buf, NULL) == x) break;
    }
    return strtod(buf, NULL);
}

char *vq_config_to_json(const vq_config *c) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "stride", vq_stride(c));
    cJSON *ch = cJSON_CreateIntArray(c->channels, c->n_levels);
    if (!ch) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddItemToObject(o, "channels", ch);
    cJSON_AddNumberToObject(o, "res_blocks", c->res_blocks);
    cJSON_AddNumberToObject(o, "code_dim", c->code_dim);
    cJSON_AddNumberToObject(o, "codes", c->codes);
    cJSON_AddNumberToObject(o, "beta", short_float(c->beta));
    cJSON_AddNumberToObject(o, "ema_decay", short_float(c->ema_decay));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static int json_int_value(const cJSON *v, const char *key, int32_t *out, loom_error *err) {
    if (!cJSON_IsNumber(v)) return loom_error_set(err, "vq config: \"%s\" missing or not a number", key);
    double d = v->valuedouble;
    if (!(d >= -2147483648.0 && d <= 2147483647.0) || d != floor(d))
        return loom_error_set(err, "vq config: \"%s\" is not an integer", key);
    *out = (int32_t)d;
    return 0;
}

static int json_int(const cJSON *o, const char *key, int32_t *out, loom_error *err) {
    return json_int_value(cJSON_GetObjectItemCaseSensitive(o, key), key, out, err);
}

static int json_float(const cJSON *o, const char *key, float *out, loom_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) return loom_error_set(err, "vq config: \"%s\" missing or not a number", key);
    if (!isfinite(v->valuedouble) || fabs(v->valuedouble) > 1e30)
        return loom_error_set(err, "vq config: \"%s\" out of range", key);
    *out = (float)v->valuedouble;
    return 0;
}

int vq_config_from_json(const char *json, vq_config *c, loom_error *err) {
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return loom_error_set(err, "vq config: not a JSON object");
    }
    vq_config d;
    memset(&d, 0, sizeof d);
    int rc = 0;
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(o, "channels");
    int n = cJSON_IsArray(ch) ? cJSON_GetArraySize(ch) : -1;
    if (n < 1 || n > VQ_MAX_LEVELS) {
        rc = loom_error_set(err, "vq config: \"channels\" must be an array of 1 to %d integers",
                            VQ_MAX_LEVELS);
    } else {
        d.n_levels = n;
        for (int i = 0; i < n && !rc; i++)
            rc = json_int_value(cJSON_GetArrayItem(ch, i), "channels", &d.channels[i], err);
    }
    if (!rc) rc = json_int(o, "res_blocks", &d.res_blocks, err);
    if (!rc) rc = json_int(o, "code_dim", &d.code_dim, err);
    if (!rc) rc = json_int(o, "codes", &d.codes, err);
    if (!rc) rc = json_float(o, "beta", &d.beta, err);
    if (!rc) rc = json_float(o, "ema_decay", &d.ema_decay, err);
    if (!rc && cJSON_GetObjectItemCaseSensitive(o, "stride")) {
        int32_t stride = 0;
        rc = json_int(o, "stride", &stride, err);
        if (!rc && stride != ((int32_t)1 << d.n_levels))
            rc = loom_error_set(err, "vq config: stride %d does not match %d channel counts (2^%d = %d)",
                                stride, d.n_levels, d.n_levels, (int32_t)1 << d.n_levels);
    }
    cJSON_Delete(o);
    if (rc) return -1;
    if (vq_config_check(&d, err)) return loom_error_wrap(err, "vq config");
    *c = d;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* layers and tensors */

static int32_t top_channels(const vq_config *c) { return c->channels[c->n_levels - 1]; }
/* c_{i-1}, with c_{-1} = 3 (RGB) */
static int32_t below_channels(const vq_config *c, int32_t i) { return i ? c->channels[i - 1] : 3; }

/* encoder level i: conv 4x4 stride 2 pad 1, c_{i-1} -> c_i */
static conv_spec down_spec(const vq_config *c, int32_t i) {
    return (conv_spec){below_channels(c, i), c->channels[i], 4, 4, 2, 1};
}
/* decoder level i: transposed conv 4x4 stride 2 pad 1, c_i -> c_{i-1} */
static conv_spec up_spec(const vq_config *c, int32_t i) {
    return (conv_spec){c->channels[i], below_channels(c, i), 4, 4, 2, 1};
}
static conv_spec res_spec(const vq_config *c) {
    return (conv_spec){top_channels(c), top_channels(c), 3, 3, 1, 1};
}
static conv_spec enc_out_spec(const vq_config *c) {
    return (conv_spec){top_channels(c), c->code_dim, 1, 1, 1, 0};
}
static conv_spec dec_in_spec(const vq_config *c) {
    return (conv_spec){c->code_dim, top_channels(c), 3, 3, 1, 1};
}

/* Every tensor in file order: calls fn with its name, shape, whether it is
 * weight-decayed, whether it is state (not trained), and the vq_weights
 * field that points at it. One list for register, bind and count. */
typedef int (*tensor_fn)(const char *name, int32_t ndim, const int64_t *shape, int decay,
                         int state, float **slot, void *ctx);

static int walk_conv(const char *prefix, const conv_spec *s, int transpose, float **w, float **b,
                     tensor_fn fn, void *ctx) {
    char name[2 * PARAM_NAME_MAX]; /* params_add refuses names that do not fit */
    /* conv (Cout, KH, KW, Cin); transposed conv (Cin, KH, KW, Cout) */
    int64_t wshape[4] = {transpose ? s->cin : s->cout, s->kh, s->kw, transpose ? s->cout : s->cin};
    int64_t bshape[1] = {s->cout};
    snprintf(name, sizeof name, "%s.weight", prefix);
    if (fn(name, 4, wshape, 1, 0, w, ctx)) return -1;
    snprintf(name, sizeof name, "%s.bias", prefix);
    return fn(name, 1, bshape, 0, 0, b, ctx);
}

static int walk_tensors(const vq_config *c, vq_weights *w, tensor_fn fn, void *ctx) {
    char prefix[PARAM_NAME_MAX];
    const int32_t L = c->n_levels, R = c->res_blocks;
    const conv_spec rs = res_spec(c), eo = enc_out_spec(c), di = dec_in_spec(c);
    for (int32_t i = 0; i < L; i++) {
        conv_spec s = down_spec(c, i);
        snprintf(prefix, sizeof prefix, "vq.enc.%d", i);
        if (walk_conv(prefix, &s, 0, &w->enc_w[i], &w->enc_b[i], fn, ctx)) return -1;
    }
    for (int32_t r = 0; r < R; r++) {
        snprintf(prefix, sizeof prefix, "vq.enc.res.%d.conv1", r);
        if (walk_conv(prefix, &rs, 0, &w->enc_res[r].w1, &w->enc_res[r].b1, fn, ctx)) return -1;
        snprintf(prefix, sizeof prefix, "vq.enc.res.%d.conv2", r);
        if (walk_conv(prefix, &rs, 0, &w->enc_res[r].w2, &w->enc_res[r].b2, fn, ctx)) return -1;
    }
    if (walk_conv("vq.enc.out", &eo, 0, &w->enc_out_w, &w->enc_out_b, fn, ctx)) return -1;
    if (walk_conv("vq.dec.in", &di, 0, &w->dec_in_w, &w->dec_in_b, fn, ctx)) return -1;
    for (int32_t r = 0; r < R; r++) {
        snprintf(prefix, sizeof prefix, "vq.dec.res.%d.conv1", r);
        if (walk_conv(prefix, &rs, 0, &w->dec_res[r].w1, &w->dec_res[r].b1, fn, ctx)) return -1;
        snprintf(prefix, sizeof prefix, "vq.dec.res.%d.conv2", r);
        if (walk_conv(prefix, &rs, 0, &w->dec_res[r].w2, &w->dec_res[r].b2, fn, ctx)) return -1;
    }
    for (int32_t i = L - 1; i >= 0; i--) {
        conv_spec s = up_spec(c, i);
        snprintf(prefix, sizeof prefix, "vq.dec.%d", i);
        if (walk_conv(prefix, &s, 1, &w->dec_w[i], &w->dec_b[i], fn, ctx)) return -1;
    }
    const int64_t K = c->codes, D = c->code_dim;
    const int64_t kd[2] = {K, D}, k1[1] = {K};
    if (fn("vq.codebook", 2, kd, 0, 1, &w->codebook, ctx)) return -1;
    if (fn("vq.ema_count", 1, k1, 0, 1, &w->ema_count, ctx)) return -1;
    return fn("vq.ema_sum", 2, kd, 0, 1, &w->ema_sum, ctx);
}

typedef struct register_ctx {
    param_table *params, *state;
    loom_error *err;
} register_ctx;

static int register_one(const char *name, int32_t ndim, const int64_t *shape, int decay, int state,
                        float **slot, void *ctx) {
    register_ctx *r = ctx;
    return params_add(state ? r->state : r->params, name, ndim, shape, decay, r->err);
}

int vq_register(const vq_config *c, param_table *params, param_table *state, loom_error *err) {
    if (vq_config_check(c, err)) return -1;
    if (!params || !state || params == state)
        return loom_error_set(err, "vq: register needs two different tables (params, state)");
    vq_weights dummy;
    register_ctx r = {params, state, err};
    return walk_tensors(c, &dummy, register_one, &r);
}

typedef struct bind_ctx {
    const param_table *params, *state;
    float *params_base, *state_base;
} bind_ctx;

static int bind_one(const char *name, int32_t ndim, const int64_t *shape, int decay, int state,
                    float **slot, void *ctx) {
    bind_ctx *b = ctx;
    const param_table *t = state ? b->state : b->params;
    float *base = state ? b->state_base : b->params_base;
    const param_info *p = t && base ? params_find(t, name) : NULL;
    *slot = p ? base + p->offset : NULL;
    return 0;
}

void vq_bind(const vq_config *c, const param_table *params, float *params_base,
             const param_table *state, float *state_base, vq_weights *w) {
    memset(w, 0, sizeof *w);
    bind_ctx b = {params, state, params_base, state_base};
    walk_tensors(c, w, bind_one, &b);
}

typedef struct count_ctx {
    int64_t params, state;
} count_ctx;

static int count_one(const char *name, int32_t ndim, const int64_t *shape, int decay, int state,
                     float **slot, void *ctx) {
    count_ctx *n = ctx;
    int64_t numel = 1;
    for (int32_t i = 0; i < ndim; i++) numel *= shape[i];
    *(state ? &n->state : &n->params) += numel;
    return 0;
}

int64_t vq_param_count(const vq_config *c) {
    vq_weights dummy;
    count_ctx n = {0, 0};
    walk_tensors(c, &dummy, count_one, &n);
    return n.params;
}

int64_t vq_state_count(const vq_config *c) {
    vq_weights dummy;
    count_ctx n = {0, 0};
    walk_tensors(c, &dummy, count_one, &n);
    return n.state;
}

static void fill_normal(float *p, int64_t n, float std, loom_rng *rng) {
    for (int64_t i = 0; i < n; i++) p[i] = std * rng_normal(rng);
}

static void fill_zero(float *p, int64_t n) { memset(p, 0, sizeof(float) * (size_t)n); }

/* He-normal weights for a conv whose output goes through a ReLU (gain 2) or
 * not (gain 1); fan_in = the products summed into one output. */
static void init_conv(float *w, float *b, const conv_spec *s, int64_t fan_in, float gain,
                      loom_rng *rng) {
    fill_normal(w, conv_weight_count(s), sqrtf(gain / (float)fan_in), rng);
    fill_zero(b, s->cout);
}

void vq_init_weights(const vq_config *c, vq_weights *w, loom_rng *rng) {
    const int32_t L = c->n_levels, R = c->res_blocks, C = top_channels(c), D = c->code_dim;
    const conv_spec rs = res_spec(c), eo = enc_out_spec(c), di = dec_in_spec(c);
    for (int32_t i = 0; i < L; i++) {
        conv_spec s = down_spec(c, i);
        init_conv(w->enc_w[i], w->enc_b[i], &s, 16 * (int64_t)s.cin, 2.0f, rng);
    }
    for (int32_t r = 0; r < R; r++) {
        init_conv(w->enc_res[r].w1, w->enc_res[r].b1, &rs, 9 * (int64_t)C, 2.0f, rng);
        init_conv(w->enc_res[r].w2, w->enc_res[r].b2, &rs, 9 * (int64_t)C, 2.0f, rng);
    }
    init_conv(w->enc_out_w, w->enc_out_b, &eo, C, 1.0f, rng);
    init_conv(w->dec_in_w, w->dec_in_b, &di, 9 * (int64_t)D, 2.0f, rng);
    for (int32_t r = 0; r < R; r++) {
        init_conv(w->dec_res[r].w1, w->dec_res[r].b1, &rs, 9 * (int64_t)C, 2.0f, rng);
        init_conv(w->dec_res[r].w2, w->dec_res[r].b2, &rs, 9 * (int64_t)C, 2.0f, rng);
    }
    for (int32_t i = L - 1; i >= 0; i--) {
        conv_spec s = up_spec(c, i);
        /* stride 2, 4x4: each output pixel is reached by 2x2 taps of each input channel */
        init_conv(w->dec_w[i], w->dec_b[i], &s, 4 * (int64_t)s.cin, i ? 2.0f : 1.0f, rng);
    }
    if (w->codebook) {
        const int64_t KD = (int64_t)c->codes * D;
        fill_normal(w->codebook, KD, 1.0f, rng);
        for (int32_t k = 0; k < c->codes; k++) w->ema_count[k] = 1.0f;
        memcpy(w->ema_sum, w->codebook, sizeof(float) * (size_t)KD);
    }
}

/* ------------------------------------------------------------------------ */
/* activations */

/* n = a*b*c*d, or SIZE_MAX on overflow (arena_plan then fails). */
static size_t sz4(int64_t a, int64_t b, int64_t c, int64_t d) {
    size_t r = 1;
    int64_t f[4] = {a, b, c, d};
    for (int i = 0; i < 4; i++)
        if (f[i] < 0 || loom_mul_size(r, (size_t)f[i], &r)) return SIZE_MAX;
    return r;
}

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

/* Sides and batch: H, W multiples of the stride in [S, VQ_MAX_SIDE], B >= 1,
 * B*H*W <= limit. */
static int check_batch(const vq_config *c, int64_t B, int64_t H, int64_t W, int64_t limit,
                       const char *what, loom_error *err) {
    const int32_t S = vq_stride(c);
    if (B < 1) return loom_error_set(err, "vq: %s: batch size %lld must be >= 1", what, (long long)B);
    if (H < S || W < S || H > VQ_MAX_SIDE || W > VQ_MAX_SIDE)
        return loom_error_set(err, "vq: %s: image %lld x %lld (W x H): sides must be in [%d, %d]",
                              what, (long long)W, (long long)H, S, VQ_MAX_SIDE);
    if (H % S != 0 || W % S != 0)
        return loom_error_set(err, "vq: %s: image %lld x %lld (W x H) is not a multiple of the stride %d",
                              what, (long long)W, (long long)H, S);
    if (B > limit / (H * W))
        return loom_error_set(err, "vq: %s: batch of %lld x %lld x %lld pixels exceeds %lld", what,
                              (long long)B, (long long)H, (long long)W, (long long)limit);
    return 0;
}

vq_acts *vq_acts_new(const vq_config *c, int32_t B, int32_t H, int32_t W, loom_error *err) {
    if (vq_config_check(c, err)) return NULL;
    if (check_batch(c, B, H, W, VQ_MAX_PIXELS, "activations", err)) return NULL;
    vq_acts *a = calloc(1, sizeof *a);
    if (!a) return loom_error_set(err, "vq: out of memory"), NULL;
    a->max_pixels = (int64_t)B * H * W;
    const int32_t L = c->n_levels, R = c->res_blocks, S = vq_stride(c);
    const int64_t C = top_channels(c), D = c->code_dim, K = c->codes, h = H / S, w = W / S;
    const size_t top = sz4(B, h, w, C), N = sz4(B, h, w, 1);

    /* every activation, and the largest for the gradient buffers */
    enum { MAX_BUFS = 8 + 2 * VQ_MAX_LEVELS + 6 * VQ_MAX_RES_BLOCKS };
    struct { float **p; size_t n; } tab[MAX_BUFS];
    int nt = 0;
    size_t biggest = 0;
#define ACT(ptr, count) do { tab[nt].p = (ptr); tab[nt].n = (count); \
                             biggest = max_size(biggest, tab[nt].n); nt++; } while (0)
    ACT(&a->x, sz4(B, H, W, 3));
    for (int32_t i = 0; i < L; i++) ACT(&a->enc[i], sz4(B, H >> (i + 1), W >> (i + 1), c->channels[i]));
    for (int32_t r = 0; r < R; r++) {
        ACT(&a->enc_res[r].a, top);
        ACT(&a->enc_res[r].u, top);
        ACT(&a->enc_res[r].y, top);
    }
    ACT(&a->enc_top, top);
    ACT(&a->ze, sz4(B, h, w, D));
    ACT(&a->zq, sz4(B, h, w, D));
    ACT(&a->dec_bottom, top);
    for (int32_t r = 0; r < R; r++) {
        ACT(&a->dec_res[r].a, top);
        ACT(&a->dec_res[r].u, top);
        ACT(&a->dec_res[r].y, top);
    }
    ACT(&a->dec_top, top);
    for (int32_t i = 0; i < L; i++) ACT(&a->dec[i], sz4(B, H >> i, W >> i, below_channels(c, i)));
#undef ACT
    /* im2col scratch: the largest layer (sizes scale with B*H*W, so any batch
     * that fits the capacity fits the scratch) */
    size_t scratch = 0;
    const conv_spec rs = res_spec(c), di = dec_in_spec(c), eo = enc_out_spec(c);
    for (int32_t i = 0; i < L; i++) {
        conv_spec d = down_spec(c, i), u = up_spec(c, i);
        scratch = max_size(scratch, conv2d_scratch_floats(&d, B, H >> i, W >> i));
        scratch = max_size(scratch, conv_transpose2d_scratch_floats(&u, B, H >> (i + 1), W >> (i + 1)));
    }
    scratch = max_size(scratch, conv2d_scratch_floats(&rs, B, h, w));
    scratch = max_size(scratch, conv2d_scratch_floats(&di, B, h, w));
    scratch = max_size(scratch, conv2d_scratch_floats(&eo, B, h, w));

    for (int i = 0; i < nt; i++) arena_plan(&a->mem, tab[i].n);
    for (int i = 0; i < 3; i++) arena_plan(&a->mem, biggest);
    arena_plan(&a->mem, N);                      /* codes */
    arena_plan(&a->mem, N);                      /* qerr */
    arena_plan(&a->mem, sz4(N, K, 1, 1));        /* dist */
    arena_plan(&a->mem, (size_t)K);              /* enorm */
    arena_plan(&a->mem, sz4(K, D + 1, 1, 1));    /* ema_tmp */
    arena_plan(&a->mem, scratch);
    if (arena_alloc(&a->mem, err)) {
        free(a);
        return loom_error_wrap(err, "vq activations"), NULL;
    }
    for (int i = 0; i < nt; i++) *tab[i].p = arena_take(&a->mem, tab[i].n);
    for (int i = 0; i < 3; i++) a->grad[i] = arena_take(&a->mem, biggest);
    /* int32 codes in the float arena: same size, only ever accessed as int32 */
    a->codes = (int32_t *)(void *)arena_take(&a->mem, N);
    a->qerr = arena_take(&a->mem, N);
    a->dist = arena_take(&a->mem, sz4(N, K, 1, 1));
    a->enorm = arena_take(&a->mem, (size_t)K);
    a->ema_tmp = arena_take(&a->mem, sz4(K, D + 1, 1, 1));
    a->scratch = arena_take(&a->mem, scratch);
    return a;
}

void vq_acts_free(vq_acts *a) {
    if (!a) return;
    arena_free(&a->mem);
    free(a);
}

/* ------------------------------------------------------------------------ */
/* residual blocks: y = x + conv2(ReLU(conv1(ReLU(x)))), forward with backward */

/* Runs R blocks from x (B, h, w, C); returns the last output (x if R = 0). */
static const float *res_stack_forward(const vq_config *c, const vq_res_weights *rw,
                                      vq_res_acts *ra, const float *x, int32_t B, int32_t h,
                                      int32_t w, float *scratch) {
    const conv_spec s = res_spec(c);
    const int64_t n = (int64_t)B * h * w * s.cout;
    for (int32_t r = 0; r < c->res_blocks; r++) {
        relu_forward(ra[r].a, x, n);
        conv2d_forward(&s, ra[r].u, ra[r].a, rw[r].w1, rw[r].b1, B, h, w, scratch);
        relu_forward(ra[r].u, ra[r].u, n);
        conv2d_forward(&s, ra[r].y, ra[r].u, rw[r].w2, rw[r].b2, B, h, w, scratch);
        float *y = ra[r].y;
#pragma omp parallel for schedule(static) if(n >= 4 * PAR_MIN)
        for (int64_t i = 0; i < n; i++) y[i] += x[i];
        x = y;
    }
    return x;
}

/* In place: dy (B, h, w, C), the gradient of the stack's output, becomes the
 * gradient of its input. t1, t2: scratch of the same size. */
static void res_stack_backward(const vq_config *c, const vq_res_weights *rw, vq_res_weights *gw,
                               const vq_res_acts *ra, float *dy, float *t1, float *t2, int32_t B,
                               int32_t h, int32_t w, float *scratch) {
    const conv_spec s = res_spec(c);
    const int64_t n = (int64_t)B * h * w * s.cout;
    for (int32_t r = c->res_blocks - 1; r >= 0; r--) {
        conv2d_backward(&s, t1, gw[r].w2, gw[r].b2, dy, ra[r].u, rw[r].w2, B, h, w, scratch);
        relu_backward(t1, t1, ra[r].u, n);                         /* d conv1 output */
        conv2d_backward(&s, t2, gw[r].w1, gw[r].b1, t1, ra[r].a, rw[r].w1, B, h, w, scratch);
        const float *a = ra[r].a;
#pragma omp parallel for schedule(static) if(n >= 4 * PAR_MIN)
        for (int64_t i = 0; i < n; i++) dy[i] += a[i] > 0.0f ? t2[i] : 0.0f; /* skip + branch */
    }
}

/* ------------------------------------------------------------------------ */
/* encoder, quantizer, decoder (forward), for the batch a->B, a->H, a->W */

static void encoder_forward(const vq_config *c, const vq_weights *w, vq_acts *a) {
    const int32_t B = a->B;
    int32_t H = a->H, W = a->W;
    const float *x = a->x;
    for (int32_t i = 0; i < c->n_levels; i++) {
        conv_spec s = down_spec(c, i);
        conv2d_forward(&s, a->enc[i], x, w->enc_w[i], w->enc_b[i], B, H, W, a->scratch);
        H /= 2, W /= 2;
        relu_forward(a->enc[i], a->enc[i], (int64_t)B * H * W * s.cout);
        x = a->enc[i];
    }
    x = res_stack_forward(c, w->enc_res, a->enc_res, x, B, H, W, a->scratch);
    relu_forward(a->enc_top, x, (int64_t)B * H * W * top_channels(c));
    const conv_spec eo = enc_out_spec(c);
    conv2d_forward(&eo, a->ze, a->enc_top, w->enc_out_w, w->enc_out_b, B, H, W, a->scratch);
}

/* z_q[i] = codebook[codes[i]], qerr[i] = |z_e[i] - z_q[i]|^2 for N rows. */
static void gather_codes(const vq_config *c, const float *codebook, const int32_t *codes,
                         const float *ze, float *zq, float *qerr, int64_t N) {
    const int64_t D = c->code_dim;
#pragma omp parallel for schedule(static) if(N * D >= PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        memcpy(zq + i * D, codebook + (int64_t)codes[i] * D, sizeof(float) * (size_t)D);
        if (!qerr) continue;
        float e = 0.0f;
        for (int64_t d = 0; d < D; d++) {
            float diff = ze[i * D + d] - zq[i * D + d];
            e += diff * diff;
        }
        qerr[i] = e;
    }
}

/* Nearest code for each of the N rows of a->ze: scores |e_k|^2 - 2 z.e_k
 * from one gemm, argmin with ties to the lowest k. Fills codes, zq, qerr. */
static void quantize(const vq_config *c, const float *codebook, vq_acts *a, int64_t N) {
    const int64_t K = c->codes, D = c->code_dim;
    for (int64_t k = 0; k < K; k++) {
        const float *e = codebook + k * D;
        float s = 0.0f;
        for (int64_t d = 0; d < D; d++) s += e[d] * e[d];
        a->enorm[k] = s;
    }
    gemm_nt(N, K, D, a->ze, D, codebook, D, 0.0f, a->dist, K); /* dist (N, K) = z_e E^T */
    const float *enorm = a->enorm;
    int32_t *codes = a->codes;
#pragma omp parallel for schedule(static) if(N * K >= PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        const float *dot = a->dist + i * K;
        int32_t best = 0;
        float best_v = enorm[0] - 2.0f * dot[0];
        for (int64_t k = 1; k < K; k++) {
            float v = enorm[k] - 2.0f * dot[k];
            if (v < best_v) best_v = v, best = (int32_t)k;
        }
        codes[i] = best;
    }
    gather_codes(c, codebook, a->codes, a->ze, a->zq, a->qerr, N);
}

static void decoder_forward(const vq_config *c, const vq_weights *w, vq_acts *a) {
    const int32_t B = a->B, S = vq_stride(c);
    int32_t h = a->H / S, wd = a->W / S;
    const conv_spec di = dec_in_spec(c);
    const int64_t n_top = (int64_t)B * h * wd * top_channels(c);
    conv2d_forward(&di, a->dec_bottom, a->zq, w->dec_in_w, w->dec_in_b, B, h, wd, a->scratch);
    relu_forward(a->dec_bottom, a->dec_bottom, n_top);
    const float *x = res_stack_forward(c, w->dec_res, a->dec_res, a->dec_bottom, B, h, wd, a->scratch);
    relu_forward(a->dec_top, x, n_top);
    x = a->dec_top;
    for (int32_t i = c->n_levels - 1; i >= 0; i--) {
        conv_spec s = up_spec(c, i);
        conv_transpose2d_forward(&s, a->dec[i], x, w->dec_w[i], w->dec_b[i], B, h, wd, a->scratch);
        h *= 2, wd *= 2;
        if (i > 0) relu_forward(a->dec[i], a->dec[i], (int64_t)B * h * wd * s.cout);
        x = a->dec[i];
    }
}

/* ------------------------------------------------------------------------ */
/* training: forward and backward */

int vq_forward(const vq_config *c, const vq_weights *w, vq_acts *a, const float *pixels,
               int32_t B, int32_t H, int32_t W, int32_t *codes, float *loss, loom_error *err) {
    if (check_batch(c, B, H, W, a->max_pixels, "forward", err)) return -1;
    a->B = B, a->H = H, a->W = W;
    const int32_t S = vq_stride(c);
    const int64_t n_pix = (int64_t)B * H * W * 3, N = (int64_t)B * (H / S) * (W / S);
    memmove(a->x, pixels, sizeof(float) * (size_t)n_pix);
    encoder_forward(c, w, a);
    quantize(c, w->codebook, a, N);
    decoder_forward(c, w, a);
    /* the loss terms, summed in order in double: the same bits at any thread count */
    const float *recon = a->dec[0];
    double se = 0.0, qe = 0.0;
    for (int64_t i = 0; i < n_pix; i++) {
        double d = (double)recon[i] - (double)a->x[i];
        se += d * d;
    }
    for (int64_t i = 0; i < N; i++) qe += a->qerr[i];
    a->mse = se / (double)n_pix;
    a->commit = (double)c->beta * qe / ((double)N * c->code_dim);
    if (codes) memcpy(codes, a->codes, sizeof(int32_t) * (size_t)N);
    if (loss) *loss = (float)(a->mse + a->commit);
    return 0;
}

void vq_backward(const vq_config *c, const vq_weights *w, vq_weights *g, vq_acts *a,
                 float loss_scale) {
    const int32_t B = a->B, H = a->H, W = a->W, S = vq_stride(c), L = c->n_levels;
    const int32_t h = H / S, wd = W / S;
    const int64_t D = c->code_dim, C = top_channels(c);
    const int64_t n_pix = (int64_t)B * H * W * 3, N = (int64_t)B * h * wd;
    float *g0 = a->grad[0], *g1 = a->grad[1], *t;

    /* d mse / d recon */
    const float *recon = a->dec[0], *x = a->x;
    const float k_mse = (float)(2.0 * loss_scale / (double)n_pix);
#pragma omp parallel for schedule(static) if(n_pix >= 4 * PAR_MIN)
    for (int64_t i = 0; i < n_pix; i++) g0[i] = k_mse * (recon[i] - x[i]);

    /* decoder, from the output back: transposed conv i reads dec[i+1]
     * (dec_top for the first), a ReLU output */
    for (int32_t i = 0; i < L; i++) {
        const conv_spec s = up_spec(c, i);
        const int32_t hi = H >> (i + 1), wi = W >> (i + 1);
        const float *in = i == L - 1 ? a->dec_top : a->dec[i + 1];
        conv_transpose2d_backward(&s, g1, g->dec_w[i], g->dec_b[i], g0, in, w->dec_w[i], B, hi,
                                  wi, a->scratch);
        relu_backward(g1, g1, in, (int64_t)B * hi * wi * s.cin);
        t = g0, g0 = g1, g1 = t;
    }
    res_stack_backward(c, w->dec_res, g->dec_res, a->dec_res, g0, g1, a->grad[2], B, h, wd,
                       a->scratch);
    relu_backward(g0, g0, a->dec_bottom, (int64_t)B * h * wd * C);
    const conv_spec di = dec_in_spec(c);
    conv2d_backward(&di, g1, g->dec_in_w, g->dec_in_b, g0, a->zq, w->dec_in_w, B, h, wd,
                    a->scratch);
    t = g0, g0 = g1, g1 = t; /* g0 = d z_q */

    /* straight-through: d z_e = d z_q, plus the commitment term's gradient */
    const float k_commit = (float)(2.0 * c->beta * loss_scale / ((double)N * D));
    const float *ze = a->ze, *zq = a->zq;
#pragma omp parallel for schedule(static) if(N * D >= 4 * PAR_MIN)
    for (int64_t i = 0; i < N * D; i++) g0[i] += k_commit * (ze[i] - zq[i]);

    /* encoder, top to bottom */
    const conv_spec eo = enc_out_spec(c);
    conv2d_backward(&eo, g1, g->enc_out_w, g->enc_out_b, g0, a->enc_top, w->enc_out_w, B, h, wd,
                    a->scratch);
    relu_backward(g1, g1, a->enc_top, (int64_t)B * h * wd * C);
    t = g0, g0 = g1, g1 = t;
    res_stack_backward(c, w->enc_res, g->enc_res, a->enc_res, g0, g1, a->grad[2], B, h, wd,
                       a->scratch);
    for (int32_t i = L - 1; i >= 0; i--) {
        const conv_spec s = down_spec(c, i);
        const int32_t hi = H >> i, wi = W >> i; /* the conv's input sides */
        relu_backward(g0, g0, a->enc[i], (int64_t)B * (hi / 2) * (wi / 2) * s.cout);
        conv2d_backward(&s, i ? g1 : NULL, g->enc_w[i], g->enc_b[i], g0, i ? a->enc[i - 1] : a->x,
                        w->enc_w[i], B, hi, wi, a->scratch);
        t = g0, g0 = g1, g1 = t;
    }
}

/* ------------------------------------------------------------------------ */
/* the codebook: EMA updates, k-means initialisation, dead-code restarts */

/* Per-code counts (K) and sums (K, D) of the N rows of ze by code, rows in order. */
static void code_stats(const vq_config *c, const int32_t *codes, const float *ze, int64_t N,
                       float *counts, float *sums) {
    const int64_t K = c->codes, D = c->code_dim;
    memset(counts, 0, sizeof(float) * (size_t)K);
    memset(sums, 0, sizeof(float) * (size_t)(K * D));
    for (int64_t i = 0; i < N; i++) {
        const int64_t k = codes[i];
        counts[k] += 1.0f;
        float *s = sums + k * D;
        const float *z = ze + i * D;
        for (int64_t d = 0; d < D; d++) s[d] += z[d];
    }
}

void vq_ema_update(const vq_config *c, vq_weights *w, vq_acts *a) {
    const int64_t K = c->codes, D = c->code_dim;
    const int64_t N = (int64_t)a->B * (a->H / vq_stride(c)) * (a->W / vq_stride(c));
    float *counts = a->ema_tmp, *sums = a->ema_tmp + K;
    code_stats(c, a->codes, a->ze, N, counts, sums);
    const float gamma = c->ema_decay, one_m = 1.0f - c->ema_decay;
    double n = 0.0;
    for (int64_t k = 0; k < K; k++) {
        w->ema_count[k] = gamma * w->ema_count[k] + one_m * counts[k];
        n += w->ema_count[k];
        for (int64_t d = 0; d < D; d++)
            w->ema_sum[k * D + d] = gamma * w->ema_sum[k * D + d] + one_m * sums[k * D + d];
    }
    for (int64_t k = 0; k < K; k++) {
        /* Laplace smoothing keeps a code that is never chosen finite */
        const double smoothed = ((double)w->ema_count[k] + VQ_EMA_EPS) /
                                (n + (double)K * VQ_EMA_EPS) * n;
        const float inv = smoothed > 0.0 ? (float)(1.0 / smoothed) : 0.0f;
        for (int64_t d = 0; d < D; d++) w->codebook[k * D + d] = w->ema_sum[k * D + d] * inv;
    }
}

/* An index in [0, n) drawn with probability weight[i] / sum (weights >= 0);
 * uniform if the sum is 0. */
static int64_t pick_weighted(const float *weight, int64_t n, loom_rng *rng) {
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) total += weight[i];
    if (!(total > 0.0) || !isfinite(total)) return (int64_t)rng_below(rng, (uint32_t)n);
    const double r = (double)(rng_u64(rng) >> 11) * (1.0 / 9007199254740992.0) * total;
    double acc = 0.0;
    int64_t last = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!(weight[i] > 0.0f)) continue;
        acc += weight[i];
        last = i;
        if (r < acc) return i;
    }
    return last; /* r rounded up to the total */
}

int32_t vq_restart_dead_codes(const vq_config *c, vq_weights *w, vq_acts *a, float threshold,
                              loom_rng *rng) {
    const int64_t K = c->codes, D = c->code_dim;
    const int64_t N = (int64_t)a->B * (a->H / vq_stride(c)) * (a->W / vq_stride(c));
    if (N < 1) return 0; /* no forward yet */
    float *weight = a->dist; /* (N) of the (N, K) scratch */
    memcpy(weight, a->qerr, sizeof(float) * (size_t)N);
    int32_t restarted = 0;
    for (int64_t k = 0; k < K; k++) {
        if (!(w->ema_count[k] < threshold)) continue;
        const int64_t j = pick_weighted(weight, N, rng);
        const float *z = a->ze + j * D;
        for (int64_t d = 0; d < D; d++) {
            w->codebook[k * D + d] = z[d];
            w->ema_sum[k * D + d] = threshold * z[d];
        }
        w->ema_count[k] = threshold;
        weight[j] = 0.0f; /* now represented exactly: not drawn again */
        restarted++;
    }
    return restarted;
}

static float sq_dist(const float *x, const float *y, int64_t D) {
    float s = 0.0f;
    for (int64_t d = 0; d < D; d++) {
        float t = x[d] - y[d];
        s += t * t;
    }
    return s;
}

int vq_kmeans_init(const vq_config *c, vq_weights *w, vq_acts *a, const float *pixels, int32_t B,
                   int32_t H, int32_t W, int32_t iters, loom_rng *rng, loom_error *err) {
    if (check_batch(c, B, H, W, a->max_pixels, "k-means init", err)) return -1;
    if (iters < 0 || iters > 1000)
        return loom_error_set(err, "vq: k-means iterations %d out of range [0, 1000]", iters);
    if (!w->codebook || !w->ema_count || !w->ema_sum)
        return loom_error_set(err, "vq: k-means init: the codebook state is not bound");
    a->B = B, a->H = H, a->W = W;
    const int32_t S = vq_stride(c);
    const int64_t K = c->codes, D = c->code_dim, N = (int64_t)B * (H / S) * (W / S);
    memmove(a->x, pixels, sizeof(float) * (size_t)((int64_t)B * H * W * 3));
    encoder_forward(c, w, a);
    const float *ze = a->ze;
    float *E = w->codebook, *mind = a->qerr; /* (N) squared distance to the nearest seed */

    /* k-means++ seeding */
    int64_t j = (int64_t)rng_below(rng, (uint32_t)N);
    memcpy(E, ze + j * D, sizeof(float) * (size_t)D);
#pragma omp parallel for schedule(static) if(N * D >= PAR_MIN)
    for (int64_t i = 0; i < N; i++) mind[i] = sq_dist(ze + i * D, E, D);
    for (int64_t k = 1; k < K; k++) {
        j = pick_weighted(mind, N, rng);
        float *e = E + k * D;
        memcpy(e, ze + j * D, sizeof(float) * (size_t)D);
#pragma omp parallel for schedule(static) if(N * D >= PAR_MIN)
        for (int64_t i = 0; i < N; i++) {
            float d2 = sq_dist(ze + i * D, e, D);
            if (d2 < mind[i]) mind[i] = d2;
        }
    }
    /* Lloyd iterations; an empty cluster keeps its seed */
    float *counts = a->ema_tmp, *sums = a->ema_tmp + K;
    for (int32_t it = 0; it < iters; it++) {
        quantize(c, E, a, N);
        code_stats(c, a->codes, ze, N, counts, sums);
        for (int64_t k = 0; k < K; k++)
            if (counts[k] > 0.0f)
                for (int64_t d = 0; d < D; d++) E[k * D + d] = sums[k * D + d] / counts[k];
    }
    quantize(c, E, a, N);
    code_stats(c, a->codes, ze, N, counts, sums);
    for (int64_t k = 0; k < K; k++) {
        w->ema_count[k] = counts[k];
        for (int64_t d = 0; d < D; d++) w->ema_sum[k * D + d] = E[k * D + d] * counts[k];
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* inference */

int vq_encode(const vq_config *c, const vq_weights *w, vq_acts *a, const float *pixels,
              int32_t B, int32_t H, int32_t W, int32_t *codes, loom_error *err) {
    if (check_batch(c, B, H, W, a->max_pixels, "encode", err)) return -1;
    a->B = B, a->H = H, a->W = W;
    const int32_t S = vq_stride(c);
    const int64_t N = (int64_t)B * (H / S) * (W / S);
    memmove(a->x, pixels, sizeof(float) * (size_t)((int64_t)B * H * W * 3));
    encoder_forward(c, w, a);
    quantize(c, w->codebook, a, N);
    memcpy(codes, a->codes, sizeof(int32_t) * (size_t)N);
    return 0;
}

int vq_decode(const vq_config *c, const vq_weights *w, vq_acts *a, const int32_t *codes,
              int32_t B, int32_t rows, int32_t cols, float *pixels, loom_error *err) {
    const int32_t S = vq_stride(c);
    if (rows < 1 || cols < 1 || rows > VQ_MAX_SIDE / S || cols > VQ_MAX_SIDE / S)
        return loom_error_set(err, "vq: decode: code grid %d x %d (rows x cols) out of range [1, %d]",
                              rows, cols, VQ_MAX_SIDE / S);
    const int32_t H = rows * S, W = cols * S;
    if (check_batch(c, B, H, W, a->max_pixels, "decode", err)) return -1;
    const int64_t N = (int64_t)B * rows * cols;
    for (int64_t i = 0; i < N; i++)
        if (codes[i] < 0 || codes[i] >= c->codes)
            return loom_error_set(err, "vq: decode: code %d at position %lld outside [0, %d)",
                                  codes[i], (long long)i, c->codes);
    a->B = B, a->H = H, a->W = W;
    memcpy(a->codes, codes, sizeof(int32_t) * (size_t)N);
    gather_codes(c, w->codebook, a->codes, NULL, a->zq, NULL, N);
    decoder_forward(c, w, a);
    const int64_t n = (int64_t)B * H * W * 3;
    const float *recon = a->dec[0];
    for (int64_t i = 0; i < n; i++) {
        float v = recon[i];
        pixels[i] = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v; /* NaN stays NaN */
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* pixels */

void vq_pixels_from_rgb(float *x, const uint8_t *rgb, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)((double)rgb[i] / 127.5 - 1.0);
}

void vq_pixels_to_rgb(uint8_t *rgb, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double v = ((double)x[i] + 1.0) * 127.5;
        rgb[i] = !(v > 0.0) ? 0 : v >= 255.0 ? 255 : (uint8_t)(v + 0.5);
    }
}

double vq_psnr(const uint8_t *a, const uint8_t *b, int64_t n) {
    double se = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        se += d * d;
    }
    if (se == 0.0 || n <= 0) return INFINITY;
    return 10.0 * log10(255.0 * 255.0 / (se / (double)n));
}
