/* params.h: every trainable tensor of a model carved from ONE flat float
 * buffer, so saving, loading, zeroing gradients and the optimizer all walk
 * one array. Modules (decoder, later projectors and heads) register their
 * tensors by name; gradients and optimizer moments use the same layout. */
#ifndef LOOM_CORE_PARAMS_H
#define LOOM_CORE_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define PARAM_MAX_DIMS 4
#define PARAM_NAME_MAX 64

typedef struct param_info {
    char    name[PARAM_NAME_MAX];     /* stable tensor name in the model file */
    int32_t ndim;
    int64_t shape[PARAM_MAX_DIMS];
    size_t  offset;                   /* in floats, into the flat buffer */
    size_t  numel;
    int     decay;                    /* AdamW weight decay applies */
} param_info;

typedef struct param_table {
    param_info *info;
    int32_t     n, cap;
    size_t      total;                /* floats in all tensors */
} param_table;

/* Adds a tensor (offsets are assigned in order, each 16-float aligned). */
int  params_add(param_table *t, const char *name, int32_t ndim, const int64_t *shape, int decay,
                loom_error *err);
const param_info *params_find(const param_table *t, const char *name);
void params_free(param_table *t);

/* Every tensor of t, named prefix + name, viewing buf (laid out by t), added
 * to a safetensors writer / read (shape-checked) from an open file. */
struct st_writer;
struct st_file;
int params_write(const param_table *t, struct st_writer *w, const char *prefix, const float *buf,
                 loom_error *err);
int params_read(const param_table *t, const struct st_file *f, const char *prefix, float *buf,
                loom_error *err);

/* 64-byte aligned, zeroed float buffer of n floats; NULL on failure. Free with free(). */
float *floats_alloc(size_t n);

#endif
