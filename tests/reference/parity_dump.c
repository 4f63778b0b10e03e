/* parity_dump: writes a small random model and loom's outputs on it (logits,
 * loss, every gradient, the parameters after 3 AdamW steps) for
 * check_parity.py to compare against the PyTorch reference.
 *
 *   parity_dump --config tiny|window|mha --out DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/safetensors.h"
#include "core/threads.h"
#include "decoder/decoder.h"
#include "model/model.h"
#include "train/adamw.h"

static void die(const char *what, const loom_error *err) {
    fprintf(stderr, "parity_dump: %s: %s\n", what, err ? err->msg : "failed");
    exit(1);
}

int main(int argc, char **argv) {
    const char *name = "tiny", *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) name = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else {
            fprintf(stderr, "usage: parity_dump --config tiny|window|mha --out DIR\n");
            return 2;
        }
    }
    if (!out) die("--out", NULL);
    loom_threads_set(0);

    decoder_config cfg = {.vocab_size = 67, .d_model = 32, .n_layers = 2, .n_heads = 4,
                          .n_kv_heads = 2, .d_ff = 48, .max_seq = 16, .window = 0,
                          .rope_theta = 10000.0f, .norm_eps = 1e-5f, .tie_embeddings = 0};
    if (!strcmp(name, "window")) {
        cfg.window = 3;
        cfg.tie_embeddings = 1;
        cfg.n_layers = 3;
    } else if (!strcmp(name, "mha")) {
        cfg.n_heads = cfg.n_kv_heads = 2;
        cfg.tie_embeddings = 1;
        cfg.d_ff = 40;
    } else if (!strcmp(name, "long")) {
        /* longer than one attention query block: several blocks, a window
         * that starts mid-block */
        cfg.max_seq = 80;
        cfg.window = 37;
        cfg.n_kv_heads = 1;
    } else if (strcmp(name, "tiny") != 0) {
        fprintf(stderr, "parity_dump: unknown config %s\n", name);
        return 2;
    }
    loom_error err = {{0}};
    loom_model *m = model_new(&cfg, NULL, &err);
    if (!m) die("model", &err);
    model_init_random(m, 1234);
    /* Bigger-than-default norms and embeddings so every path carries signal. */
    loom_rng rng;
    rng_seed(&rng, 99);
    for (int64_t i = 0; i < (int64_t)cfg.n_layers * cfg.d_model; i++) {
        m->w.attn_norm[i] = 1.0f + 0.3f * rng_normal(&rng);
        m->w.mlp_norm[i] = 1.0f + 0.3f * rng_normal(&rng);
    }
    for (int64_t i = 0; i < (int64_t)cfg.vocab_size * cfg.d_model; i++) m->w.tok_emb[i] *= 20.0f;

    char path[4096];
    mkdir(out, 0755);
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    if (model_save(m, path, &err)) die("save model", &err);

    /* A right-padded batch: row lengths 11, 7, 2 (long: 77, 50, 33); row 1
     * ignores its first 3 targets. */
    enum { B = 3, TMAX = 77 };
    const int long_cfg = !strcmp(name, "long");
    const int T = long_cfg ? 77 : 11;
    const int lens[B] = {T, long_cfg ? 50 : 7, long_cfg ? 33 : 2};
    int32_t tokens[B * TMAX], targets[B * TMAX];
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int i = b * T + t;
            tokens[i] = t < lens[b] ? (int32_t)rng_below(&rng, (uint32_t)cfg.vocab_size) : 0;
            targets[i] = t < lens[b] ? (int32_t)rng_below(&rng, (uint32_t)cfg.vocab_size) : -1;
            if (b == 1 && t < 3) targets[i] = -1;
        }

    decoder_acts *a = decoder_acts_new(&cfg, B, T, &err);
    if (!a) die("acts", &err);
    size_t np = m->table.total;
    float *grads = floats_alloc(np), *mo = floats_alloc(np), *vo = floats_alloc(np);
    float *grad0 = floats_alloc(np), *logits = floats_alloc((size_t)B * T * cfg.vocab_size);
    float *steps[3];
    for (int s = 0; s < 3; s++) steps[s] = floats_alloc(np);
    decoder_weights g;
    decoder_bind(&cfg, &m->table, grads, &g);

    adamw_params ap = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                       .weight_decay = 0.1f};
    const float max_norm = 1.0f;
    float lr[3] = {1e-2f, 5e-3f, 2e-3f}, step_loss[3], loss0 = 0.0f;
    for (int s = 0; s < 3; s++) {
        memset(grads, 0, np * sizeof(float));
        decoder_embed(&cfg, &m->w, tokens, B * T, a->x0);
        float loss = decoder_forward(&cfg, &m->w, a, B, T, targets);
        if (s == 0) {
            loss0 = loss;
            memcpy(logits, a->logits, (size_t)B * T * cfg.vocab_size * sizeof(float));
        }
        decoder_backward(&cfg, &m->w, &g, a, B, T, targets, 1.0f);
        decoder_embed_backward(&cfg, &g, tokens, B * T, a->dx0);
        if (s == 0) memcpy(grad0, grads, np * sizeof(float));
        step_loss[s] = loss;
        grad_clip(grads, np, max_norm);
        ap.lr = lr[s];
        adamw_step(&m->table, m->params, grads, mo, vo, ap, s + 1);
        memcpy(steps[s], m->params, np * sizeof(float));
    }

    st_writer *w = st_writer_new();
    int64_t bt[2] = {B, T}, btv[3] = {B, T, cfg.vocab_size}, one[1] = {1}, three[1] = {3};
    int rc = st_writer_add(w, "tokens", ST_I32, 2, bt, tokens, &err);
    rc |= st_writer_add(w, "targets", ST_I32, 2, bt, targets, &err);
    rc |= st_writer_add(w, "logits", ST_F32, 3, btv, logits, &err);
    rc |= st_writer_add(w, "loss", ST_F32, 1, one, &loss0, &err);
    rc |= st_writer_add(w, "step_loss", ST_F32, 1, three, step_loss, &err);
    rc |= st_writer_add(w, "lr", ST_F32, 1, three, lr, &err);
    rc |= model_add_tensors(m, w, "grad.", grad0, &err);
    rc |= model_add_tensors(m, w, "step1.", steps[0], &err);
    rc |= model_add_tensors(m, w, "step2.", steps[1], &err);
    rc |= model_add_tensors(m, w, "step3.", steps[2], &err);
    char meta[256];
    snprintf(meta, sizeof meta,
             "{\"beta1\":%.9g,\"beta2\":%.9g,\"eps\":%.9g,\"weight_decay\":%.9g,\"max_norm\":%.9g}",
             ap.beta1, ap.beta2, ap.eps, ap.weight_decay, max_norm);
    rc |= st_writer_meta(w, "adamw", meta, &err);
    snprintf(path, sizeof path, "%s/io.safetensors", out);
    if (rc || st_writer_save(w, path, &err)) die("save io", &err);
    st_writer_free(w);
    printf("parity_dump: %s: loss %.6f -> %.6f -> %.6f, wrote %s\n", name, step_loss[0],
           step_loss[1], step_loss[2], out);
    decoder_acts_free(a);
    for (int s = 0; s < 3; s++) free(steps[s]);
    free(grads); free(mo); free(vo); free(grad0); free(logits);
    model_free(m);
    return 0;
}
