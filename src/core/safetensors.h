/* safetensors.h: read and write huggingface .safetensors files.
 *
 * File layout:
 *   u64 N (little-endian) | N bytes of JSON header (may end in spaces) | data
 * The header maps each tensor name to
 *   {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
 * with offsets relative to the start of the data section, plus an optional
 * "__metadata__": {"key": "value", ...} of strings.
 *
 * Reading (the whole header is validated by st_open; every tensor's byte
 * range is known to lie inside the file):
 *
 *     loom_error err;
 *     st_file *f = st_open("model.safetensors", &err);
 *     if (!f) { fprintf(stderr, "loom: %s\n", err.msg); return 1; }
 *     int64_t shape[2] = {V, C};
 *     float *wte = malloc(sizeof(float) * V * C);  // aligned copy
 *     if (st_read_f32(f, "wte", 2, shape, wte, &err) != 0) { ... }
 *     const char *arch = st_meta(f, "arch");       // NULL if absent
 *     st_close(f);
 *
 * Writing (tensor data is referenced, not copied, until st_writer_save):
 *
 *     st_writer *w = st_writer_new();
 *     int64_t shape[2] = {V, C};
 *     if (!w || st_writer_add(w, "wte", ST_F32, 2, shape, wte, &err) != 0 ||
 *         st_writer_meta(w, "arch", "loom", &err) != 0 ||
 *         st_writer_save(w, "model.safetensors", &err) != 0) { ... }
 *     st_writer_free(w);
 *
 * Tensor data is stored little-endian; st_open and st_writer_save fail on a
 * big-endian host. No global state: handles may be used from different
 * threads, but one handle is not safe to use from two threads at once
 * (a read-only st_file is, after st_open returns).
 */
#ifndef LOOM_CORE_SAFETENSORS_H
#define LOOM_CORE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    ST_F32, ST_F16, ST_BF16, ST_F64, ST_I8, ST_U8, ST_I16, ST_I32, ST_I64, ST_BOOL
} st_dtype;

/* Bytes per element (BOOL is 1 byte); 0 for a value outside the enum. */
size_t st_dtype_size(st_dtype dtype);
/* Name used in the header ("F32", "BF16", ...); "?" for a value outside the enum. */
const char *st_dtype_name(st_dtype dtype);

#define ST_MAX_DIMS 8          /* most dims a tensor may have */
#define ST_MAX_NAME 1024       /* longest tensor name, in bytes */
#define ST_MAX_HEADER (100u * 1000u * 1000u) /* largest JSON header, in bytes */

typedef struct {
    const char *name;             /* NUL-terminated, 1..ST_MAX_NAME bytes */
    st_dtype dtype;
    int32_t ndim;                 /* 0 for a scalar */
    int64_t shape[ST_MAX_DIMS];   /* (ndim), unused entries 0 */
    int64_t numel;                /* product of shape; 1 for a scalar */
    const void *data;             /* nbytes bytes inside the file; MAY BE UNALIGNED
                                     (offsets come from the file): use memcpy or
                                     st_read_f32, never cast to float* and index */
    size_t nbytes;                /* numel * st_dtype_size(dtype) */
} st_tensor;

typedef struct st_file st_file;

/* Opens a file (mmap read-only, or read into memory if mmap fails) and
 * validates the whole header. Returns NULL with err->msg set on failure. */
st_file *st_open(const char *path, loom_error *err);
/* Same validation on an in-memory file of len bytes; buf is copied, so the
 * caller may free it at once. */
st_file *st_open_memory(const void *buf, size_t len, loom_error *err);
/* Unmaps/frees everything; every pointer obtained from f becomes invalid. NULL is ok. */
void st_close(st_file *f);

/* Number of tensors; st_at(f, i) for i < st_count(f) walks them in header order. */
size_t st_count(const st_file *f);
/* The i-th tensor, or NULL if i is out of range. */
const st_tensor *st_at(const st_file *f, size_t i);
/* The tensor with this exact name, or NULL if absent (binary search). */
const st_tensor *st_find(const st_file *f, const char *name);
/* The __metadata__ value for key, or NULL if absent. */
const char *st_meta(const st_file *f, const char *key);

/* Checked accessor: finds name and requires the given dtype and exactly
 * ndim dims equal to shape[0..ndim) (shape may be NULL when ndim is 0).
 * On success sets *data (possibly unaligned, see st_tensor) and returns 0;
 * otherwise returns -1 with a message naming the tensor, expected and found:
 *     const void *p;
 *     int64_t shape[1] = {C};
 *     if (st_get(f, "ln_f.bias", ST_F32, 1, shape, &p, &err) != 0) ... */
int st_get(const st_file *f, const char *name, st_dtype dtype, int32_t ndim,
           const int64_t *shape, const void **data, loom_error *err);
/* st_get with ST_F32, then memcpy of numel floats into dst (which must hold
 * them). Use this to get an aligned copy. Returns 0, or -1 with err set. */
int st_read_f32(const st_file *f, const char *name, int32_t ndim, const int64_t *shape,
                float *dst, loom_error *err);

typedef struct st_writer st_writer;

/* An empty writer, or NULL if out of memory. */
st_writer *st_writer_new(void);
/* Adds a tensor (name is copied, data is NOT: it must stay valid until
 * st_writer_save). data may be NULL only if the tensor has 0 elements.
 * Fails on an empty/too long/duplicate name, "__metadata__", ndim outside
 * 0..ST_MAX_DIMS, a negative dim or a byte size that overflows. */
int st_writer_add(st_writer *w, const char *name, st_dtype dtype, int32_t ndim,
                  const int64_t *shape, const void *data, loom_error *err);
/* Adds a __metadata__ string pair (both copied). A duplicate key fails. */
int st_writer_meta(st_writer *w, const char *key, const char *value, loom_error *err);
/* Writes the file atomically: PATH.tmp.<pid>, fwrite, fflush, fsync, rename
 * over PATH, fsync of the directory. On failure before the rename the old
 * file at PATH is untouched and the temp file removed. Tensors are stored
 * contiguously in insertion order; the header is padded with spaces so the
 * data section starts at a multiple of 8 bytes. The writer can be saved again. */
int st_writer_save(st_writer *w, const char *path, loom_error *err);
/* Frees the writer (not the tensor data). NULL is ok. */
void st_writer_free(st_writer *w);

#ifdef __cplusplus
}
#endif

#endif
