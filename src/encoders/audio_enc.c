#include "encoders/audio_enc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm.h"
#include "encoders/mel.h"
#include "encoders/proj.h"

/* Loops smaller than this many floats of work stay on one thread. */
#define PAR_MIN 32768
/* Channels per thread in a bias gradient (each thread owns its columns). */
#define BIAS_BLOCK 16
/* 1/sqrt(2) and 1/sqrt(2 pi), for the GELU (M_SQRT1_2 is not ISO C) */
#define SQRT1_2 0.70710678118654752440
#define INV_SQRT_2PI 0.39894228040143267794

/* ------------------------------------------------------------------------ */
/* configuration and parameters */

int audio_enc_kind_from_name(const char *name) {
    if (name && !strcmp(name, "stack")) return AUDIO_ENC_STACK;
    if (name && !strcmp(name, "conv")) return AUDIO_ENC_CONV;
    return -1;
}

const char *audio_enc_kind_name(int32_t kind) {
    return kind == AUDIO_ENC_STACK ? "stack" : kind == AUDIO_ENC_CONV ? "conv" : NULL;
}

int audio_enc_config_check(const audio_enc_config *c, loom_error *err) {
    if (c->stack < 1 || c->stack > AUDIO_ENC_MAX_STACK)
        return loom_error_set(err, "audio stack %d outside [1, %d]", c->stack, AUDIO_ENC_MAX_STACK);
    if (c->d_model < 1) return loom_error_set(err, "audio encoder: d_model %d", c->d_model);
    switch (c->kind) {
    case AUDIO_ENC_STACK:
        if (c->channels != 0)
            return loom_error_set(err, "audio encoder \"stack\" has no conv channels (%d given)",
                                  c->channels);
        return 0;
    case AUDIO_ENC_CONV:
        if (c->stack < 2 || (c->stack & (c->stack - 1)) != 0)
            return loom_error_set(err, "audio encoder \"conv\": stack %d is not a power of two in "
                                  "[2, %d] (one stride-2 layer per halving)", c->stack,
                                  AUDIO_ENC_MAX_STACK);
        if (c->channels < 1 || c->channels > AUDIO_ENC_MAX_CHANNELS)
            return loom_error_set(err, "audio encoder \"conv\": channels %d outside [1, %d]",
                                  c->channels, AUDIO_ENC_MAX_CHANNELS);
        return 0;
    default:
        return loom_error_set(err, "audio encoder kind %d unknown", c->kind);
    }
}

int64_t audio_enc_dim(const audio_enc_config *c) { return (int64_t)c->stack * MEL_BINS; }

int64_t audio_enc_positions(int64_t n_frames, int32_t stack) {
    return n_frames > 0 && stack > 0 ? (n_frames + stack - 1) / stack : 0;
}

int32_t audio_enc_conv_layers(const audio_enc_config *c) {
    int32_t n = 0;
    if (c->kind == AUDIO_ENC_CONV)
        while (n < AUDIO_ENC_MAX_CONV && (c->stack >> n) > 1) n++;
    return n;
}

size_t audio_enc_scratch_floats(const audio_enc_config *c, int64_t N) {
    if (c->kind != AUDIO_ENC_CONV || N <= 0) return 0;
    /* z_l and x_l for l = 1..n: 2 Ch (N stack / 2 + N stack / 4 + ... + N) = 2 Ch N (stack - 1) */
    size_t n;
    if (loom_mul_size((size_t)N, (size_t)(c->stack - 1), &n) ||
        loom_mul_size(n, 2 * (size_t)c->channels, &n))
        return SIZE_MAX;
    return n;
}

/* Input channels of conv layer l (0-based). */
static int32_t conv_cin(const audio_enc_config *c, int32_t l) {
    return l == 0 ? MEL_BINS : c->channels;
}

static void conv_name(char *buf, size_t n, int32_t l, const char *what) {
    snprintf(buf, n, "audio.conv%d.%s", l + 1, what);
}

int audio_enc_register(const audio_enc_config *c, param_table *t, loom_error *err) {
    if (audio_enc_config_check(c, err)) return -1;
    if (c->kind == AUDIO_ENC_STACK) {
        int64_t w_shape[2] = {c->d_model, audio_enc_dim(c)}, b_shape[1] = {c->d_model};
        if (params_add(t, "audio.w", 2, w_shape, 1, err)) return -1;
        return params_add(t, "audio.b", 1, b_shape, 0, err);
    }
    char name[PARAM_NAME_MAX];
    for (int32_t l = 0; l < audio_enc_conv_layers(c); l++) {
        int64_t w_shape[3] = {c->channels, 3, conv_cin(c, l)}, b_shape[1] = {c->channels};
        conv_name(name, sizeof name, l, "w");
        if (params_add(t, name, 3, w_shape, 1, err)) return -1;
        conv_name(name, sizeof name, l, "b");
        if (params_add(t, name, 1, b_shape, 0, err)) return -1;
    }
    int64_t w_shape[2] = {c->d_model, c->channels}, b_shape[1] = {c->d_model};
    if (params_add(t, "audio.proj.w", 2, w_shape, 1, err)) return -1;
    return params_add(t, "audio.proj.b", 1, b_shape, 0, err);
}

static float *find(const param_table *t, float *base, const char *name) {
    const param_info *p = params_find(t, name);
    return p ? base + p->offset : NULL;
}

void audio_enc_bind(const audio_enc_config *c, const param_table *t, float *base,
                    audio_enc_weights *w) {
    memset(w, 0, sizeof *w);
    if (c->kind == AUDIO_ENC_STACK) {
        w->w = find(t, base, "audio.w");
        w->b = find(t, base, "audio.b");
        return;
    }
    char name[PARAM_NAME_MAX];
    for (int32_t l = 0; l < audio_enc_conv_layers(c); l++) {
        conv_name(name, sizeof name, l, "w");
        w->conv_w[l] = find(t, base, name);
        conv_name(name, sizeof name, l, "b");
        w->conv_b[l] = find(t, base, name);
    }
    w->proj_w = find(t, base, "audio.proj.w");
    w->proj_b = find(t, base, "audio.proj.b");
}

void audio_enc_init_weights(const audio_enc_config *c, audio_enc_weights *w, loom_rng *rng) {
    const int64_t C = c->d_model;
    if (c->kind == AUDIO_ENC_STACK) {
        const int64_t D = audio_enc_dim(c);
        for (int64_t i = 0; i < C * D; i++) w->w[i] = 0.02f * rng_normal(rng);
        for (int64_t i = 0; i < C; i++) w->b[i] = 0.0f;
        return;
    }
    /* convs: He normal (fan_in 3 Cin) for the GELU after them; the projection like every
     * input projector (0.02) */
    const int64_t Ch = c->channels;
    for (int32_t l = 0; l < audio_enc_conv_layers(c); l++) {
        const int64_t fan_in = 3 * (int64_t)conv_cin(c, l);
        const float std = sqrtf(2.0f / (float)fan_in);
        for (int64_t i = 0; i < Ch * fan_in; i++) w->conv_w[l][i] = std * rng_normal(rng);
        for (int64_t i = 0; i < Ch; i++) w->conv_b[l][i] = 0.0f;
    }
    for (int64_t i = 0; i < C * Ch; i++) w->proj_w[i] = 0.02f * rng_normal(rng);
    for (int64_t i = 0; i < C; i++) w->proj_b[i] = 0.0f;
}

/* ------------------------------------------------------------------------ */
/* input side */

void audio_enc_group(const float *mel, int64_t T, int32_t stack, float *out) {
    float floor_v = INFINITY;
    for (int64_t i = 0; i < (int64_t)MEL_BINS * T; i++) floor_v = mel[i] < floor_v ? mel[i] : floor_v;
    const int64_t P = audio_enc_positions(T, stack);
    for (int64_t p = 0; p < P; p++)
        for (int32_t j = 0; j < stack; j++) {
            const int64_t t = p * stack + j;
            float *o = out + (p * stack + j) * MEL_BINS;
            for (int32_t m = 0; m < MEL_BINS; m++) o[m] = t < T ? mel[(int64_t)m * T + t] : floor_v;
        }
}

int audio_enc_prepare(const loom_audio *a, int32_t stack, float **frames, int64_t *P,
                      loom_error *err) {
    *frames = NULL;
    *P = 0;
    if (stack < 1 || stack > AUDIO_ENC_MAX_STACK) return loom_error_set(err, "audio stack %d", stack);
    const int64_t T = mel_frames(a->n);
    float *mel = malloc((size_t)(T > 0 ? T : 1) * MEL_BINS * sizeof *mel);
    if (!mel) return loom_error_set(err, "out of memory");
    if (mel_compute(a->samples, a->n, mel, err)) {
        free(mel);
        return -1;
    }
    const int64_t n = audio_enc_positions(T, stack);
    float *out = malloc((size_t)n * stack * MEL_BINS * sizeof *out);
    if (!out) {
        free(mel);
        return loom_error_set(err, "out of memory");
    }
    audio_enc_group(mel, T, stack, out);
    free(mel);
    *frames = out;
    *P = n;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* the stack encoder: one linear layer */

void audio_enc_forward(const audio_enc_config *c, const audio_enc_weights *w, const float *frames,
                       int64_t N, float *out, int64_t ldo) {
    proj_forward(w->w, w->b, frames, N, audio_enc_dim(c), c->d_model, out, ldo);
}

void audio_enc_backward(const audio_enc_config *c, audio_enc_weights *g, const float *frames,
                        int64_t N, const float *dout, int64_t ldo) {
    proj_backward(g->w, g->b, frames, N, audio_enc_dim(c), c->d_model, dout, ldo);
}

/* ------------------------------------------------------------------------ */
/* the conv stem: kernels */

/* The utterance that starts at position s ends before the returned position. */
static int64_t utt_end(const int64_t *pos, int64_t s, int64_t N) {
    if (!pos) return N;
    int64_t e = s + 1;
    while (e < N && pos[e] == pos[e - 1] + 1) e++;
    return e;
}

/* y = gelu(x) = x Phi(x) over n values. */
static void gelu_forward(float *y, const float *x, int64_t n) {
#pragma omp parallel for schedule(static) if(n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)SQRT1_2));
}

/* dx = dy gelu'(x), gelu'(x) = Phi(x) + x phi(x); dx may be dy or x. */
static void gelu_backward(float *dx, const float *dy, const float *x, int64_t n) {
#pragma omp parallel for schedule(static) if(n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        const float d = 0.5f * (1.0f + erff(v * (float)SQRT1_2)) +
                        v * (float)INV_SQRT_2PI * expf(-0.5f * v * v);
        dx[i] = dy[i] * d;
    }
}

/* z (M, ch) += b on every row. */
static void add_bias(float *z, const float *b, int64_t M, int32_t ch) {
#pragma omp parallel for schedule(static) if(M * ch >= PAR_MIN)
    for (int64_t i = 0; i < M; i++)
        for (int32_t c = 0; c < ch; c++) z[i * ch + c] += b[c];
}

/* db (ch) += column sums of dz (M, ch), rows in order, in double. */
static void bias_grad(float *db, const float *dz, int64_t M, int32_t ch) {
#pragma omp parallel for schedule(static) if(M * ch >= PAR_MIN && ch > BIAS_BLOCK)
    for (int32_t c0 = 0; c0 < ch; c0 += BIAS_BLOCK) {
        const int32_t n = ch - c0 < BIAS_BLOCK ? ch - c0 : BIAS_BLOCK;
        double acc[BIAS_BLOCK] = {0};
        for (int64_t i = 0; i < M; i++)
            for (int32_t c = 0; c < n; c++) acc[c] += dz[i * ch + c0 + c];
        for (int32_t c = 0; c < n; c++) db[c0 + c] += (float)acc[c];
    }
}

/* One conv layer (kernel 3, stride 2, padding 1) over every utterance of a batch:
 * x (N*r, cin) -> z (N*r/2, ch), r rows per position at the input (even), w (ch, 3, cin).
 *   z[i] = b + W_1 x[2i] + W_2 x[2i+1]  + W_0 x[2i-1]   (the last term not on an utterance's
 *                                                        first row: x[-1] is the padding)
 * Taps 1 and 2 read two adjacent rows, [x[2i], x[2i+1]] = 2 cin contiguous floats, and the
 * weights' columns [cin, 3 cin) : one product over all rows of the batch. Tap 0 reads the odd
 * rows shifted by one: one product per utterance, past its first row. */
static void conv_forward(float *z, const float *x, const float *w, const float *b, int32_t cin,
                         int32_t ch, int64_t r, const int64_t *pos, int64_t N) {
    const int64_t M = N * r / 2, K3 = 3 * (int64_t)cin, K2 = 2 * (int64_t)cin;
    gemm_nt(M, ch, K2, x, K2, w + cin, K3, 0.0f, z, ch);
    for (int64_t s = 0, e; s < N; s = e) {
        e = utt_end(pos, s, N);
        const int64_t o0 = s * r / 2, n = (e - s) * r / 2;
        if (n > 1) gemm_nt(n - 1, ch, cin, x + (2 * o0 + 1) * cin, K2, w, K3, 1.0f, z + (o0 + 1) * ch, ch);
    }
    add_bias(z, b, M, ch);
}

/* Its backward from dz (N*r/2, ch): gw (ch, 3, cin) +=, gb (ch) +=, dx (N*r, cin) = (NULL:
 * not wanted). dx may be x: the weight gradient reads x first. */
static void conv_backward(float *dx, float *gw, float *gb, const float *dz, const float *x,
                          const float *w, int32_t cin, int32_t ch, int64_t r, const int64_t *pos,
                          int64_t N) {
    const int64_t M = N * r / 2, K3 = 3 * (int64_t)cin, K2 = 2 * (int64_t)cin;
    bias_grad(gb, dz, M, ch);
    gemm_tn(ch, K2, M, dz, ch, x, K2, 1.0f, gw + cin, K3);   /* gW_12 += dz^T [x[2i], x[2i+1]] */
    for (int64_t s = 0, e; s < N; s = e) {
        e = utt_end(pos, s, N);
        const int64_t o0 = s * r / 2, n = (e - s) * r / 2;
        if (n > 1) gemm_tn(ch, cin, n - 1, dz + (o0 + 1) * ch, ch, x + (2 * o0 + 1) * cin, K2, 1.0f, gw, K3);
    }
    if (!dx) return;
    gemm_nn(M, K2, ch, dz, ch, w + cin, K3, 0.0f, dx, K2);    /* [dx[2i], dx[2i+1]] = dz W_12 */
    for (int64_t s = 0, e; s < N; s = e) {
        e = utt_end(pos, s, N);
        const int64_t o0 = s * r / 2, n = (e - s) * r / 2;     /* dx[2i-1] += dz[i] W_0 */
        if (n > 1) gemm_nn(n - 1, cin, ch, dz + (o0 + 1) * ch, ch, w, K3, 1.0f, dx + (2 * o0 + 1) * cin, K2);
    }
}

/* Where layer l's (0-based) z and x live in the scratch: layer l has N*stack >> (l+1) rows. */
static float *stem_z(const audio_enc_config *c, float *scratch, int64_t N, int32_t l) {
    size_t off = 0;
    for (int32_t j = 0; j < l; j++) off += 2 * (size_t)c->channels * (size_t)((N * c->stack) >> (j + 1));
    return scratch + off;
}

static float *stem_x(const audio_enc_config *c, float *scratch, int64_t N, int32_t l) {
    return stem_z(c, scratch, N, l) + (size_t)c->channels * (size_t)((N * c->stack) >> (l + 1));
}

/* The conv layers' forward: every z_l and x_l into scratch. */
static void stem_forward(const audio_enc_config *c, const audio_enc_weights *w,
                         const float *frames, const int64_t *pos, int64_t N, float *scratch) {
    const float *x = frames;
    for (int32_t l = 0; l < audio_enc_conv_layers(c); l++) {
        const int64_t r = (int64_t)c->stack >> l, rows = N * r / 2;
        float *z = stem_z(c, scratch, N, l), *y = stem_x(c, scratch, N, l);
        conv_forward(z, x, w->conv_w[l], w->conv_b[l], conv_cin(c, l), c->channels, r, pos, N);
        gelu_forward(y, z, rows * c->channels);
        x = y;
    }
}

/* ------------------------------------------------------------------------ */
/* either encoder */

void audio_enc_encode(const audio_enc_config *c, const audio_enc_weights *w, const float *frames,
                      const int64_t *pos, int64_t N, float *out, int64_t ldo, float *scratch) {
    if (N <= 0) return;
    if (c->kind == AUDIO_ENC_STACK) {
        audio_enc_forward(c, w, frames, N, out, ldo);
        return;
    }
    stem_forward(c, w, frames, pos, N, scratch);
    const float *xn = stem_x(c, scratch, N, audio_enc_conv_layers(c) - 1); /* (N, Ch) */
    proj_forward(w->proj_w, w->proj_b, xn, N, c->channels, c->d_model, out, ldo);
}

void audio_enc_encode_backward(const audio_enc_config *c, const audio_enc_weights *w,
                               audio_enc_weights *g, const float *frames, const int64_t *pos,
                               int64_t N, const float *dout, int64_t ldo, float *scratch) {
    if (N <= 0) return;
    if (c->kind == AUDIO_ENC_STACK) {
        audio_enc_backward(c, g, frames, N, dout, ldo);
        return;
    }
    const int32_t n = audio_enc_conv_layers(c), Ch = c->channels;
    stem_forward(c, w, frames, pos, N, scratch); /* recomputed: the scratch is ours alone */
    float *xn = stem_x(c, scratch, N, n - 1);
    proj_backward(g->proj_w, g->proj_b, xn, N, Ch, c->d_model, dout, ldo);
    gemm_nn(N, Ch, c->d_model, dout, ldo, w->proj_w, Ch, 0.0f, xn, Ch); /* x_n := dL/dx_n */
    for (int32_t l = n - 1; l >= 0; l--) {
        const int64_t r = (int64_t)c->stack >> l, rows = N * r / 2;
        float *z = stem_z(c, scratch, N, l);
        gelu_backward(z, stem_x(c, scratch, N, l), z, rows * Ch);       /* z_l := dL/dz_l */
        float *xp = l > 0 ? stem_x(c, scratch, N, l - 1) : NULL;        /* x_{l-1} := dL/dx_{l-1} */
        conv_backward(xp, g->conv_w[l], g->conv_b[l], z, l > 0 ? xp : frames, w->conv_w[l],
                      conv_cin(c, l), Ch, r, pos, N);
    }
}

/* ------------------------------------------------------------------------ */
/* references: the definitions in audio_enc.h as loops in double */

static double gelu_ref(double x) { return 0.5 * x * (1.0 + erf(x * SQRT1_2)); }

static double gelu_grad_ref(double x) {
    return 0.5 * (1.0 + erf(x * SQRT1_2)) + x * exp(-0.5 * x * x) * INV_SQRT_2PI;
}

/* One utterance of P positions through the stem in double: acts[l] holds z_{l+1} then x_{l+1}
 * (rows L0 >> (l+1), Ch each); acts[n] the output (P, C). */
static void stem_ref(const audio_enc_config *c, const audio_enc_weights *w, const float *frames,
                    int64_t P, double **acts) {
    const int32_t n = audio_enc_conv_layers(c), Ch = c->channels;
    const int64_t L0 = P * c->stack;
    for (int32_t l = 0; l < n; l++) {
        const int64_t Lin = L0 >> l, Lout = Lin / 2, cin = conv_cin(c, l);
        double *z = acts[l], *y = acts[l] + Lout * Ch;
        const double *xd = l > 0 ? acts[l - 1] + (Lin) * Ch : NULL; /* x_l of the layer before */
        for (int64_t i = 0; i < Lout; i++)
            for (int32_t o = 0; o < Ch; o++) {
                double s = w->conv_b[l][o];
                for (int32_t k = 0; k < 3; k++) {
                    const int64_t t = 2 * i - 1 + k;
                    if (t < 0 || t >= Lin) continue;
                    const float *wk = w->conv_w[l] + ((int64_t)o * 3 + k) * cin;
                    for (int64_t ci = 0; ci < cin; ci++)
                        s += (double)wk[ci] * (xd ? xd[t * cin + ci] : (double)frames[t * cin + ci]);
                }
                z[i * Ch + o] = s;
                y[i * Ch + o] = gelu_ref(s);
            }
    }
    const double *xn = acts[n - 1] + P * Ch;
    for (int64_t p = 0; p < P; p++)
        for (int32_t j = 0; j < c->d_model; j++) {
            double s = w->proj_b[j];
            for (int32_t k = 0; k < Ch; k++) s += (double)w->proj_w[(int64_t)j * Ch + k] * xn[p * Ch + k];
            acts[n][p * c->d_model + j] = s;
        }
}

static void free_acts(double **acts, int32_t n) {
    for (int32_t l = 0; l <= n; l++) free(acts[l]);
}

static int alloc_acts(const audio_enc_config *c, int64_t P, double **acts) {
    const int32_t n = audio_enc_conv_layers(c);
    memset(acts, 0, (AUDIO_ENC_MAX_CONV + 1) * sizeof *acts);
    int ok = 1;
    for (int32_t l = 0; l < n; l++)
        ok &= (acts[l] = malloc(sizeof(double) * 2 * (size_t)c->channels *
                                (size_t)((P * c->stack) >> (l + 1)))) != NULL;
    ok &= (acts[n] = malloc(sizeof(double) * (size_t)(P * c->d_model))) != NULL;
    if (!ok) free_acts(acts, n);
    return ok ? 0 : -1;
}

int audio_enc_encode_ref(const audio_enc_config *c, const audio_enc_weights *w,
                         const float *frames, const int64_t *pos, int64_t N, float *out,
                         int64_t ldo) {
    if (c->kind == AUDIO_ENC_STACK) {
        proj_forward_ref(w->w, w->b, frames, N, audio_enc_dim(c), c->d_model, out, ldo);
        return 0;
    }
    const int32_t n = audio_enc_conv_layers(c);
    for (int64_t s = 0, e; s < N; s = e) {
        e = utt_end(pos, s, N);
        double *acts[AUDIO_ENC_MAX_CONV + 1];
        if (alloc_acts(c, e - s, acts)) return -1;
        stem_ref(c, w, frames + s * audio_enc_dim(c), e - s, acts);
        for (int64_t p = 0; p < e - s; p++)
            for (int32_t j = 0; j < c->d_model; j++)
                out[(s + p) * ldo + j] = (float)acts[n][p * c->d_model + j];
        free_acts(acts, n);
    }
    return 0;
}

int audio_enc_encode_backward_ref(const audio_enc_config *c, const audio_enc_weights *w,
                                  audio_enc_weights *g, const float *frames, const int64_t *pos,
                                  int64_t N, const float *dout, int64_t ldo) {
    if (c->kind == AUDIO_ENC_STACK) {
        proj_backward_ref(g->w, g->b, frames, N, audio_enc_dim(c), c->d_model, dout, ldo);
        return 0;
    }
    const int32_t n = audio_enc_conv_layers(c), Ch = c->channels, C = c->d_model;
    /* gradients summed in double over the whole batch, added to g once */
    double *gcw[AUDIO_ENC_MAX_CONV] = {0}, *gcb[AUDIO_ENC_MAX_CONV] = {0};
    double *gpw = calloc((size_t)C * Ch, sizeof(double)), *gpb = calloc((size_t)C, sizeof(double));
    int rc = gpw && gpb ? 0 : -1;
    for (int32_t l = 0; l < n && !rc; l++) {
        gcw[l] = calloc((size_t)Ch * 3 * conv_cin(c, l), sizeof(double));
        gcb[l] = calloc((size_t)Ch, sizeof(double));
        if (!gcw[l] || !gcb[l]) rc = -1;
    }
    for (int64_t s = 0, e; s < N && !rc; s = e) {
        e = utt_end(pos, s, N);
        const int64_t P = e - s, L0 = P * c->stack;
        double *acts[AUDIO_ENC_MAX_CONV + 1];
        /* dx: gradient w.r.t. the current layer's output x, then its input */
        double *dx = malloc(sizeof(double) * (size_t)(L0 / 2) * Ch);
        double *dprev = malloc(sizeof(double) * (size_t)(L0 / 2) * Ch);
        if (!dx || !dprev || alloc_acts(c, P, acts)) {
            free(dx), free(dprev);
            rc = -1;
            break;
        }
        stem_ref(c, w, frames + s * audio_enc_dim(c), P, acts);
        const double *xn = acts[n - 1] + P * Ch;
        for (int64_t p = 0; p < P; p++)
            for (int32_t j = 0; j < C; j++) {
                const double d = dout[(s + p) * ldo + j];
                gpb[j] += d;
                for (int32_t k = 0; k < Ch; k++) gpw[(int64_t)j * Ch + k] += d * xn[p * Ch + k];
            }
        for (int64_t p = 0; p < P; p++)
            for (int32_t k = 0; k < Ch; k++) {
                double sum = 0;
                for (int32_t j = 0; j < C; j++)
                    sum += dout[(s + p) * ldo + j] * (double)w->proj_w[(int64_t)j * Ch + k];
                dx[p * Ch + k] = sum;
            }
        for (int32_t l = n - 1; l >= 0; l--) {
            const int64_t Lin = L0 >> l, Lout = Lin / 2, cin = conv_cin(c, l);
            const double *z = acts[l];
            const double *xd = l > 0 ? acts[l - 1] + Lin * Ch : NULL;
            for (int64_t i = 0; i < Lout * Ch; i++) dx[i] *= gelu_grad_ref(z[i]); /* dz */
            if (l > 0) memset(dprev, 0, sizeof(double) * (size_t)Lin * Ch);
            for (int64_t i = 0; i < Lout; i++)
                for (int32_t o = 0; o < Ch; o++) {
                    const double dz = dx[i * Ch + o];
                    gcb[l][o] += dz;
                    for (int32_t k = 0; k < 3; k++) {
                        const int64_t t = 2 * i - 1 + k;
                        if (t < 0 || t >= Lin) continue;
                        const int64_t wi = ((int64_t)o * 3 + k) * cin;
                        for (int64_t ci = 0; ci < cin; ci++) {
                            const double xv = xd ? xd[t * cin + ci]
                                                 : (double)frames[(s * c->stack + t) * cin + ci];
                            gcw[l][wi + ci] += dz * xv;
                            if (l > 0) dprev[t * cin + ci] += dz * (double)w->conv_w[l][wi + ci];
                        }
                    }
                }
            double *tmp = dx;
            dx = dprev, dprev = tmp;
        }
        free(dx), free(dprev);
        free_acts(acts, n);
    }
    if (!rc) {
        for (int32_t l = 0; l < n; l++) {
            for (int64_t i = 0; i < (int64_t)Ch * 3 * conv_cin(c, l); i++)
                g->conv_w[l][i] += (float)gcw[l][i];
            for (int32_t i = 0; i < Ch; i++) g->conv_b[l][i] += (float)gcb[l][i];
        }
        for (int64_t i = 0; i < (int64_t)C * Ch; i++) g->proj_w[i] += (float)gpw[i];
        for (int32_t i = 0; i < C; i++) g->proj_b[i] += (float)gpb[i];
    }
    for (int32_t l = 0; l < n; l++) free(gcw[l]), free(gcb[l]);
    free(gpw), free(gpb);
    return rc;
}
