/* model.h: a whole loom model: config, tokenizer, and every module's
 * parameters in one flat buffer, loaded from and saved to one safetensors
 * file (docs/model-format.md). */
#ifndef LOOM_MODEL_MODEL_H
#define LOOM_MODEL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/params.h"
#include "decoder/decoder.h"
#include "encoders/audio_enc.h"
#include "encoders/patch.h"
#include "fusion/sequence.h"
#include "fusion/tokenizer.h"
#include "heads/vq.h"

#define MODEL_FORMAT "loom-1"

/* The image input: Fuyu-style patches of P x P x 3 pixels, linearly projected
 * to d_model. patch_size 0 means a text-only model. Images larger than the
 * patch budget (max_patch_rows x max_patch_cols) are downscaled. Stored in
 * the config JSON as "patch_size", "max_patch_rows", "max_patch_cols". */
typedef struct model_image_config {
    int32_t patch_size;
    int32_t max_patch_rows, max_patch_cols;
} model_image_config;

/* The audio input: log-mel frames (whisper's parameters), one position per
 * `stack` frames, encoded to d_model by frame stacking and a linear layer
 * (encoder AUDIO_ENC_STACK) or a strided conv1d + GELU stem of `channels`
 * channels and a linear layer (AUDIO_ENC_CONV) (encoders/audio_enc.h). stack 0
 * means no audio input. Stored in the config JSON as "audio_stack", and for
 * the conv encoder "audio_encoder": "conv" and "audio_conv_channels" (absent
 * "audio_encoder": "stack", so older files read as before). */
typedef struct model_audio_config {
    int32_t stack;
    int32_t encoder;   /* audio_enc_kind: AUDIO_ENC_STACK (0) or AUDIO_ENC_CONV */
    int32_t channels;  /* conv: Ch of the stem; stack: 0 */
} model_audio_config;

/* The image output: a generated image is a rows x cols grid of VQ codes
 * (heads/vq.h) decoded to pixels; code k is decoder token code_base + k, after
 * every tokenizer token. n_codes 0 means no image output. */
typedef struct model_gen_config {
    int32_t n_codes;         /* K */
    int32_t code_base;       /* decoder id of code 0 (the tokenizer's vocabulary size) */
    int32_t rows, cols;      /* code grid of a generated image */
} model_gen_config;

typedef struct loom_model {
    decoder_config  cfg;
    model_image_config img;     /* img.patch_size 0: no image input */
    model_gen_config gen;       /* gen.n_codes 0: no image output */
    model_audio_config aud;     /* aud.stack 0: no audio input */
    /* The VQ head of image output (gen.n_codes > 0). Its tensors live in two
     * tables of their own, outside params: training the transformer never
     * updates them (the VQ is trained first, by `loom train --vq-only`). */
    vq_config       vqc;
    param_table     vq_table;   /* the VQ's conv weights */
    param_table     vq_state;   /* codebook and EMA statistics */
    float          *vq_params;  /* (vq_table.total) */
    float          *vq_state_buf; /* (vq_state.total) */
    vq_weights      vqw;
    patch_config    pcfg;       /* {patch_size, d_model} when images are on */
    audio_enc_config acfg;      /* {stack, d_model, kind, channels} when audio is on */
    tokenizer      *tok;        /* may be NULL (bare test models) */
    param_table     table;      /* every tensor's name, shape, offset */
    float          *params;     /* (table.total) */
    decoder_weights w;          /* views into params (and w.q8 = q8) */
    decoder_q8     *q8;         /* the int8 matrices when cfg.quant_group > 0, else NULL */
    patch_weights   pw;         /* views into params (NULL pointers without images) */
    audio_enc_weights aw;       /* views into params (NULL pointers without audio) */
    char           *train_json; /* optional recipe/step metadata, or NULL */
} loom_model;

/* Gradients (or any buffer laid out like params) seen through the modules. */
typedef struct model_grads {
    decoder_weights dec;
    patch_weights   patch;
    audio_enc_weights audio;
} model_grads;

/* A model with zeroed parameters; takes ownership of tok (even on failure). */
loom_model *model_new(const decoder_config *cfg, tokenizer *tok, loom_error *err);
/* The same with image input when img != NULL and img->patch_size > 0, and
 * audio input when aud != NULL and aud->stack > 0. */
loom_model *model_new_ex(const decoder_config *cfg, const model_image_config *img,
                         const model_audio_config *aud, tokenizer *tok, loom_error *err);
/* Gives m image output: VQ head vc (weights zeroed; read or copy them in),
 * codes at decoder ids [code_base, code_base + vc->codes), a generated image
 * of rows x cols codes. The decoder's vocabulary must hold them all. */
int model_attach_vq(loom_model *m, const vq_config *vc, int32_t code_base, int32_t rows,
                    int32_t cols, loom_error *err);
/* Pixel size of a generated image (rows, cols times the VQ stride). */
int32_t model_gen_height(const loom_model *m);
int32_t model_gen_width(const loom_model *m);
/* codes (rows * cols) -> rgb (height, width, 3). */
int model_decode_codes(const loom_model *m, const int32_t *codes, uint8_t *rgb, loom_error *err);
/* n images rgb (n, H, W, 3), H and W multiples of the stride -> codes (n, H/S, W/S). */
int model_encode_images(const loom_model *m, const uint8_t *rgb, int32_t n, int32_t H, int32_t W,
                        int32_t *codes, loom_error *err);
/* The VQ tables' tensors (params and state) to a writer / from a file; a
 * no-op without image output. */
int model_add_vq_tensors(const loom_model *m, struct st_writer *w, loom_error *err);
int model_read_vq_tensors(loom_model *m, const struct st_file *f, loom_error *err);

void model_bind_grads(const loom_model *m, float *buf, model_grads *g);
/* JSON of the whole config (decoder keys plus the image keys), malloc'd. */
char *model_config_to_json(const loom_model *m);

/* x0 (B, T, C) for a fusion batch: tok_emb rows for tokens, projected patches
 * for FUSION_PATCH positions, encoded audio frames for FUSION_AUDIO ones.
 * scratch: model_embed_scratch_floats(m, max_patches, max_audio) floats, for
 * batches of at most that many patches and audio positions. */
void model_embed(const loom_model *m, const fusion_batch *fb, float *x0, float *scratch);
/* Floats of that scratch: max(max_patches * C, max_audio * C + the audio
 * encoder's own, audio_enc_scratch_floats); SIZE_MAX on overflow. */
size_t model_embed_scratch_floats(const loom_model *m, int64_t max_patches, int64_t max_audio);
/* Backward of model_embed: adds into g (tok_emb and the projectors). The
 * same scratch; it need not hold what model_embed left there. */
void model_embed_backward(const loom_model *m, model_grads *g, const fusion_batch *fb,
                          const float *dx0, float *scratch);
void model_init_random(loom_model *m, uint64_t seed);
/* Loads and validates a model file: format, config, tokenizer, and every
 * tensor's dtype and shape; vocab must cover the tokenizer. A quantized file
 * (config "quant") also has its int8 values and scales checked
 * (decoder_q8_read). */
loom_model *model_load(const char *path, loom_error *err);
/* Writes atomically (temp file + rename). */
int model_save(const loom_model *m, const char *path, loom_error *err);
/* An int8 copy of fp32 model src for inference (`loom quantize`): the
 * decoder's matrices (and with head, its LM head) quantized in groups of
 * `group` along their input (core/q8.h), every other tensor, the tokenizer,
 * the VQ head and the training metadata copied. Quantized models cannot be
 * trained. */
loom_model *model_quantize(const loom_model *src, int32_t group, int head, loom_error *err);
void model_free(loom_model *m);

/* Adds every tensor of the model to a writer, each name prefixed by prefix
 * (""), viewing buf (laid out like m->params). A quantized model's int8
 * tensors go with its own params only (prefix "", buf m->params). */
struct st_writer;
int model_add_tensors(const loom_model *m, struct st_writer *w, const char *prefix,
                      const float *buf, loom_error *err);
/* Reads every tensor named prefix+name from an open file into buf; a
 * quantized model's int8 tensors go with its own params only, as above. */
struct st_file;
int model_read_tensors(const loom_model *m, const struct st_file *f, const char *prefix,
                       float *buf, loom_error *err);
/* Writes config, tokenizer and format metadata to a writer. */
int model_add_metadata(const loom_model *m, struct st_writer *w, loom_error *err);
/* Parses the metadata of an open file into a model with zeroed parameters. */
loom_model *model_from_metadata(const struct st_file *f, loom_error *err);

#endif
