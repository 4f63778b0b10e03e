/* loom.h: the public C API of loom, a multimodal transformer pipeline.
 *
 * Opaque handles, *_default_params() structs, init/free pairs, 0 on success
 * and NULL / -1 on failure with the reason in a caller's buffer or in
 * loom_last_error(ctx). Nothing here exits the process.
 *
 * Usage:
 *
 *     char err[256];
 *     struct loom_context_params cp = loom_context_default_params();
 *     cp.n_threads = 2;
 *     loom_context *ctx = loom_init_from_file("models/loom-shapes.safetensors", cp,
 *                                             err, sizeof err);
 *     if (!ctx) { fprintf(stderr, "loom: %s\n", err); return 1; }
 *     struct loom_sampling_params sp = loom_sampling_default_params();
 *     sp.n_predict = 64;
 *     if (loom_generate(ctx, "a large red", 11, sp, print_piece, NULL) < 0)
 *         fprintf(stderr, "loom: %s\n", loom_last_error(ctx));
 *     loom_free(ctx);
 *
 * print_piece(const char *piece, size_t len, void *user) receives each
 * generated token's bytes as it is produced and returns 0 to go on.
 */
#ifndef LOOM_H
#define LOOM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_context loom_context;

struct loom_context_params {
    int32_t n_threads;        /* 0 = all cores; sets OpenMP and OpenBLAS together */
};

struct loom_sampling_params {
    int32_t  n_predict;       /* most tokens to generate */
    float    temp;            /* 0 = greedy */
    int32_t  top_k;           /* 0 = off */
    float    top_p;           /* 1 = off */
    uint64_t seed;
};

struct loom_model_info {
    int32_t vocab_size, d_model, n_layers, n_heads, n_kv_heads, d_ff, max_seq, window;
    int32_t tie_embeddings;
    int32_t patch_size;       /* 0: no image input */
    int64_t n_params;
};

typedef int (*loom_piece_callback)(const char *piece, size_t len, void *user);
typedef void (*loom_log_callback_fn)(int level, const char *msg, void *user);

struct loom_context_params  loom_context_default_params(void);
struct loom_sampling_params loom_sampling_default_params(void);

/* Loads a model file; NULL on failure with the reason in err (if non-NULL). */
loom_context *loom_init_from_file(const char *path, struct loom_context_params params, char *err,
                                  size_t err_size);
void loom_free(loom_context *ctx);

/* Continues prompt (raw bytes; specials are never parsed from it). Calls cb
 * with each piece; stops at <eos>, after n_predict tokens, at the context
 * end, or when cb returns nonzero. Returns the number of tokens generated, or
 * -1 with the reason in loom_last_error(ctx). */
int32_t loom_generate(loom_context *ctx, const char *prompt, size_t prompt_len,
                      struct loom_sampling_params params, loom_piece_callback cb, void *user);

/* Answers a question about an image, greedily, with the prompt template every
 * loom front end shares: <bos> <img> patches </img> prompt <sep> answer <eos>.
 * An empty prompt asks for a caption. The image is rgb (height, width, 3)
 * bytes, row-major; it is downscaled if larger than the model's patch budget.
 * Writes the NUL-terminated answer to out (truncated to out_size) and returns
 * its length, or -1 with the reason in loom_last_error(ctx). */
int32_t loom_ask_image(loom_context *ctx, const uint8_t *rgb, int32_t width, int32_t height,
                       const char *prompt, size_t prompt_len, char *out, size_t out_size);
/* The same for an image file (PNG, JPEG, BMP, GIF, TGA, PNM). */
int32_t loom_ask_image_file(loom_context *ctx, const char *path, const char *prompt,
                            size_t prompt_len, char *out, size_t out_size);

struct loom_model_info loom_get_model_info(const loom_context *ctx);
const char *loom_last_error(const loom_context *ctx);

/* Routes loom's log lines (level 0 debug .. 3 error) to cb; NULL restores stderr. */
void loom_log_set_callback(loom_log_callback_fn cb, void *user);

#ifdef __cplusplus
}
#endif

#endif
