/* vq.h: the VQ image autoencoder (VQ-VAE with an EMA codebook). It turns an
 * RGB image into a grid of code tokens (H/S x W/S, S the stride) that the
 * decoder-only transformer can generate, and a grid of codes back into
 * pixels. tests/reference/vq_ref.py is the same model in PyTorch.
 *
 * Tensors are NHWC, pixels in [-1, 1] (vq_pixels_from_rgb: v / 127.5 - 1).
 * With channels c_0 .. c_{L-1} (L levels, S = 2^L), C = c_{L-1}, R residual
 * blocks, D = code_dim, K = codes, and c_{-1} = 3:
 *
 *   encoder   x (B, H, W, 3)
 *             for i = 0 .. L-1:  x = ReLU(conv4x4 stride 2 pad 1, c_{i-1} -> c_i)
 *             R x resblock:      x = x + conv3x3(ReLU(conv3x3(ReLU(x))))   (C -> C -> C)
 *             z_e = conv1x1(ReLU(x)), C -> D                    z_e (B, h, w, D), h = H/S
 *   quantizer code = argmin_k |z_e - e_k|^2  (ties: lowest k), computed with one
 *             gemm as |e_k|^2 - 2 z_e.e_k (|z_e|^2 is the same for every k);
 *             z_q = e_code; the decoder reads z_q, and its gradient is passed
 *             straight through to z_e.
 *   decoder   y = ReLU(conv3x3(z_q)), D -> C
 *             R x resblock (its own weights)
 *             y = ReLU(y)
 *             for i = L-1 .. 0:  y = convT4x4 stride 2 pad 1, c_i -> c_{i-1},
 *                                followed by ReLU except after the last (i = 0,
 *                                to 3 channels): recon (B, H, W, 3).
 *   loss      mean((recon - x)^2) over B*H*W*3
 *             + beta * mean((z_e - sg(z_q))^2) over B*h*w*D      (commitment)
 *
 * The codebook is not trained by gradient. After each step the trainer calls
 * vq_ema_update (exponential moving averages, decay gamma, of each code's
 * assignment count n_k and of the sum s_k of the z_e assigned to it):
 *     N_k = gamma N_k + (1 - gamma) n_k,     M_k = gamma M_k + (1 - gamma) s_k
 *     e_k = M_k / ((N_k + eps) / (n + K eps) * n),   n = sum_k N_k, eps = VQ_EMA_EPS
 * (Laplace smoothing of the counts, as in Sonnet's VectorQuantizerEMA), and
 * vq_restart_dead_codes. vq_kmeans_init sets the codebook from the first
 * batch's encoder outputs.
 *
 * Tensors (names in the model file). Trained by the optimizer: the conv
 * weights (decay) and biases (no decay), laid out as in heads/conv.h:
 *   vq.enc.<i>.weight          (c_i, 4, 4, c_{i-1})  conv        i = 0 .. L-1
 *   vq.enc.<i>.bias            (c_i)
 *   vq.enc.res.<r>.conv1.weight (C, 3, 3, C)  .conv1.bias (C)     r = 0 .. R-1
 *   vq.enc.res.<r>.conv2.weight (C, 3, 3, C)  .conv2.bias (C)
 *   vq.enc.out.weight          (D, 1, 1, C)          vq.enc.out.bias (D)
 *   vq.dec.in.weight           (C, 3, 3, D)          vq.dec.in.bias (C)
 *   vq.dec.res.<r>.conv1/conv2 .weight/.bias         as the encoder's
 *   vq.dec.<i>.weight          (c_i, 4, 4, c_{i-1})  transposed conv c_i -> c_{i-1}
 *   vq.dec.<i>.bias            (c_{i-1})
 * Not trained by the optimizer (the "state" table, see vq_register):
 *   vq.codebook                (K, D)
 *   vq.ema_count               (K)        N_k
 *   vq.ema_sum                 (K, D)     M_k
 *
 * Why a second table for the codebook and its EMA state: AdamW
 * (train/adamw.c), gradient clipping and the global gradient norm walk every
 * float of the parameter table. A tensor in it with no gradient would still
 * be weight-decayed (or, with decay off, be left alone only because its m
 * and v stay zero) and would cost m and v buffers. Keeping the codebook and its
 * statistics in their own table keeps "the trained table is exactly what
 * has gradients" true without a flag every walker would have to honour. Both
 * tables' tensors go into the model file and checkpoints (the names are
 * disjoint); only the trained one gets gradients and AdamW moments.
 *
 * Training step (grads zeroed by the caller; the forward's batch is used by
 * everything after it):
 *
 *     vq_kmeans_init(&c, &w, acts, first_pixels, B, H, W, 10, &rng, &err);  // once
 *     ...
 *     if (vq_forward(&c, &w, acts, pixels, B, H, W, NULL, &loss, &err)) ...
 *     vq_backward(&c, &w, &g, acts, 1.0f);              // g += d loss
 *     adamw_step(&params_table, params, grads, m, v, ...);
 *     vq_ema_update(&c, &w, acts);                      // codebook from the EMAs
 *     vq_restart_dead_codes(&c, &w, acts, 1.0f, &rng);
 *
 * Inference (acts from vq_acts_new(c, B, H, W) with room for the batch):
 *
 *     vq_encode(&c, &w, acts, pixels, B, H, W, codes, &err);   // codes (B, H/S, W/S)
 *     vq_decode(&c, &w, acts, codes, B, rows, cols, out, &err); // out (B, rows*S, cols*S, 3)
 *
 * Sizes: H and W must be multiples of S in [S, VQ_MAX_SIDE]; B >= 1; the
 * batch must fit the acts (B*H*W <= the B*H*W they were made for). Anything
 * else is refused with an error, never undefined behaviour.
 *
 * Threads: everything is deterministic and independent of the thread count
 * (heads/conv.h; reductions are summed in a fixed order).
 */
#ifndef LOOM_HEADS_VQ_H
#define LOOM_HEADS_VQ_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/params.h"
#include "core/rng.h"

#define VQ_MAX_LEVELS 5        /* stride up to 32 */
#define VQ_MAX_RES_BLOCKS 8
#define VQ_MAX_CHANNELS 2048   /* each c_i and D */
#define VQ_MAX_CODES 65536     /* K */
#define VQ_MAX_SIDE 8192       /* H, W in pixels */
#define VQ_MAX_PIXELS ((int64_t)1 << 28) /* B*H*W of one batch */
#define VQ_EMA_EPS 1e-5f       /* Laplace smoothing of the EMA counts */

typedef struct vq_config {
    int32_t n_levels;                 /* L = number of channel counts; stride S = 2^L */
    int32_t channels[VQ_MAX_LEVELS];  /* c_0 .. c_{L-1}; C = c_{L-1} */
    int32_t res_blocks;               /* R, in [0, VQ_MAX_RES_BLOCKS] */
    int32_t code_dim;                 /* D */
    int32_t codes;                    /* K */
    float   beta;                     /* commitment weight, >= 0 */
    float   ema_decay;                /* gamma, in [0, 1) */
} vq_config;

/* {"stride":8,"channels":[64,128,128],"res_blocks":1,"code_dim":64,"codes":512,
 *  "beta":0.25,"ema_decay":0.99}: 64x64 images -> 8x8 codes. */
vq_config vq_default_config(void);
int vq_config_check(const vq_config *c, loom_error *err);
int32_t vq_stride(const vq_config *c);  /* S = 2^L */
/* The JSON object above (malloc'd; NULL if out of memory). */
char *vq_config_to_json(const vq_config *c);
/* Parses and validates; every key but "stride" is required, and "stride",
 * when present, must equal 2^len(channels). */
int vq_config_from_json(const char *json, vq_config *c, loom_error *err);

typedef struct vq_res_weights {
    float *w1, *b1;  /* (C, 3, 3, C), (C) */
    float *w2, *b2;  /* (C, 3, 3, C), (C) */
} vq_res_weights;

/* Pointers into the flat buffers: the parameters (or their gradients) and the state. */
typedef struct vq_weights {
    float *enc_w[VQ_MAX_LEVELS];   /* (c_i, 4, 4, c_{i-1}) */
    float *enc_b[VQ_MAX_LEVELS];   /* (c_i) */
    vq_res_weights enc_res[VQ_MAX_RES_BLOCKS];
    float *enc_out_w;              /* (D, 1, 1, C) */
    float *enc_out_b;              /* (D) */
    float *dec_in_w;               /* (C, 3, 3, D) */
    float *dec_in_b;               /* (C) */
    vq_res_weights dec_res[VQ_MAX_RES_BLOCKS];
    float *dec_w[VQ_MAX_LEVELS];   /* (c_i, 4, 4, c_{i-1}), transposed conv */
    float *dec_b[VQ_MAX_LEVELS];   /* (c_{i-1}) */
    /* state (NULL when bound without a state buffer, e.g. for gradients) */
    float *codebook;               /* (K, D) */
    float *ema_count;              /* (K) */
    float *ema_sum;                /* (K, D) */
} vq_weights;

/* Adds the trained tensors to params and the codebook + EMA state to state
 * (two different tables; see above). */
int vq_register(const vq_config *c, param_table *params, param_table *state, loom_error *err);
/* Points w into params_base (laid out by params) and state_base (laid out
 * by state); state/state_base may be NULL (gradients): the state pointers
 * are then NULL. Missing tensors give NULL pointers. */
void vq_bind(const vq_config *c, const param_table *params, float *params_base,
             const param_table *state, float *state_base, vq_weights *w);
/* He-normal conv weights (std sqrt(2 / fan_in); the transposed convs' fan-in
 * counts the taps that reach one output pixel, Cin*KH*KW/S^2; the last one,
 * without ReLU, std sqrt(1 / fan_in)), zero biases, codebook ~ N(0, 1),
 * ema_count = 1, ema_sum = codebook. */
void vq_init_weights(const vq_config *c, vq_weights *w, loom_rng *rng);
/* Floats in the trained table / in the state table. */
int64_t vq_param_count(const vq_config *c);
int64_t vq_state_count(const vq_config *c);

typedef struct vq_res_acts {
    float *a;  /* (B, h, w, C) ReLU(x) */
    float *u;  /* (B, h, w, C) ReLU(conv1(a)) */
    float *y;  /* (B, h, w, C) x + conv2(u) */
} vq_res_acts;

/* Activations of one batch, allocated once for a capacity of B*H*W pixels.
 * Level i of the encoder has sides H_i = H >> (i+1), W_i = W >> (i+1);
 * h = H/S, w = W/S; N = B*h*w code positions. */
typedef struct vq_acts {
    int64_t max_pixels;                 /* capacity: B*H*W of vq_acts_new */
    int32_t B, H, W;                    /* the batch of the last forward/encode/decode */
    float  *x;                          /* (B, H, W, 3) input pixels */
    float  *enc[VQ_MAX_LEVELS];         /* (B, H_i, W_i, c_i) ReLU(conv_i) */
    vq_res_acts enc_res[VQ_MAX_RES_BLOCKS];
    float  *enc_top;                    /* (B, h, w, C) ReLU(last residual output) */
    float  *ze;                         /* (B, h, w, D) encoder output z_e */
    float  *zq;                         /* (B, h, w, D) quantized z_q */
    int32_t *codes;                     /* (B, h, w) */
    float  *qerr;                       /* (B, h, w) |z_e - z_q|^2 */
    float  *dist;                       /* (N, K) scratch: code scores */
    float  *enorm;                      /* (K) |e_k|^2 */
    float  *dec_bottom;                 /* (B, h, w, C) ReLU(conv3x3(z_q)) */
    vq_res_acts dec_res[VQ_MAX_RES_BLOCKS];
    float  *dec_top;                    /* (B, h, w, C) ReLU(last residual output) */
    float  *dec[VQ_MAX_LEVELS];         /* dec[i]: output of transposed conv i,
                                           (B, H_{i-1}, W_{i-1}, c_{i-1}), ReLU'd for
                                           i > 0; dec[0] = recon (B, H, W, 3) */
    float  *grad[3];                    /* backward scratch, each the largest activation */
    float  *ema_tmp;                    /* (K, D + 1) batch sums and counts */
    float  *scratch;                    /* im2col columns (heads/conv.h) */
    double  mse, commit;                /* the two loss terms of the last vq_forward */
    arena   mem;                        /* every buffer above, one allocation */
} vq_acts;

/* Room for batches of up to B*H*W pixels (H, W multiples of the stride). */
vq_acts *vq_acts_new(const vq_config *c, int32_t B, int32_t H, int32_t W, loom_error *err);
void vq_acts_free(vq_acts *a);

/* Training forward on pixels (B, H, W, 3) in [-1, 1]. Writes *loss (mse +
 * commitment; the terms in a->mse, a->commit) and, if codes != NULL, the
 * chosen codes (B, H/S, W/S). Returns 0, or -1 for sizes that are not
 * multiples of the stride, out of range, or too large for a. */
int vq_forward(const vq_config *c, const vq_weights *w, vq_acts *a, const float *pixels,
               int32_t B, int32_t H, int32_t W, int32_t *codes, float *loss, loom_error *err);
/* Backward of loss_scale * loss for the batch of the vq_forward just before:
 * gradients are ADDED into g (trained tensors only). */
void vq_backward(const vq_config *c, const vq_weights *w, vq_weights *g, vq_acts *a,
                 float loss_scale);
/* One EMA step of the codebook from the codes and z_e of the last
 * vq_forward or vq_encode (formula above; not after a vq_decode, which has
 * no z_e). Needs w's state. */
void vq_ema_update(const vq_config *c, vq_weights *w, vq_acts *a);
/* Replaces every code whose ema_count is below threshold by an encoder
 * output z_e of the last vq_forward or vq_encode, drawn at random (rng) with probability
 * proportional to its quantization error |z_e - z_q|^2 (uniformly if every
 * error is 0), without drawing one position twice; the code's ema_count is
 * set to threshold and ema_sum to threshold * z_e. Codes are visited in
 * index order. Returns how many were replaced. ema_count is in units of
 * code positions per batch (N = B*h*w of them), so a threshold near 1 means
 * "chosen less than about once per batch on average". */
int32_t vq_restart_dead_codes(const vq_config *c, vq_weights *w, vq_acts *a, float threshold,
                              loom_rng *rng);
/* k-means initialisation of the codebook from the encoder outputs of one
 * batch: k-means++ seeding (each next seed an encoder output drawn with
 * probability proportional to its squared distance to the nearest seed;
 * uniformly when all are 0, i.e. fewer distinct outputs than K), then iters
 * Lloyd iterations (empty clusters keep their seed). ema_count is set to
 * the final cluster sizes and ema_sum to codebook * size. Overwrites a's
 * activations. */
int vq_kmeans_init(const vq_config *c, vq_weights *w, vq_acts *a, const float *pixels, int32_t B,
                   int32_t H, int32_t W, int32_t iters, loom_rng *rng, loom_error *err);

/* Inference: pixels (B, H, W, 3) in [-1, 1] -> codes (B, H/S, W/S). */
int vq_encode(const vq_config *c, const vq_weights *w, vq_acts *a, const float *pixels,
              int32_t B, int32_t H, int32_t W, int32_t *codes, loom_error *err);
/* Inference: codes (B, rows, cols), each in [0, K) -> pixels
 * (B, rows*S, cols*S, 3), clamped to [-1, 1]. */
int vq_decode(const vq_config *c, const vq_weights *w, vq_acts *a, const int32_t *codes,
              int32_t B, int32_t rows, int32_t cols, float *pixels, loom_error *err);

/* n values: x = v / 127.5 - 1 (computed in double, as encoders/patch.h does). */
void vq_pixels_from_rgb(float *x, const uint8_t *rgb, int64_t n);
/* n values: v = round((x + 1) * 127.5) clamped to [0, 255] (NaN -> 0). */
void vq_pixels_to_rgb(uint8_t *rgb, const float *x, int64_t n);
/* PSNR in dB of two 8-bit images of n values: 10 log10(255^2 / MSE);
 * INFINITY when they are equal. */
double vq_psnr(const uint8_t *a, const uint8_t *b, int64_t n);

#endif
