/* loom bench: times a training step (forward, backward, AdamW) and
 * single-stream greedy generation with the KV cache, on a random model of a
 * stated config. bench/run.sh runs it beside the PyTorch reference. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "core/clock.h"
#include "core/threads.h"
#include "decoder/decoder.h"
#include "heads/sampler.h"
#include "model/model.h"
#include "train/adamw.h"

static void bench_usage(FILE *f) {
    fprintf(f,
            "usage: loom bench [options]\n"
            "\n"
            "Times training (forward + backward + AdamW on random tokens) and greedy generation\n"
            "with the KV cache (batch 1, 8-token prompt, prefill included in the time) on a\n"
            "randomly initialised model.\n"
            "\n"
            "  --d-model N --layers N --heads N --kv-heads N --d-ff N --vocab N\n"
            "                       model (default 256, 6, 8, 8, 688, 1024)\n"
            "  --batch N --seq N    training batch (default 16 x 128)\n"
            "  --steps N            timed training steps (default 10)\n"
            "  --warmup N           untimed steps first (default 2)\n"
            "  --gen-tokens N       tokens to generate (default 128)\n"
            "  -t, --threads N      threads (default: all cores)\n"
            "  --json               print one JSON line instead of text\n");
}

int cmd_bench(int argc, char **argv) {
    decoder_config c = decoder_default_config();
    int64_t B = 16, T = 128, steps = 10, warmup = 2, gen = 128, threads = 0, v;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            bench_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        }
        if (!val) {
            fprintf(stderr, "loom: bench: %s needs a value (see loom bench --help)\n", a);
            return 1;
        }
        i++;
        if (cli_int(a, val, 0, 1 << 24, &v)) return 1;
        if (!strcmp(a, "--d-model")) c.d_model = (int32_t)v;
        else if (!strcmp(a, "--layers")) c.n_layers = (int32_t)v;
        else if (!strcmp(a, "--heads")) c.n_heads = (int32_t)v;
        else if (!strcmp(a, "--kv-heads")) c.n_kv_heads = (int32_t)v;
        else if (!strcmp(a, "--d-ff")) c.d_ff = (int32_t)v;
        else if (!strcmp(a, "--vocab")) c.vocab_size = (int32_t)v;
        else if (!strcmp(a, "--batch")) B = v;
        else if (!strcmp(a, "--seq")) T = v;
        else if (!strcmp(a, "--steps")) steps = v;
        else if (!strcmp(a, "--warmup")) warmup = v;
        else if (!strcmp(a, "--gen-tokens")) gen = v;
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) threads = v;
        else {
            fprintf(stderr, "loom: bench: unknown option %s (see loom bench --help)\n", a);
            return 1;
        }
    }
    if (B < 1 || T < 2 || steps < 1) return cli_fail("bench", "batch, seq and steps must be positive");
    c.max_seq = (int32_t)(T > 8 + gen ? T : 8 + gen);
    int nthreads = loom_threads_set((int)threads);
    loom_error err = {{0}};
    loom_model *m = model_new(&c, NULL, &err);
    if (!m) return cli_fail("bench", err.msg);
    model_init_random(m, 1);
    decoder_acts *a = decoder_acts_new(&c, (int32_t)B, (int32_t)T, &err);
    size_t np = m->table.total;
    float *grads = floats_alloc(np), *mo = floats_alloc(np), *vo = floats_alloc(np);
    int32_t *tokens = malloc((size_t)(B * T) * sizeof *tokens);
    int32_t *targets = malloc((size_t)(B * T) * sizeof *targets);
    if (!a || !grads || !mo || !vo || !tokens || !targets) {
        model_free(m);
        return cli_fail("bench", a ? "out of memory" : err.msg);
    }
    decoder_weights g;
    decoder_bind(&c, &m->table, grads, &g);
    loom_rng rng;
    rng_seed(&rng, 7);
    for (int64_t i = 0; i < B * T; i++) {
        tokens[i] = (int32_t)rng_below(&rng, (uint32_t)c.vocab_size);
        targets[i] = (int32_t)rng_below(&rng, (uint32_t)c.vocab_size);
    }
    adamw_params ap = adamw_default_params();
    double t0 = 0;
    for (int64_t s = 0; s < warmup + steps; s++) {
        if (s == warmup) t0 = clock_now_s();
        memset(grads, 0, np * sizeof(float));
        decoder_embed(&c, &m->w, tokens, B * T, a->x0);
        decoder_forward(&c, &m->w, a, (int32_t)B, (int32_t)T, targets);
        decoder_backward(&c, &m->w, &g, a, (int32_t)B, (int32_t)T, targets, 1.0f);
        decoder_embed_backward(&c, &g, tokens, B * T, a->dx0);
        grad_clip(grads, np, 1.0f);
        adamw_step(&m->table, m->params, grads, mo, vo, ap, s + 1);
    }
    double train_s = clock_now_s() - t0;
    double train_tok_s = (double)(B * T * steps) / train_s;
    double flops = 6.0 * (double)decoder_param_count(&c) * (double)(B * T * steps) / train_s;

    /* generation: 8-token prompt, then greedy with the KV cache */
    decoder_cache *kc = decoder_cache_new(&c, c.max_seq, &err);
    float *logits = malloc((size_t)c.vocab_size * sizeof(float));
    float *scratch = malloc((size_t)c.vocab_size * 2 * sizeof(float));
    if (!kc || !logits || !scratch) return cli_fail("bench", "out of memory");
    sampler_params sp = {.temp = 0.0f};
    /* timed like the PyTorch baseline: prefill of the prompt plus every decode step */
    double g0 = clock_now_s();
    for (int i = 0; i < 8; i++) decoder_step_token(&c, &m->w, kc, tokens[i], logits, &err);
    for (int64_t i = 0; i < gen; i++) {
        int32_t id = sampler_sample(logits, c.vocab_size, NULL, sp, &rng, scratch);
        if (decoder_step_token(&c, &m->w, kc, id, logits, &err)) return cli_fail("bench", err.msg);
    }
    double gen_tok_s = (double)gen / (clock_now_s() - g0);

    if (json)
        printf("{\"train_tok_s\": %.1f, \"gen_tok_s\": %.1f, \"params\": %" PRId64
               ", \"threads\": %d, \"train_gflops\": %.1f}\n",
               train_tok_s, gen_tok_s, decoder_param_count(&c), nthreads, flops / 1e9);
    else
        printf("loom bench: %" PRId64 " parameters (d %d, %d layers, %d heads, %d kv, d_ff %d, vocab %d), "
               "%d threads\n  train  B %" PRId64 " x T %" PRId64 ": %.0f tok/s (%.1f GFLOP/s at 6N per token)\n"
               "  generate (KV cache, greedy): %.1f tok/s\n",
               decoder_param_count(&c), c.d_model, c.n_layers, c.n_heads, c.n_kv_heads, c.d_ff,
               c.vocab_size, nthreads, B, T, train_tok_s, flops / 1e9, gen_tok_s);
    decoder_cache_free(kc);
    decoder_acts_free(a);
    free(logits); free(scratch); free(grads); free(mo); free(vo); free(tokens); free(targets);
    model_free(m);
    return 0;
}
