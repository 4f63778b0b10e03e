/* vec_impl.h: the dispatch table between vec.c and vec_avx2.c (private). */
#ifndef LOOM_CORE_VEC_IMPL_H
#define LOOM_CORE_VEC_IMPL_H

#include <stdint.h>

typedef struct vec_impl {
    const char *name;
    void (*swiglu_forward)(float *, const float *, const float *, int64_t);
    void (*swiglu_backward)(float *, float *, const float *, const float *, const float *, int64_t);
    float (*rmsnorm_forward)(float *, const float *, const float *, int64_t, float);
    void (*rmsnorm_backward)(float *, const float *, const float *, const float *, float, int64_t,
                             int);
    void (*rmsnorm_dw)(float *, const float *, const float *, const float *, int64_t, int64_t,
                       int64_t, int64_t);
    float (*max)(const float *, int64_t);
    float (*exp_sum)(float *, const float *, float, float, int64_t);
    void (*scale)(float *, float, int64_t);
} vec_impl;

extern const vec_impl vec_impl_avx2;

#endif
