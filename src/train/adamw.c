#include "train/adamw.h"

#include <math.h>

adamw_params adamw_default_params(void) {
    adamw_params p = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    return p;
}

void adamw_step(const param_table *t, float *params, const float *grads, float *m, float *v,
                adamw_params p, int64_t step) {
    const float bc1 = 1.0f - powf(p.beta1, (float)step);
    const float bc2 = 1.0f - powf(p.beta2, (float)step);
    for (int32_t ti = 0; ti < t->n; ti++) {
        const param_info *info = &t->info[ti];
        const float decay = info->decay ? p.lr * p.weight_decay : 0.0f;
        float *w = params + info->offset, *mi = m + info->offset, *vi = v + info->offset;
        const float *g = grads + info->offset;
        const int64_t n = (int64_t)info->numel;
#pragma omp parallel for schedule(static) if(n >= 16384)
        for (int64_t i = 0; i < n; i++) {
            float gi = g[i];
            mi[i] = p.beta1 * mi[i] + (1.0f - p.beta1) * gi;
            vi[i] = p.beta2 * vi[i] + (1.0f - p.beta2) * gi * gi;
            float mhat = mi[i] / bc1, vhat = vi[i] / bc2;
            w[i] -= decay * w[i];
            w[i] -= p.lr * mhat / (sqrtf(vhat) + p.eps);
        }
    }
}

double grad_global_norm(const float *grads, size_t n) {
    /* A fixed number of chunks summed in order: the result does not depend on
     * the thread count, so resumed runs reproduce exactly. */
    enum { CHUNKS = 64 };
    double partial[CHUNKS];
    size_t per = (n + CHUNKS - 1) / CHUNKS;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < CHUNKS; c++) {
        double s = 0.0;
        size_t begin = (size_t)c * per, end = begin + per < n ? begin + per : n;
        for (size_t i = begin; i < end; i++) s += (double)grads[i] * grads[i];
        partial[c] = s;
    }
    double total = 0.0;
    for (int c = 0; c < CHUNKS; c++) total += partial[c];
    return sqrt(total);
}

double grad_clip(float *grads, size_t n, float max_norm) {
    double norm = grad_global_norm(grads, n);
    if (max_norm > 0.0f) {
        double coef = (double)max_norm / (norm + 1e-6);
        if (coef < 1.0) {
            float cf = (float)coef;
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < n; i++) grads[i] *= cf;
        }
    }
    return norm;
}

float lr_schedule(int64_t step, int64_t warmup, int64_t total, float lr_max, float lr_min) {
    if (warmup > 0 && step < warmup) return lr_max * (float)(step + 1) / (float)warmup;
    if (step >= total) return lr_min;
    double progress = (double)(step - warmup) / (double)(total - warmup > 0 ? total - warmup : 1);
    return lr_min + (lr_max - lr_min) * 0.5f * (float)(1.0 + cos(3.141592653589793 * progress));
}
