#include "core/params.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>

#include "core/safetensors.h"

int params_add(param_table *t, const char *name, int32_t ndim, const int64_t *shape, int decay,
               loom_error *err) {
    if (ndim < 0 || ndim > PARAM_MAX_DIMS) return loom_error_set(err, "%s: bad rank %d", name, ndim);
    if (strlen(name) >= PARAM_NAME_MAX) return loom_error_set(err, "%s: name too long", name);
    if (params_find(t, name)) return loom_error_set(err, "%s: duplicate tensor", name);
    if (t->n == t->cap) {
        int32_t cap = t->cap ? t->cap * 2 : 32;
        param_info *info = realloc(t->info, (size_t)cap * sizeof *info);
        if (!info) return loom_error_set(err, "out of memory");
        t->info = info;
        t->cap = cap;
    }
    param_info *p = &t->info[t->n];
    memset(p, 0, sizeof *p);
    strcpy(p->name, name);
    p->ndim = ndim;
    size_t numel = 1;
    for (int32_t i = 0; i < ndim; i++) {
        if (shape[i] < 0 || loom_mul_size(numel, (size_t)shape[i], &numel))
            return loom_error_set(err, "%s: bad shape", name);
        p->shape[i] = shape[i];
    }
    p->numel = numel;
    p->decay = decay;
    p->offset = (t->total + 15) & ~(size_t)15;
    if (loom_add_size(p->offset, numel, &t->total)) return loom_error_set(err, "%s: too large", name);
    t->n++;
    return 0;
}

const param_info *params_find(const param_table *t, const char *name) {
    for (int32_t i = 0; i < t->n; i++)
        if (strcmp(t->info[i].name, name) == 0) return &t->info[i];
    return NULL;
}

void params_free(param_table *t) {
    free(t->info);
    memset(t, 0, sizeof *t);
}

float *floats_alloc(size_t n) {
    size_t bytes;
    if (loom_mul_size(n ? n : 1, sizeof(float), &bytes)) return NULL;
    bytes = (bytes + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

int params_write(const param_table *t, st_writer *w, const char *prefix, const float *buf,
                 loom_error *err) {
    for (int32_t i = 0; i < t->n; i++) {
        const param_info *p = &t->info[i];
        char name[PARAM_NAME_MAX + 64];
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        if (st_writer_add(w, name, ST_F32, p->ndim, p->shape, buf + p->offset, err)) return -1;
    }
    return 0;
}

int params_read(const param_table *t, const st_file *f, const char *prefix, float *buf,
                loom_error *err) {
    for (int32_t i = 0; i < t->n; i++) {
        const param_info *p = &t->info[i];
        char name[PARAM_NAME_MAX + 64];
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        if (st_read_f32(f, name, p->ndim, p->shape, buf + p->offset, err)) return -1;
    }
    return 0;
}
