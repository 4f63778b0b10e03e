/* model.h: a whole loom model: config, tokenizer, and every module's
 * parameters in one flat buffer, loaded from and saved to one safetensors
 * file (docs/model-format.md). */
#ifndef LOOM_MODEL_MODEL_H
#define LOOM_MODEL_MODEL_H

#include <stdint.h>

#include "core/error.h"
#include "core/params.h"
#include "decoder/decoder.h"
#include "fusion/tokenizer.h"

#define MODEL_FORMAT "loom-1"

typedef struct loom_model {
    decoder_config  cfg;
    tokenizer      *tok;        /* may be NULL (bare test models) */
    param_table     table;      /* every tensor's name, shape, offset */
    float          *params;     /* (table.total) */
    decoder_weights w;          /* views into params */
    char           *train_json; /* optional recipe/step metadata, or NULL */
} loom_model;

/* A model with zeroed parameters; takes ownership of tok (even on failure). */
loom_model *model_new(const decoder_config *cfg, tokenizer *tok, loom_error *err);
void model_init_random(loom_model *m, uint64_t seed);
/* Loads and validates a model file: format, config, tokenizer, and every
 * tensor's dtype and shape; vocab must cover the tokenizer. */
loom_model *model_load(const char *path, loom_error *err);
/* Writes atomically (temp file + rename). */
int model_save(const loom_model *m, const char *path, loom_error *err);
void model_free(loom_model *m);

/* Adds every tensor of the model to a writer, each name prefixed by prefix
 * (""), viewing buf (laid out like m->params). */
struct st_writer;
int model_add_tensors(const loom_model *m, struct st_writer *w, const char *prefix,
                      const float *buf, loom_error *err);
/* Reads every tensor named prefix+name from an open file into buf. */
struct st_file;
int model_read_tensors(const loom_model *m, const struct st_file *f, const char *prefix,
                       float *buf, loom_error *err);
/* Writes config, tokenizer and format metadata to a writer. */
int model_add_metadata(const loom_model *m, struct st_writer *w, loom_error *err);
/* Parses the metadata of an open file into a model with zeroed parameters. */
loom_model *model_from_metadata(const struct st_file *f, loom_error *err);

#endif
