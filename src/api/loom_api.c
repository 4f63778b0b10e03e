/* loom_api.c: the public API of include/loom.h over the internal modules. */
#include "loom.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/threads.h"
#include "decoder/decoder.h"
#include "heads/sampler.h"
#include "encoders/image.h"
#include "model/infer.h"
#include "model/model.h"

struct loom_context {
    loom_model *model;
    decoder_cache *cache;
    float *logits, *scratch; /* (V), (2V) */
    int32_t *ids;            /* (max_seq) */
    loom_infer *infer;       /* created on first image question */
    loom_error err;
};

struct loom_context_params loom_context_default_params(void) {
    struct loom_context_params p = {.n_threads = 0};
    return p;
}

struct loom_sampling_params loom_sampling_default_params(void) {
    struct loom_sampling_params p = {.n_predict = 128, .temp = 0.8f, .top_k = 40, .top_p = 0.95f,
                                     .seed = 1};
    return p;
}

loom_context *loom_init_from_file(const char *path, struct loom_context_params params, char *err,
                                  size_t err_size) {
    loom_error e = {{0}};
    loom_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        loom_error_set(&e, "out of memory");
        goto fail;
    }
    loom_threads_set(params.n_threads);
    ctx->model = model_load(path, &e);
    if (!ctx->model) goto fail;  /* the message names the path */
    if (!ctx->model->tok) {
        loom_error_set(&e, "%s: model has no tokenizer", path);
        goto fail;
    }
    const decoder_config *c = &ctx->model->cfg;
    ctx->cache = decoder_cache_new(c, c->max_seq, &e);
    ctx->logits = malloc((size_t)c->vocab_size * sizeof(float));
    ctx->scratch = malloc((size_t)c->vocab_size * 2 * sizeof(float));
    ctx->ids = malloc((size_t)c->max_seq * sizeof(int32_t));
    if (!ctx->cache || !ctx->logits || !ctx->scratch || !ctx->ids) {
        if (ctx->cache) loom_error_set(&e, "out of memory");
        goto fail;
    }
    return ctx;
fail:
    if (err && err_size) snprintf(err, err_size, "%s", e.msg);
    loom_free(ctx);
    return NULL;
}

void loom_free(loom_context *ctx) {
    if (!ctx) return;
    infer_free(ctx->infer);
    model_free(ctx->model);
    decoder_cache_free(ctx->cache);
    free(ctx->logits);
    free(ctx->scratch);
    free(ctx->ids);
    free(ctx);
}

const char *loom_last_error(const loom_context *ctx) { return ctx ? ctx->err.msg : "no context"; }

struct loom_model_info loom_get_model_info(const loom_context *ctx) {
    const decoder_config *c = &ctx->model->cfg;
    struct loom_model_info i = {
        .vocab_size = c->vocab_size, .d_model = c->d_model, .n_layers = c->n_layers,
        .n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads, .d_ff = c->d_ff,
        .max_seq = c->max_seq, .window = c->window, .tie_embeddings = c->tie_embeddings,
        .patch_size = ctx->model->img.patch_size,
        .n_params = decoder_param_count(c),
    };
    return i;
}

int32_t loom_generate(loom_context *ctx, const char *prompt, size_t prompt_len,
                      struct loom_sampling_params params, loom_piece_callback cb, void *user) {
    loom_model *m = ctx->model;
    const decoder_config *c = &m->cfg;
    const int32_t V = c->vocab_size, tok_v = tokenizer_vocab_size(m->tok);
    ctx->err.msg[0] = '\0';
    if (params.n_predict < 0) return loom_error_set(&ctx->err, "n_predict must be >= 0");
    if (!(params.temp >= 0.0f)) return loom_error_set(&ctx->err, "temperature must be >= 0");
    /* Tokenize: <bos> prompt. */
    size_t needed = 0;
    ctx->ids[0] = TOKEN_BOS;
    int64_t n = tokenizer_encode(m->tok, prompt, prompt_len, ctx->ids + 1, (size_t)c->max_seq - 1,
                                 &needed, &ctx->err);
    if (n < 0) {
        if (needed) return loom_error_set(&ctx->err, "prompt is %zu tokens; the context holds %d",
                                          needed, c->max_seq - 1);
        return -1;
    }
    int32_t n_prompt = (int32_t)n + 1;
    decoder_cache_reset(ctx->cache);
    for (int32_t i = 0; i < n_prompt; i++)
        if (decoder_step_token(c, &m->w, ctx->cache, ctx->ids[i],
                               i == n_prompt - 1 ? ctx->logits : NULL, &ctx->err))
            return -1;
    /* Text generation may choose text tokens and <eos>, never other specials
     * or ids past the tokenizer (image codes). */
    uint8_t *allowed = calloc((size_t)V, 1);
    if (!allowed) return loom_error_set(&ctx->err, "out of memory");
    for (int32_t i = TOKENIZER_N_SPECIAL; i < tok_v && i < V; i++) allowed[i] = 1;
    allowed[TOKEN_EOS] = 1;
    loom_rng rng;
    rng_seed(&rng, params.seed);
    sampler_params sp = {.temp = params.temp, .top_k = params.top_k, .top_p = params.top_p};
    int32_t produced = 0;
    char piece[TOKENIZER_MAX_TOKEN_BYTES]; /* a whole token: merges reach 1024 bytes */
    while (produced < params.n_predict) {
        int32_t id = sampler_sample(ctx->logits, V, allowed, sp, &rng, ctx->scratch);
        if (id < 0 || id == TOKEN_EOS) break;
        produced++;
        int64_t len = tokenizer_decode_token(m->tok, id, 0, piece, sizeof piece);
        if (len > 0 && cb && cb(piece, (size_t)(len < (int64_t)sizeof piece ? len : (int64_t)sizeof piece), user)) break;
        if (ctx->cache->n >= ctx->cache->max_seq) break;
        if (decoder_step_token(c, &m->w, ctx->cache, id, ctx->logits, &ctx->err)) {
            free(allowed);
            return -1;
        }
    }
    free(allowed);
    return produced;
}

/* Adapts the public callback (int level) to the internal one (enum level). */
typedef struct { loom_log_callback_fn cb; void *user; } log_adapter;
static log_adapter g_log_adapter;  /* set once at start-up, like the callback itself */

static void log_trampoline(loom_log_level level, const char *msg, void *user) {
    const log_adapter *a = user;
    a->cb((int)level, msg, a->user);
}

void loom_log_set_callback(loom_log_callback_fn cb, void *user) {
    g_log_adapter.cb = cb;
    g_log_adapter.user = user;
    loom_log_set(cb ? log_trampoline : NULL, cb ? &g_log_adapter : NULL);
}

int32_t loom_ask_image(loom_context *ctx, const uint8_t *rgb, int32_t width, int32_t height,
                       const char *prompt, size_t prompt_len, char *out, size_t out_size) {
    ctx->err.msg[0] = '\0';
    if (out && out_size) out[0] = '\0';
    if (!rgb || !out || out_size == 0 || (!prompt && prompt_len))
        return loom_error_set(&ctx->err, "missing image, prompt or output buffer");
    loom_image img = {.width = width, .height = height, .rgb = (uint8_t *)rgb};
    if (image_check(&img, &ctx->err)) return -1;
    if (!ctx->infer && !(ctx->infer = infer_new(ctx->model, &ctx->err))) return -1;
    int64_t n = infer_answer(ctx->infer, &img, prompt ? prompt : "", prompt_len, 256, out, out_size,
                             &ctx->err);
    return n < 0 ? -1 : (int32_t)n;
}

int32_t loom_ask_image_file(loom_context *ctx, const char *path, const char *prompt,
                            size_t prompt_len, char *out, size_t out_size) {
    loom_image img = {0};
    ctx->err.msg[0] = '\0';
    if (image_load_file(path, &img, &ctx->err)) return -1;
    int32_t n = loom_ask_image(ctx, img.rgb, img.width, img.height, prompt, prompt_len, out, out_size);
    image_free(&img);
    return n;
}
