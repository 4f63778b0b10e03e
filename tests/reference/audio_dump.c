/* audio_dump: writes log-mel inputs, loom's grouped frames, random audio encoder weights and
 * loom's outputs and gradients for audio_parity.py to recompute independently (the grouping
 * with torch indexing, the linear layer and its gradients in float64 with autograd).
 *
 *   audio_dump --out DIR [--perturb NAME]     writes DIR/audio.safetensors:
 *
 *   signal.x          F32 (n)              the synthesized signal (16 kHz, 0.73 s: 440 Hz and
 *                                          2.5 kHz sines + uniform noise), n = 11680
 *   case<i>.config    I32 (4)              stack, d_model C, T, source (0: a random mel;
 *                                          1: signal.x through audio_enc_prepare)
 *   case<i>.mel       F32 (80, T)          the log-mel input (source 1: mel_compute of signal.x)
 *   case<i>.positions I32 (1)              P: audio_enc_positions (source 1: prepare's count)
 *   case<i>.frames    F32 (P, stack*80)    audio_enc_group (source 1: audio_enc_prepare)
 *   case<i>.audio.w   F32 (C, stack*80)    the projection, registered, bound and initialized
 *   case<i>.audio.b   F32 (C)              like the model does it; b ~ N(0, 0.5^2) (non-zero)
 *   case<i>.dout      F32 (P, C)           a random upstream gradient
 *   case<i>.out       F32 (P, C)           audio_enc_forward (computed into a strided buffer)
 *   case<i>.grad.w    F32 (C, stack*80)    audio_enc_backward once, from zero gradients
 *   case<i>.grad.b    F32 (C)
 *   case<i>.grad2.w   F32 (C, stack*80)    audio_enc_backward twice from zero (it adds into g)
 *   case<i>.grad2.b   F32 (C)
 *   __metadata__      n_cases (decimal string)
 *
 * The cases cover stacks 1, 3, 4, 8 with T = 1, 7, 50, 101 (all but T = 1 leave a partial
 * last group, padded with the spectrogram's minimum) and the real signal's 73 frames at
 * stacks 4 and 8.
 *
 * --perturb NAME adds 1e-3 * (1 + |v|) to the LAST element of F32 tensor NAME (for the frames
 * of a ragged case: a padded value) as written to the file, AFTER loom computed everything:
 * audio_parity.py must then fail (a check that it can). Not signal.x: one sample moved by
 * 1e-3 moves its mel by less than the 1e-4 that check allows.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/safetensors.h"
#include "core/threads.h"
#include "encoders/audio_enc.h"
#include "encoders/mel.h"

#define PI 3.14159265358979323846

static void die(const char *what, const loom_error *err) {
    fprintf(stderr, "audio_dump: %s: %s\n", what, err ? err->msg : "failed");
    exit(1);
}

enum { N_CASES = 6, LDO_PAD = 3, SIGNAL_N = 11680 /* 0.73 s */ };

typedef struct audio_case {
    int32_t stack, d_model, T, source; /* T: frames of the random mel (source 0) */
} audio_case;

static const audio_case CASES[N_CASES] = {
    {1, 16, 1, 0}, {4, 16, 7, 0}, {8, 40, 50, 0}, {3, 40, 101, 0}, {4, 40, 0, 1}, {8, 16, 0, 1},
};

/* Everything one case writes; the writer does not copy, so it lives until the save. */
typedef struct case_bufs {
    int32_t config[4], positions[1];
    param_table table;
    float *params, *grads, *mel, *frames, *out, *dout, *gw, *gb, *gw2, *gb2;
} case_bufs;

typedef struct dump_writer {
    st_writer *sw;
    const char *perturb; /* NULL or the name of the tensor to perturb */
    int perturbed;
    int rc;
    loom_error err;
} dump_writer;

static void add(dump_writer *d, const char *name, st_dtype dtype, int32_t ndim,
                const int64_t *shape, void *data) {
    if (d->perturb && !strcmp(name, d->perturb)) {
        int64_t n = 1;
        for (int32_t k = 0; k < ndim; k++) n *= shape[k];
        if (dtype != ST_F32 || n < 1) die("--perturb: not a non-empty F32 tensor", NULL);
        float *v = (float *)data + (n - 1);
        *v += 1e-3f * (1.0f + fabsf(*v));
        d->perturbed = 1;
        printf("audio_dump: perturbed %s[%lld] in the file (parity must now fail)\n", name,
               (long long)(n - 1));
    }
    d->rc |= st_writer_add(d->sw, name, dtype, ndim, shape, data, &d->err);
}

static float *alloc_floats(int64_t n) {
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!p) die("alloc", NULL);
    return p;
}

int main(int argc, char **argv) {
    const char *out = NULL, *perturb = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--perturb") && i + 1 < argc) perturb = argv[++i];
        else out = NULL, i = argc;
    }
    if (!out) {
        fprintf(stderr, "usage: audio_dump --out DIR [--perturb NAME]\n");
        return 2;
    }
    loom_threads_set(0);
    loom_error err = {{0}};
    loom_rng rng;
    rng_seed(&rng, 2025);

    /* The synthesized signal: two sines and a little noise. */
    float *x = alloc_floats(SIGNAL_N);
    for (int64_t i = 0; i < SIGNAL_N; i++) {
        double t = (double)i / MEL_RATE;
        x[i] = (float)(0.5 * sin(2 * PI * 440 * t) + 0.25 * sin(2 * PI * 2500 * t) +
                       0.05 * (2.0 * rng_uniform(&rng) - 1.0));
    }
    loom_audio audio = {.n = SIGNAL_N, .samples = x};

    dump_writer d = {.sw = st_writer_new(), .perturb = perturb};
    if (!d.sw) die("writer", NULL);
    case_bufs cb[N_CASES];
    memset(cb, 0, sizeof cb);
    char name[128];
    for (int i = 0; i < N_CASES; i++) {
        const audio_case *cs = &CASES[i];
        case_bufs *b = &cb[i];
        audio_enc_config ac = {.stack = cs->stack, .d_model = cs->d_model};
        const int64_t C = ac.d_model, D = audio_enc_dim(&ac), LDO = C + LDO_PAD;

        /* The projection, registered and bound like the model does it. */
        if (audio_enc_register(&ac, &b->table, &err)) die("register", &err);
        b->params = floats_alloc(b->table.total);
        b->grads = floats_alloc(b->table.total);
        if (!b->params || !b->grads) die("alloc", NULL);
        audio_enc_weights w, g;
        audio_enc_bind(&ac, &b->table, b->params, &w);
        audio_enc_bind(&ac, &b->table, b->grads, &g);
        if (!w.w || !w.b || !g.w || !g.b) die("bind: audio.w / audio.b not registered", NULL);
        audio_enc_init_weights(&ac, &w, &rng);
        for (int64_t j = 0; j < C; j++) w.b[j] = 0.5f * rng_normal(&rng); /* exercise the bias */

        /* The log-mel input and loom's frames. */
        int64_t T, P;
        if (cs->source == 0) {
            T = cs->T;
            b->mel = alloc_floats(MEL_BINS * T);
            for (int64_t k = 0; k < MEL_BINS * T; k++) b->mel[k] = -1.0f + 2.5f * rng_uniform(&rng);
            P = audio_enc_positions(T, ac.stack);
            b->frames = alloc_floats(P * D);
            audio_enc_group(b->mel, T, ac.stack, b->frames);
        } else {
            T = mel_frames(audio.n);
            b->mel = alloc_floats(MEL_BINS * T);
            if (mel_compute(audio.samples, audio.n, b->mel, &err)) die("mel_compute", &err);
            if (audio_enc_prepare(&audio, ac.stack, &b->frames, &P, &err)) die("prepare", &err);
        }
        b->config[0] = ac.stack;
        b->config[1] = ac.d_model;
        b->config[2] = (int32_t)T;
        b->config[3] = cs->source;
        b->positions[0] = (int32_t)P;

        /* Forward into a strided buffer (as into the decoder's input rows), then compacted;
         * the gaps hold 1e30 so reading or writing one shows. */
        float *strided = alloc_floats(P * LDO), *dstrided = alloc_floats(P * LDO);
        b->out = alloc_floats(P * C);
        b->dout = alloc_floats(P * C);
        for (int64_t k = 0; k < P * LDO; k++) strided[k] = dstrided[k] = 1e30f;
        audio_enc_forward(&ac, &w, b->frames, P, strided, LDO);
        for (int64_t n = 0; n < P; n++) {
            for (int64_t j = 0; j < C; j++) {
                b->out[n * C + j] = strided[n * LDO + j];
                b->dout[n * C + j] = dstrided[n * LDO + j] = rng_normal(&rng);
            }
            for (int64_t j = C; j < LDO; j++)
                if (strided[n * LDO + j] != 1e30f) die("forward wrote past d_model", NULL);
        }

        /* Backward from zero gradients, then once more: it adds into g. */
        b->gw = alloc_floats(C * D);
        b->gb = alloc_floats(C);
        b->gw2 = alloc_floats(C * D);
        b->gb2 = alloc_floats(C);
        memset(b->grads, 0, sizeof(float) * b->table.total);
        audio_enc_backward(&ac, &g, b->frames, P, dstrided, LDO);
        memcpy(b->gw, g.w, sizeof(float) * (size_t)(C * D));
        memcpy(b->gb, g.b, sizeof(float) * (size_t)C);
        audio_enc_backward(&ac, &g, b->frames, P, dstrided, LDO);
        memcpy(b->gw2, g.w, sizeof(float) * (size_t)(C * D));
        memcpy(b->gb2, g.b, sizeof(float) * (size_t)C);
        free(strided);
        free(dstrided);

        int64_t cfg_shape[1] = {4}, one[1] = {1}, mel_shape[2] = {MEL_BINS, T};
        int64_t fr_shape[2] = {P, D}, o_shape[2] = {P, C}, w_shape[2] = {C, D}, b_shape[1] = {C};
        const struct {
            const char *suffix;
            st_dtype dtype;
            int32_t ndim;
            const int64_t *shape;
            void *data;
        } tensors[] = {
            {"config", ST_I32, 1, cfg_shape, b->config},
            {"positions", ST_I32, 1, one, b->positions},
            {"mel", ST_F32, 2, mel_shape, b->mel},
            {"frames", ST_F32, 2, fr_shape, b->frames},
            {"audio.w", ST_F32, 2, w_shape, w.w},
            {"audio.b", ST_F32, 1, b_shape, w.b},
            {"dout", ST_F32, 2, o_shape, b->dout},
            {"out", ST_F32, 2, o_shape, b->out},
            {"grad.w", ST_F32, 2, w_shape, b->gw},
            {"grad.b", ST_F32, 1, b_shape, b->gb},
            {"grad2.w", ST_F32, 2, w_shape, b->gw2},
            {"grad2.b", ST_F32, 1, b_shape, b->gb2},
        };
        for (size_t k = 0; k < sizeof tensors / sizeof tensors[0]; k++) {
            snprintf(name, sizeof name, "case%d.%s", i, tensors[k].suffix);
            add(&d, name, tensors[k].dtype, tensors[k].ndim, tensors[k].shape, tensors[k].data);
        }
        printf("audio_dump: case%d: stack %d, C %d, T %lld (%s) -> P %lld\n", i, ac.stack,
               ac.d_model, (long long)T, cs->source ? "signal, audio_enc_prepare" : "random mel",
               (long long)P);
    }
    int64_t x_shape[1] = {SIGNAL_N};
    add(&d, "signal.x", ST_F32, 1, x_shape, x);
    if (perturb && !d.perturbed) die("--perturb: no such F32 tensor", NULL);
    char num[32];
    snprintf(num, sizeof num, "%d", N_CASES);
    d.rc |= st_writer_meta(d.sw, "n_cases", num, &d.err);
    if (d.rc) die("writer", &d.err);

    char path[4096];
    mkdir(out, 0755);
    snprintf(path, sizeof path, "%s/audio.safetensors", out);
    if (st_writer_save(d.sw, path, &err)) die("save", &err);
    printf("audio_dump: wrote %s (%d cases)\n", path, N_CASES);

    st_writer_free(d.sw);
    for (int i = 0; i < N_CASES; i++) {
        case_bufs *b = &cb[i];
        free(b->params), free(b->grads), free(b->mel), free(b->frames), free(b->out);
        free(b->dout), free(b->gw), free(b->gb), free(b->gw2), free(b->gb2);
        params_free(&b->table);
    }
    free(x);
    return 0;
}
