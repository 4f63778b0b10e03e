#include "encoders/proj.h"

#include "core/gemm.h"

void proj_forward(const float *w, const float *b, const float *in, int64_t N, int64_t D,
                  int64_t C, float *out, int64_t ldo) {
    if (N == 0) return;
    gemm_nt(N, C, D, in, D, w, D, 0.0f, out, ldo);
    for (int64_t n = 0; n < N; n++)
        for (int64_t j = 0; j < C; j++) out[n * ldo + j] += b[j];
}

void proj_backward(float *gw, float *gb, const float *in, int64_t N, int64_t D, int64_t C,
                   const float *dout, int64_t ldo) {
    if (N == 0) return;
    gemm_tn(C, D, N, dout, ldo, in, D, 1.0f, gw, D);
    for (int64_t n = 0; n < N; n++)
        for (int64_t j = 0; j < C; j++) gb[j] += dout[n * ldo + j];
}

void proj_forward_ref(const float *w, const float *b, const float *in, int64_t N, int64_t D,
                      int64_t C, float *out, int64_t ldo) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t j = 0; j < C; j++) {
            double s = b[j];
            for (int64_t k = 0; k < D; k++) s += (double)in[n * D + k] * w[j * D + k];
            out[n * ldo + j] = (float)s;
        }
}

void proj_backward_ref(float *gw, float *gb, const float *in, int64_t N, int64_t D, int64_t C,
                       const float *dout, int64_t ldo) {
    for (int64_t j = 0; j < C; j++) {
        double sb = 0;
        for (int64_t n = 0; n < N; n++) sb += dout[n * ldo + j];
        gb[j] += (float)sb;
        for (int64_t k = 0; k < D; k++) {
            double s = 0;
            for (int64_t n = 0; n < N; n++) s += (double)dout[n * ldo + j] * in[n * D + k];
            gw[j * D + k] += (float)s;
        }
    }
}
