/* audio_dump: writes log-mel inputs, loom's grouped frames, random audio encoder weights and
 * loom's outputs and gradients for audio_parity.py to recompute independently (the grouping
 * with torch indexing; the stack encoder's linear layer, or the conv encoder's conv1d + GELU
 * stem and linear layer, and their gradients in float64 with autograd).
 *
 *   audio_dump --out DIR [--perturb NAME]     writes DIR/audio.safetensors:
 *
 *   signal.x          F32 (n)              the synthesized signal (16 kHz, 0.73 s: 440 Hz and
 *                                          2.5 kHz sines + uniform noise), n = 11680
 *   case<i>.config    I32 (6)              stack, d_model C, T, source (0: random mels;
 *                                          1: signal.x through audio_enc_prepare), encoder
 *                                          (0 stack, 1 conv), channels Ch (conv; else 0)
 *   case<i>.utts      I32 (U)              the utterances' frame counts, summing to T (one
 *                                          utterance but in the batch case)
 *   case<i>.mel       F32 (80, T)          the log-mel input, utterances one after the other
 *                                          in time (source 1: mel_compute of signal.x)
 *   case<i>.positions I32 (1)              P: the utterances' audio_enc_positions summed
 *                                          (source 1: prepare's count)
 *   case<i>.frames    F32 (P, stack*80)    audio_enc_group of each utterance, concatenated
 *                                          (source 1: audio_enc_prepare)
 *   case<i>.<tensor>  F32                  every tensor the encoder registers ("audio.w" (C,
 *                                          stack*80), "audio.b" (C); conv: "audio.conv<l>.w"
 *                                          (Ch, 3, Cin), "audio.conv<l>.b" (Ch), "audio.proj.w"
 *                                          (C, Ch), "audio.proj.b" (C)), bound and initialized
 *                                          like the model does it; biases ~ N(0, 0.5^2)
 *   case<i>.dout      F32 (P, C)           a random upstream gradient
 *   case<i>.out       F32 (P, C)           audio_enc_encode (into a strided buffer; the
 *                                          utterances' positions as a batch's, with gaps)
 *   case<i>.grad.<tensor>  F32             audio_enc_encode_backward once, from zero gradients
 *   case<i>.grad2.<tensor> F32             twice from zero (it adds into g)
 *   __metadata__      n_cases (decimal string)
 *
 * The stack cases cover stacks 1, 3, 4, 8 with T = 1, 7, 50, 101 (all but T = 1 leave a
 * partial last group, padded with the spectrogram's minimum) and the real signal's 73 frames
 * at stacks 4 and 8. The conv cases cover stacks 2, 4, 8 (1 to 3 layers) on random mels, the
 * signal at stack 4, and a batch of three utterances (T = 13, 1, 50) at stack 8.
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

enum { N_CASES = 11, MAX_UTTS = 3, LDO_PAD = 3, SIGNAL_N = 11680 /* 0.73 s */ };

typedef struct audio_case {
    int32_t stack, d_model, source, kind, channels;
    int32_t utts[MAX_UTTS]; /* frames of each random mel (source 0), 0 after the last */
} audio_case;

static const audio_case CASES[N_CASES] = {
    {1, 16, 0, AUDIO_ENC_STACK, 0, {1}},       {4, 16, 0, AUDIO_ENC_STACK, 0, {7}},
    {8, 40, 0, AUDIO_ENC_STACK, 0, {50}},      {3, 40, 0, AUDIO_ENC_STACK, 0, {101}},
    {4, 40, 1, AUDIO_ENC_STACK, 0, {0}},       {8, 16, 1, AUDIO_ENC_STACK, 0, {0}},
    {2, 16, 0, AUDIO_ENC_CONV, 8, {7}},        {4, 24, 0, AUDIO_ENC_CONV, 12, {21}},
    {8, 40, 0, AUDIO_ENC_CONV, 24, {50}},      {4, 16, 1, AUDIO_ENC_CONV, 12, {0}},
    {8, 24, 0, AUDIO_ENC_CONV, 16, {13, 1, 50}},
};

/* Everything one case writes; the writer does not copy, so it lives until the save. */
typedef struct case_bufs {
    int32_t config[6], utts[MAX_UTTS], positions[1];
    param_table table;
    float *params, *grads, *grads2, *mel, *frames, *out, *dout;
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
        audio_enc_config ac = {.stack = cs->stack, .d_model = cs->d_model, .kind = cs->kind,
                               .channels = cs->channels};
        const int64_t C = ac.d_model, D = audio_enc_dim(&ac), LDO = C + LDO_PAD;

        /* The encoder, registered, bound and initialized like the model does it. */
        if (audio_enc_register(&ac, &b->table, &err)) die("register", &err);
        b->params = floats_alloc(b->table.total);
        b->grads = floats_alloc(b->table.total);
        b->grads2 = floats_alloc(b->table.total);
        if (!b->params || !b->grads || !b->grads2) die("alloc", NULL);
        audio_enc_weights w, g;
        audio_enc_bind(&ac, &b->table, b->params, &w);
        audio_enc_bind(&ac, &b->table, b->grads, &g);
        audio_enc_init_weights(&ac, &w, &rng);
        for (int32_t k = 0; k < b->table.n; k++) { /* exercise the biases */
            const param_info *pi = &b->table.info[k];
            if (pi->ndim == 1)
                for (size_t j = 0; j < pi->numel; j++) b->params[pi->offset + j] = 0.5f * rng_normal(&rng);
        }

        /* The log-mel input and loom's frames: each utterance grouped on its own. */
        int64_t T = 0, P = 0, pos[256];
        int32_t n_utts = 0;
        if (cs->source == 0) {
            for (n_utts = 0; n_utts < MAX_UTTS && cs->utts[n_utts] > 0; n_utts++) {
                T += cs->utts[n_utts];
                P += audio_enc_positions(cs->utts[n_utts], ac.stack);
            }
            b->mel = alloc_floats(MEL_BINS * T);
            b->frames = alloc_floats(P * D);
            for (int32_t u = 0, t0 = 0, p0 = 0; u < n_utts; u++) {
                const int32_t Tu = cs->utts[u], Pu = (int32_t)audio_enc_positions(Tu, ac.stack);
                float *mu = alloc_floats(MEL_BINS * Tu);
                for (int64_t k = 0; k < MEL_BINS * Tu; k++) mu[k] = -1.0f + 2.5f * rng_uniform(&rng);
                for (int64_t m = 0; m < MEL_BINS; m++)
                    memcpy(b->mel + m * T + t0, mu + m * Tu, sizeof(float) * (size_t)Tu);
                audio_enc_group(mu, Tu, ac.stack, b->frames + p0 * D);
                for (int32_t k = 0; k < Pu; k++) pos[p0 + k] = 1000 * u + k; /* rows apart */
                b->utts[u] = Tu;
                free(mu);
                t0 += Tu, p0 += Pu;
            }
        } else {
            T = mel_frames(audio.n);
            b->mel = alloc_floats(MEL_BINS * T);
            if (mel_compute(audio.samples, audio.n, b->mel, &err)) die("mel_compute", &err);
            if (audio_enc_prepare(&audio, ac.stack, &b->frames, &P, &err)) die("prepare", &err);
            n_utts = 1;
            b->utts[0] = (int32_t)T;
            for (int64_t k = 0; k < P; k++) pos[k] = k;
        }
        if (P > (int64_t)(sizeof pos / sizeof pos[0])) die("too many positions", NULL);
        b->config[0] = ac.stack;
        b->config[1] = ac.d_model;
        b->config[2] = (int32_t)T;
        b->config[3] = cs->source;
        b->config[4] = ac.kind;
        b->config[5] = ac.channels;
        b->positions[0] = (int32_t)P;

        /* Forward into a strided buffer (as into the decoder's input rows), then compacted;
         * the gaps hold 1e30 so reading or writing one shows. */
        float *strided = alloc_floats(P * LDO), *dstrided = alloc_floats(P * LDO);
        const size_t n_scratch = audio_enc_scratch_floats(&ac, P);
        float *scratch = alloc_floats((int64_t)n_scratch);
        b->out = alloc_floats(P * C);
        b->dout = alloc_floats(P * C);
        for (int64_t k = 0; k < P * LDO; k++) strided[k] = dstrided[k] = 1e30f;
        audio_enc_encode(&ac, &w, b->frames, pos, P, strided, LDO, scratch);
        for (int64_t n = 0; n < P; n++) {
            for (int64_t j = 0; j < C; j++) {
                b->out[n * C + j] = strided[n * LDO + j];
                b->dout[n * C + j] = dstrided[n * LDO + j] = rng_normal(&rng);
            }
            for (int64_t j = C; j < LDO; j++)
                if (strided[n * LDO + j] != 1e30f) die("forward wrote past d_model", NULL);
        }

        /* Backward from zero gradients, then once more: it adds into g. The scratch is
         * spoiled first: the backward must not rely on what the forward left there. */
        for (size_t k = 0; k < n_scratch; k++) scratch[k] = NAN;
        memset(b->grads, 0, sizeof(float) * b->table.total);
        audio_enc_encode_backward(&ac, &w, &g, b->frames, pos, P, dstrided, LDO, scratch);
        memcpy(b->grads2, b->grads, sizeof(float) * b->table.total);
        audio_enc_weights g2;
        audio_enc_bind(&ac, &b->table, b->grads2, &g2);
        audio_enc_encode_backward(&ac, &w, &g2, b->frames, pos, P, dstrided, LDO, scratch);
        free(strided);
        free(dstrided);
        free(scratch);

        int64_t cfg_shape[1] = {6}, utt_shape[1] = {n_utts}, one[1] = {1};
        int64_t mel_shape[2] = {MEL_BINS, T}, fr_shape[2] = {P, D}, o_shape[2] = {P, C};
        const struct {
            const char *suffix;
            st_dtype dtype;
            int32_t ndim;
            const int64_t *shape;
            void *data;
        } tensors[] = {
            {"config", ST_I32, 1, cfg_shape, b->config},
            {"utts", ST_I32, 1, utt_shape, b->utts},
            {"positions", ST_I32, 1, one, b->positions},
            {"mel", ST_F32, 2, mel_shape, b->mel},
            {"frames", ST_F32, 2, fr_shape, b->frames},
            {"dout", ST_F32, 2, o_shape, b->dout},
            {"out", ST_F32, 2, o_shape, b->out},
        };
        for (size_t k = 0; k < sizeof tensors / sizeof tensors[0]; k++) {
            snprintf(name, sizeof name, "case%d.%s", i, tensors[k].suffix);
            add(&d, name, tensors[k].dtype, tensors[k].ndim, tensors[k].shape, tensors[k].data);
        }
        /* every parameter, its gradient after one backward and after two */
        float *bufs[3] = {b->params, b->grads, b->grads2};
        const char *prefix[3] = {"", "grad.", "grad2."};
        for (int32_t k = 0; k < b->table.n; k++)
            for (int v = 0; v < 3; v++) {
                const param_info *pi = &b->table.info[k];
                snprintf(name, sizeof name, "case%d.%s%s", i, prefix[v], pi->name);
                add(&d, name, ST_F32, pi->ndim, pi->shape, bufs[v] + pi->offset);
            }
        printf("audio_dump: case%d: %s encoder, stack %d, C %d, Ch %d, T %lld in %d utterance(s) "
               "(%s) -> P %lld\n", i, audio_enc_kind_name(ac.kind), ac.stack, ac.d_model,
               ac.channels, (long long)T, n_utts, cs->source ? "signal, audio_enc_prepare" : "random mel",
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
        free(b->params), free(b->grads), free(b->grads2), free(b->mel), free(b->frames);
        free(b->out), free(b->dout);
        params_free(&b->table);
    }
    free(x);
    return 0;
}
