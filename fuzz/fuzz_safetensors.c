/* fuzz_safetensors.c: model files on hostile bytes. st_open_memory runs the
 * same header validation as st_open (the loader of `loom caption -m` and
 * every other command); then what model_load does after it:
 * model_from_metadata (format, config, tokenizer, VQ head) and
 * model_read_tensors / model_read_vq_tensors (every tensor's dtype, shape
 * and bytes).
 *
 * Checked beyond "no sanitizer report": every tensor st_open accepted lies
 * in the file (its bytes are read here, so ASan sees any range past the
 * copy), has 1..ST_MAX_NAME name bytes, a numel matching its shape and
 * nbytes = numel * dtype size, and is found by name. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NAME "fuzz_safetensors"
#include "fuzz_common.h"

#include "core/safetensors.h"
#include "model/model.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    return 0;
}

static volatile uint8_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    loom_error err = {{0}};
    st_file *f = st_open_memory(data, size, &err);
    if (!f) {
        if (!err.msg[0]) fail("refused file without a message", NULL);
        return 0;
    }
    size_t total = 0;
    for (size_t i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        if (!t || !t->name) fail("st_at returned NULL inside the count", NULL);
        size_t len = strlen(t->name);
        if (len < 1 || len > ST_MAX_NAME) fail("tensor name length out of range", t->name);
        if (st_find(f, t->name) != t) fail("st_find does not find a tensor by its name", t->name);
        if (t->ndim < 0 || t->ndim > ST_MAX_DIMS) fail("ndim out of range", t->name);
        int64_t numel = 1;
        for (int32_t d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0) fail("negative dimension", t->name);
            numel *= t->shape[d]; /* cannot overflow when nbytes <= the file's size */
        }
        if (numel != t->numel || t->nbytes != (size_t)numel * st_dtype_size(t->dtype))
            fail("numel or nbytes inconsistent with the shape", t->name);
        if (t->nbytes > size) fail("tensor larger than the file", t->name);
        total += t->nbytes;
        const uint8_t *p = t->data;
        uint8_t x = 0;
        for (size_t k = 0; k < t->nbytes; k++) x ^= p[k];
        sink = x;
        if (t->dtype == ST_F32) {
            float *dst = malloc(t->nbytes ? t->nbytes : 1);
            if (!dst) fail("out of memory", NULL);
            if (st_read_f32(f, t->name, t->ndim, t->shape, dst, &err))
                fail("st_read_f32 refused a tensor with its own shape", err.msg);
            free(dst);
        }
    }
    if (total > size) fail("tensors overlap (their bytes add up to more than the file)", NULL);
    (void)st_meta(f, "format");

    loom_model *m = model_from_metadata(f, &err);
    if (m) {
        if (model_read_tensors(m, f, "", m->params, &err) == 0) (void)model_read_vq_tensors(m, f, &err);
        model_free(m);
    }
    st_close(f);
    return 0;
}
