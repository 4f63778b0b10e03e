/* decoder.h: the decoder-only transformer at loom's centre.
 *
 * RMSNorm, rotary position embeddings (interleaved pairs), grouped-query
 * attention with an optional sliding window, SwiGLU MLP, final norm, and an LM
 * head tied to the token embedding or not. docs/model-format.md states the
 * exact math and the tensor names; tests/reference/loom_ref.py is the same
 * model in PyTorch.
 *
 * The decoder consumes input EMBEDDINGS (B, T, C), not tokens, so other
 * modules (image patches, audio frames) can place their own vectors in the
 * sequence; decoder_embed() fills them from tokens. Training:
 *
 *     decoder_embed(cfg, &w, tokens, B*T, acts->x0);
 *     float loss = decoder_forward(cfg, &w, acts, B, T, targets);
 *     decoder_backward(cfg, &w, &g, acts, B, T, targets);   // grads += d loss
 *     decoder_embed_backward(cfg, &g, tokens, B*T, acts->dx0);
 *
 * Generation uses a KV cache, one position at a time (decoder_step).
 *
 * A quantized decoder (config quant_group G > 0, built by model_quantize)
 * keeps its big matrices (wq, wk, wv, wo, w_gate, w_up, w_down, and with
 * quant_head the LM head) as int8 with one scale per G inputs (core/q8.h) in
 * a decoder_q8, pointed to by decoder_weights.q8; the fp32 pointers of those
 * tensors are NULL. decoder_forward, decoder_prefill and decoder_step then run
 * them as int8 products, the activations quantized on the fly. It is for
 * inference only: decoder_backward and decoder_init_weights take fp32 weights.
 */
#ifndef LOOM_DECODER_DECODER_H
#define LOOM_DECODER_DECODER_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/params.h"
#include "core/rng.h"

#define DECODER_MAX_SEQ 8192

typedef struct decoder_config {
    int32_t vocab_size;     /* V */
    int32_t d_model;        /* C */
    int32_t n_layers;       /* L */
    int32_t n_heads;        /* H; head dim HD = C / H */
    int32_t n_kv_heads;     /* KVH, divides H */
    int32_t d_ff;           /* F, SwiGLU hidden size */
    int32_t max_seq;        /* longest sequence (RoPE table, KV cache) */
    int32_t window;         /* sliding-window width; 0 = full causal attention */
    float   rope_theta;
    float   norm_eps;
    int32_t tie_embeddings; /* LM head shares tok_emb */
    int32_t quant_group;    /* 0: fp32 weights; G > 0: the matrices are int8 in groups of G
                               along their input (core/q8.h); JSON "quant": {"type": "q8",
                               "group": G, "head": 0|1} */
    int32_t quant_head;     /* with quant_group: the LM head is int8 too (0 or 1) */
} decoder_config;

decoder_config decoder_default_config(void);
int decoder_config_check(const decoder_config *c, loom_error *err);
/* JSON text of the config (malloc'd), and parsing with full validation. */
char *decoder_config_to_json(const decoder_config *c);
int decoder_config_from_json(const char *json, decoder_config *c, loom_error *err);

/* Pointers into a flat buffer: the parameters, or their gradients. */
typedef struct decoder_weights {
    float *tok_emb;     /* (V, C) */
    float *attn_norm;   /* (L, C) */
    float *wq;          /* (L, H*HD, C) */
    float *wk;          /* (L, KVH*HD, C) */
    float *wv;          /* (L, KVH*HD, C) */
    float *wo;          /* (L, C, H*HD) */
    float *mlp_norm;    /* (L, C) */
    float *w_gate;      /* (L, F, C) */
    float *w_up;        /* (L, F, C) */
    float *w_down;      /* (L, C, F) */
    float *final_norm;  /* (C) */
    float *lm_head;     /* (V, C); == tok_emb when tied */
    const struct decoder_q8 *q8; /* int8 matrices of a quantized decoder, else NULL */
} decoder_weights;

/* One int8 matrix stack: (NL, N, K) weights as rows padded to KP =
 * q8_padded(K, G), and their scales. In the file: tensors "<name>.q8" (I8,
 * (NL, N, KP)) and "<name>.q8_scale" (F32, (NL, N, KP/G)). */
typedef struct decoder_q8_matrix {
    int8_t *q;          /* (NL, N, KP) */
    float  *d;          /* (NL, N, KP/G) */
} decoder_q8_matrix;

typedef struct decoder_q8 {
    int32_t group;      /* G */
    decoder_q8_matrix wq;     /* (L, H*HD, C) */
    decoder_q8_matrix wk, wv; /* (L, KVH*HD, C) */
    decoder_q8_matrix wo;     /* (L, C, H*HD) */
    decoder_q8_matrix w_gate, w_up; /* (L, F, C) */
    decoder_q8_matrix w_down; /* (L, C, F) */
    decoder_q8_matrix lm_head; /* (V, C) with quant_head (a copy of tok_emb when tied), else NULLs */
    void *mem;          /* every array above, one allocation */
} decoder_q8;

/* Int8 storage for c (c->quant_group > 0), zeroed. */
decoder_q8 *decoder_q8_new(const decoder_config *c, loom_error *err);
void decoder_q8_free(decoder_q8 *q);
/* Quantizes fp32 weights w (every tensor bound, as in an fp32 decoder of the
 * same shape) into q, made for qc (quant_group > 0). Refuses non-finite weights. */
int decoder_q8_quantize(const decoder_config *qc, decoder_q8 *q, const decoder_weights *w,
                        loom_error *err);
/* Int8 values and scales the quantized tensors of c hold (0 for fp32 c). */
void decoder_q8_counts(const decoder_config *c, int64_t *n_int8, int64_t *n_scales);
/* The int8 tensors to a writer (referenced, as st_writer_add does) / read
 * from a file: dtype and shape checked, every value in [-127, 127], padding 0,
 * every scale finite and >= 0. */
struct st_writer;
struct st_file;
int decoder_q8_write(const decoder_config *c, const decoder_q8 *q, struct st_writer *w,
                     loom_error *err);
int decoder_q8_read(const decoder_config *c, decoder_q8 *q, const struct st_file *f,
                    loom_error *err);
/* The i-th int8 tensor stack of a quantized c, for listings (loom info,
 * loom quantize): 1 and *out filled, or 0 past the last (i from 0). */
typedef struct decoder_q8_info {
    const char *name;           /* "decoder.wq" (file tensors "decoder.wq.q8", ".q8_scale") */
    int64_t NL, N, K, KP;       /* weights (NL, N, K), rows padded to KP; NL 0: a 2-D (N, K) tensor */
    const decoder_q8_matrix *m; /* its int8 values and scales in q (NULL when q is NULL) */
    const float *fp32;          /* the fp32 tensor it quantizes in w (NULL when w is NULL) */
} decoder_q8_info;
int decoder_q8_tensor(const decoder_config *c, int i, const decoder_q8 *q,
                      const decoder_weights *w, decoder_q8_info *out);

/* Adds the decoder's tensors ("decoder.*") to a parameter table. */
int  decoder_register(const decoder_config *c, param_table *t, loom_error *err);
/* Points w into base, a buffer laid out by t. */
void decoder_bind(const decoder_config *c, const param_table *t, float *base, decoder_weights *w);
void decoder_init_weights(const decoder_config *c, decoder_weights *w, loom_rng *rng);
/* Depth growth (block expansion, as in LLaMA Pro): fills the layer tensors of
 * dst, a decoder of to->n_layers layers, from src's from->n_layers layers in
 * order, with the to - from extra layers spread evenly among them. Each extra
 * layer is a copy of the layer before it with its output projections (wo,
 * w_down) zero, so its blocks add nothing to the residual stream: the grown
 * decoder computes exactly what src did, and training gives the new blocks
 * their own work. The layers must agree in shape (d_model, heads, d_ff);
 * tensors outside them (embedding, final norm, head) are not touched.
 * fp32 decoders only. Returns 0, or -1 with err set. */
int decoder_grow_layers(const decoder_config *from, const decoder_weights *src,
                        const decoder_config *to, decoder_weights *dst, loom_error *err);

/* Activations for a batch of at most B x T positions, allocated once. */
typedef struct decoder_acts {
    int32_t B, T;       /* capacity */
    float *rope_cos, *rope_sin; /* (T, HD/2) */
    float *x0;          /* (B, T, C) input embeddings */
    float *resid;       /* (L+1, B, T, C) residual stream at each layer's input, and the output */
    float *xmid;        /* (L, B, T, C) residual after attention */
    float *ln1, *ln2;   /* (L, B, T, C) normalized inputs of attention and MLP */
    float *rstd1, *rstd2; /* (L, B, T) */
    float *q;           /* (L, B, T, H*HD), after rope */
    float *k, *v;       /* (L, B, T, KVH*HD), k after rope */
    float *att;         /* (L, B, H, T, T) attention probabilities */
    float *atty;        /* (L, B, T, H*HD) attention output */
    float *gate, *up, *act; /* (L, B, T, F) */
    float *lnf;         /* (B, T, C) */
    float *rstdf;       /* (B, T) */
    float *logits;      /* (B, T, V); decoder_backward turns it into d loss / d logits */
    float *losses;      /* (B, T) per-position loss (0 where ignored) */
    /* backward scratch */
    float *datt;        /* (B, H, T, T) */
    float *dx, *dln;    /* (B, T, C) */
    float *dq, *datty;  /* (B, T, H*HD) */
    float *dk, *dv;     /* (B, T, KVH*HD) */
    float *dgate, *dup, *dact; /* (B, T, F) */
    float *dx0;         /* (B, T, C) gradient of the input embeddings */
    int8_t *xq;         /* quantized decoder: (B*T, KP) int8 activations, KP = the widest
                           padded input; else NULL */
    float *xd;          /* quantized decoder: (B*T, KP/G) their scales; else NULL */
    arena mem;          /* every buffer above, one allocation */
} decoder_acts;

decoder_acts *decoder_acts_new(const decoder_config *c, int32_t B, int32_t T, loom_error *err);
void decoder_acts_free(decoder_acts *a);

/* x0[i] = tok_emb[tokens[i]] for n positions (tokens must be in [0, V)). */
void decoder_embed(const decoder_config *c, const decoder_weights *w, const int32_t *tokens,
                   int64_t n, float *x0);
/* g->tok_emb[tokens[i]] += dx0[i]. */
void decoder_embed_backward(const decoder_config *c, decoder_weights *g, const int32_t *tokens,
                            int64_t n, const float *dx0);

/* Forward over a->x0 (B, T, C). With targets (B, T; -1 = ignored) returns the
 * mean loss over the counted positions (0 if none); without, returns 0.
 * Logits land in a->logits. */
float decoder_forward(const decoder_config *c, const decoder_weights *w, decoder_acts *a,
                      int32_t B, int32_t T, const int32_t *targets);
/* Backward of the mean loss, scaled by loss_scale (1/accumulation steps):
 * gradients are ADDED into g; a->dx0 receives d loss / d x0. Needs the forward
 * of the same batch just before. */
void decoder_backward(const decoder_config *c, const decoder_weights *w, decoder_weights *g,
                      decoder_acts *a, int32_t B, int32_t T, const int32_t *targets,
                      float loss_scale);

/* KV cache for incremental decoding of one sequence. */
typedef struct decoder_cache {
    int32_t max_seq;
    int32_t n;          /* positions filled */
    float *k, *v;       /* (L, max_seq, KVH*HD) */
    float *rope_cos, *rope_sin; /* (max_seq, HD/2) */
    float *x, *h, *q, *atty, *gate, *up, *scores; /* scratch for one position */
    int8_t *xq;         /* quantized decoder: (KP) one quantized activation row; else NULL */
    float *xd;          /* quantized decoder: (KP/G) its scales; else NULL */
    arena mem;          /* every buffer above, one allocation */
} decoder_cache;

decoder_cache *decoder_cache_new(const decoder_config *c, int32_t max_seq, loom_error *err);
void decoder_cache_free(decoder_cache *kc);
void decoder_cache_reset(decoder_cache *kc);
/* Runs one position with input embedding x (C) at position kc->n and appends
 * it to the cache; writes the logits (V) if logits != NULL. -1 when full. */
int decoder_step(const decoder_config *c, const decoder_weights *w, decoder_cache *kc,
                 const float *x, float *logits, loom_error *err);
int decoder_step_token(const decoder_config *c, const decoder_weights *w, decoder_cache *kc,
                       int32_t token, float *logits, loom_error *err);

/* Several sequences stepped together (a server's concurrent requests): each
 * linear layer is one matrix-matrix product over the n rows, so the weights
 * are read once per step instead of n times; attention stays per sequence.
 * The scratch serves up to max_batch sequences whose caches hold at most
 * max_seq positions. */
typedef struct decoder_batch decoder_batch;
decoder_batch *decoder_batch_new(const decoder_config *c, int32_t max_batch, int32_t max_seq,
                                 loom_error *err);
void decoder_batch_free(decoder_batch *b);
int32_t decoder_batch_capacity(const decoder_batch *b);
/* Runs one position of each of n sequences: row i of x (n, C) at position
 * kc[i]->n, appended to kc[i]; the logits (n, V) if logits != NULL. Equal to
 * n decoder_step calls bit for bit. -1 (nothing stepped) when a cache is full. */
int decoder_step_batch(const decoder_config *c, const decoder_weights *w, decoder_cache *const *kc,
                       int32_t n, decoder_batch *b, const float *x, float *logits,
                       loom_error *err);

/* Fills an empty cache with T positions at once: the full forward on
 * a->x0 (1, T, C) (the caller writes it; a made for B = 1 and at least T
 * positions), its keys and values copied into the cache, the logits (V) of
 * the last position written if logits != NULL. Matrix-matrix work instead of
 * T matrix-vector steps; the result equals stepping up to float rounding. */
int decoder_prefill(const decoder_config *c, const decoder_weights *w, decoder_cache *kc,
                    decoder_acts *a, int32_t T, float *logits, loom_error *err);

/* Parameter count of a config (weights, fp32 or int8). */
int64_t decoder_param_count(const decoder_config *c);

#endif
