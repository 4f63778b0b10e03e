/* test_decoder.c: numeric checks of the decoder's kernels and its pieces.
 *
 *   gemm        the OpenBLAS gemm_nt/nn/tn against the naive *_ref loops, odd
 *               shapes, row strides wider than the rows, beta 0 and 1.
 *   kv cache    decoder_step_token one position at a time equals the logits of
 *               the full decoder_forward (GQA untied, window tied, MHA).
 *   padding     a row's logits do not depend on right padding or other rows.
 *   backward    decoder_backward against central finite differences.
 *   sampler     greedy, allowed mask, seeds, top-k/top-p, softmax frequencies.
 *   schedule    lr_schedule warmup/cosine, grad_clip.
 *
 * Every comparison prints its max difference and the tolerance it is held to.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <math.h>

#include "core/gemm.h"
#include "core/params.h"
#include "core/rng.h"
#include "core/threads.h"
#include "decoder/decoder.h"
#include "fusion/tokenizer.h"
#include "heads/sampler.h"
#include "model/model.h"
#include "train/adamw.h"

/* ---- helpers ---- */

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) fail_msg("test_decoder: out of memory (%zu bytes)", n);
    return p;
}

static void fill_uniform(float *p, size_t n, loom_rng *rng) {
    for (size_t i = 0; i < n; i++) p[i] = 2.0f * rng_uniform(rng) - 1.0f;
}

/* A random model whose activations are far from the small-init regime, so the
 * comparisons below exercise attention patterns and non-trivial logits:
 * matrices scaled x10 (std 0.2), tok_emb to std emb_std, norm weights 1 +- 0.2. */
static loom_model *random_model(const decoder_config *cfg, uint64_t seed, float emb_std) {
    loom_error err = {{0}};
    loom_model *m = model_new(cfg, NULL, &err);
    if (!m) fail_msg("model_new: %s", err.msg);
    model_init_random(m, seed);
    loom_rng rng;
    rng_seed(&rng, seed + 1000);
    for (int32_t i = 0; i < m->table.n; i++) {
        const param_info *p = &m->table.info[i];
        float *w = m->params + p->offset;
        if (strstr(p->name, "norm")) {
            for (size_t j = 0; j < p->numel; j++) w[j] = 1.0f + 0.2f * (2.0f * rng_uniform(&rng) - 1.0f);
        } else if (!strcmp(p->name, "decoder.tok_emb")) {
            for (size_t j = 0; j < p->numel; j++) w[j] *= emb_std / 0.02f;
        } else {
            for (size_t j = 0; j < p->numel; j++) w[j] *= 10.0f;
        }
    }
    return m;
}

static decoder_config tiny_config(int32_t V, int32_t C, int32_t L, int32_t H, int32_t KVH,
                                  int32_t F, int32_t max_seq, int32_t window, int32_t tie) {
    decoder_config c = decoder_default_config();
    c.vocab_size = V;
    c.d_model = C;
    c.n_layers = L;
    c.n_heads = H;
    c.n_kv_heads = KVH;
    c.d_ff = F;
    c.max_seq = max_seq;
    c.window = window;
    c.tie_embeddings = tie;
    return c;
}

/* ---- gemm against the naive reference ---- */

enum { GEMM_NT, GEMM_NN, GEMM_TN };
typedef void (*gemm_fn)(int64_t, int64_t, int64_t, const float *, int64_t, const float *, int64_t,
                        float, float *, int64_t);

/* One shape: random A, B and C with row strides pad floats wider than the
 * rows; C's padding holds a sentinel that must survive. With beta 0 the
 * initial C is NaN inside the rows: overwrite must not read it. */
static double gemm_case(int kind, int64_t M, int64_t N, int64_t K, int64_t pad, float beta,
                        loom_rng *rng, double *tol_out) {
    /* stored shapes: nt A (M,K) B (N,K); nn A (M,K) B (K,N); tn A (K,M) B (K,N) */
    int64_t a_rows = kind == GEMM_TN ? K : M, a_cols = kind == GEMM_TN ? M : K;
    int64_t b_rows = kind == GEMM_NT ? N : K, b_cols = kind == GEMM_NT ? K : N;
    int64_t lda = a_cols + pad, ldb = b_cols + pad, ldc = N + pad;
    if (lda < 1) lda = 1;
    if (ldb < 1) ldb = 1;
    float *A = xmalloc((size_t)(a_rows * lda) * sizeof(float));
    float *B = xmalloc((size_t)(b_rows * ldb) * sizeof(float));
    float *C = xmalloc((size_t)(M * ldc) * sizeof(float));
    float *R = xmalloc((size_t)(M * ldc) * sizeof(float));
    fill_uniform(A, (size_t)(a_rows * lda), rng);
    fill_uniform(B, (size_t)(b_rows * ldb), rng);
    const float sentinel = 12345.0f;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < ldc; j++) {
            float v = j < N ? (beta != 0.0f ? 2.0f * rng_uniform(rng) - 1.0f : NAN) : sentinel;
            C[i * ldc + j] = v;
            R[i * ldc + j] = v == v ? v : 0.0f;  /* the reference may not see NaN either way */
        }
    gemm_fn fast = kind == GEMM_NT ? gemm_nt : kind == GEMM_NN ? gemm_nn : gemm_tn;
    gemm_fn ref = kind == GEMM_NT ? gemm_nt_ref : kind == GEMM_NN ? gemm_nn_ref : gemm_tn_ref;
    fast(M, N, K, A, lda, B, ldb, beta, C, ldc);
    ref(M, N, K, A, lda, B, ldb, beta, R, ldc);
    double maxd = 0.0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < ldc; j++) {
            float c = C[i * ldc + j], r = R[i * ldc + j];
            if (j >= N) {
                if (c != sentinel)
                    fail_msg("gemm %d M%lld N%lld K%lld: wrote C[%lld][%lld] in the row padding", kind,
                             (long long)M, (long long)N, (long long)K, (long long)i, (long long)j);
                continue;
            }
            if (!isfinite(c)) maxd = INFINITY;
            double d = fabs((double)c - (double)r);
            if (d > maxd) maxd = d;
        }
    /* Entries are in [-1, 1]: float accumulation of K products stays well
     * inside 1e-6 * K (typical error ~ 4e-8 * K). */
    *tol_out = 1e-6 * (double)(K > 1 ? K : 1);
    free(A);
    free(B);
    free(C);
    free(R);
    return maxd;
}

static void test_gemm_vs_ref(void **state) {
    (void)state;
    static const int64_t shapes[][3] = {
        {1, 1, 1},     {7, 17, 255},  {255, 7, 17},  {17, 255, 7},    {1000, 7, 17},
        {7, 1000, 17}, {17, 7, 1000}, {1, 1000, 255}, {255, 1, 1000}, {255, 255, 17},
        {17, 17, 255}, {1000, 17, 1}, {1, 7, 1000},
    };
    static const char *names[] = {"nt", "nn", "tn"};
    loom_threads_set(2); /* OpenBLAS's threaded paths for the larger shapes */
    loom_rng rng;
    rng_seed(&rng, 42);
    int fails = 0;
    for (int kind = 0; kind < 3; kind++) {
        double worst = 0.0, worst_ratio = 0.0;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int b = 0; b < 2; b++)
                for (int64_t pad = 0; pad <= 5; pad += 5) {
                    int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                    double tol;
                    double d = gemm_case(kind, M, N, K, pad, (float)b, &rng, &tol);
                    if (d > worst) worst = d;
                    if (d / tol > worst_ratio) worst_ratio = d / tol;
                    if (!(d <= tol)) {
                        printf("FAIL gemm_%s M=%lld N=%lld K=%lld pad=%lld beta=%d: max |diff| %.3g > tol %.3g\n",
                               names[kind], (long long)M, (long long)N, (long long)K, (long long)pad,
                               b, d, tol);
                        fails++;
                    }
                }
        printf("gemm_%s vs gemm_%s_ref: max |diff| %.3g over all shapes (worst diff/tol %.3f; tol 1e-6*K)\n",
               names[kind], names[kind], worst, worst_ratio);
    }
    loom_threads_set(1);
    assert_int_equal(fails, 0);
}

/* ---- KV cache decoding equals the full forward ---- */

static void check_cache_vs_forward(const char *label, decoder_config cfg, int32_t T, uint64_t seed,
                                   float emb_std) {
    loom_error err = {{0}};
    loom_model *m = random_model(&cfg, seed, emb_std);
    const int32_t V = cfg.vocab_size;
    int32_t *tokens = xmalloc((size_t)T * sizeof *tokens);
    loom_rng rng;
    rng_seed(&rng, seed * 7 + 3);
    for (int32_t t = 0; t < T; t++) tokens[t] = (int32_t)rng_below(&rng, (uint32_t)V);

    decoder_acts *a = decoder_acts_new(&cfg, 1, T, &err);
    if (!a) fail_msg("acts: %s", err.msg);
    decoder_embed(&cfg, &m->w, tokens, T, a->x0);
    decoder_forward(&cfg, &m->w, a, 1, T, NULL);

    decoder_cache *kc = decoder_cache_new(&cfg, cfg.max_seq, &err);
    if (!kc) fail_msg("cache: %s", err.msg);
    float *logits = xmalloc((size_t)V * sizeof(float));
    double maxd = 0.0, maxabs = 0.0, spread = 0.0;
    for (int32_t t = 0; t < T; t++) {
        if (decoder_step_token(&cfg, &m->w, kc, tokens[t], logits, &err))
            fail_msg("%s: step %d: %s", label, t, err.msg);
        const float *full = a->logits + (size_t)t * V;
        float lo = full[0], hi = full[0];
        for (int32_t v = 0; v < V; v++) {
            double d = fabs((double)logits[v] - full[v]);
            if (!(d <= maxd)) maxd = d;  /* NaN sticks */
            if (fabs(full[v]) > maxabs) maxabs = fabs(full[v]);
            lo = full[v] < lo ? full[v] : lo;
            hi = full[v] > hi ? full[v] : hi;
        }
        spread += hi - lo;
    }
    assert_int_equal(kc->n, T);
    /* the cache is full only at max_seq */
    if (T == kc->max_seq) assert_int_equal(decoder_step_token(&cfg, &m->w, kc, 0, logits, &err), -1);
    const double tol = 1e-4;
    printf("kv cache vs forward [%s, T=%d]: max |diff| %.3g (tol %.0e), max |logit| %.3g, mean logit range %.3g\n",
           label, T, maxd, tol, maxabs, spread / T);
    /* nontrivial logits, or the comparison proves nothing */
    assert_true(spread / T > 1.0);
    if (!(maxd <= tol)) fail_msg("%s: cache and forward differ by %.3g", label, maxd);

    /* reset gives the same logits again */
    decoder_cache_reset(kc);
    for (int32_t t = 0; t < T; t++)
        assert_int_equal(decoder_step_token(&cfg, &m->w, kc, tokens[t], logits, &err), 0);
    double d2 = 0.0;
    for (int32_t v = 0; v < V; v++) {
        double d = fabs((double)logits[v] - a->logits[(size_t)(T - 1) * V + v]);
        if (!(d <= d2)) d2 = d;
    }
    if (!(d2 <= tol)) fail_msg("%s: after reset, last position differs by %.3g", label, d2);

    /* prefill the first half at once, step the rest: same logits */
    const int32_t half = T / 2 > 0 ? T / 2 : 1;
    decoder_cache_reset(kc);
    decoder_acts *ap = decoder_acts_new(&cfg, 1, T, &err);
    if (!ap) fail_msg("acts: %s", err.msg);
    decoder_embed(&cfg, &m->w, tokens, half, ap->x0);
    if (decoder_prefill(&cfg, &m->w, kc, ap, half, logits, &err)) fail_msg("%s: prefill: %s", label, err.msg);
    assert_int_equal(kc->n, half);
    double d3 = 0.0;
    for (int32_t t = half - 1; t < T; t++) {
        if (t >= half && decoder_step_token(&cfg, &m->w, kc, tokens[t], logits, &err))
            fail_msg("%s: step %d after prefill: %s", label, t, err.msg);
        for (int32_t v = 0; v < V; v++) {
            double d = fabs((double)logits[v] - a->logits[(size_t)t * V + v]);
            if (!(d <= d3)) d3 = d;
        }
    }
    printf("prefill %d + steps vs forward [%s]: max |diff| %.3g\n", half, label, d3);
    if (!(d3 <= tol)) fail_msg("%s: prefill + steps differ from the forward by %.3g", label, d3);
    /* prefill needs an empty cache */
    assert_int_equal(decoder_prefill(&cfg, &m->w, kc, ap, half, logits, &err), -1);
    decoder_acts_free(ap);

    free(logits);
    free(tokens);
    decoder_cache_free(kc);
    decoder_acts_free(a);
    model_free(m);
}

static void test_kv_cache_matches_forward(void **state) {
    (void)state;
    /* full attention, GQA (4 heads over 2 kv heads), separate LM head */
    check_cache_vs_forward("full GQA untied", tiny_config(67, 32, 2, 4, 2, 48, 24, 0, 0), 24, 11, 1.0f);
    /* sliding window 3, tied, MQA (one kv head) */
    check_cache_vs_forward("window=3 tied MQA", tiny_config(67, 32, 2, 4, 1, 40, 32, 3, 1), 20, 12, 0.5f);
    /* multi-head, tied, 3 layers */
    check_cache_vs_forward("MHA tied", tiny_config(53, 24, 3, 3, 3, 40, 16, 0, 1), 16, 13, 0.5f);
    /* window 1: each position attends only to itself */
    check_cache_vs_forward("window=1 untied", tiny_config(41, 16, 1, 2, 1, 24, 12, 1, 0), 12, 14, 1.0f);
    /* longer than one attention query block (32 rows): several blocks, a
     * partial last block, and a window that starts mid-block */
    check_cache_vs_forward("T=77 blocks GQA", tiny_config(67, 32, 2, 4, 2, 48, 80, 0, 0), 77, 15, 1.0f);
    check_cache_vs_forward("T=77 window=37", tiny_config(67, 32, 2, 4, 1, 48, 80, 37, 1), 77, 16, 0.5f);
}

/* ---- several sequences stepped together equal each stepped alone ---- */

/* Sequences of different lengths (so each step's rows sit at different
 * positions) go through decoder_step_batch, with a changing membership as in
 * a server whose requests come and go; every row's logits must equal those of
 * the same sequence stepped alone with decoder_step_token, bit for bit (each
 * row of loom_gemv_nt and q8_matmul is summed as it would be alone). */
static void check_batch_vs_steps(const char *label, const loom_model *m, double tol) {
    loom_error err = {{0}};
    const decoder_config *cfg = &m->cfg;
    enum { NS = 5, STEPS = 6 };
    const int32_t V = cfg->vocab_size, C = cfg->d_model;
    const int32_t prefix[NS] = {1, 7, 3, 12, 0};
    decoder_cache *alone[NS], *kc[NS];
    loom_rng rng;
    rng_seed(&rng, 77);
    for (int i = 0; i < NS; i++) {
        alone[i] = decoder_cache_new(cfg, 24, &err);
        kc[i] = decoder_cache_new(cfg, 24, &err);
        assert_non_null(alone[i]);
        assert_non_null(kc[i]);
    }
    float *ref = xmalloc((size_t)V * sizeof(float)), *lb = xmalloc((size_t)NS * V * sizeof(float));
    float *x = xmalloc((size_t)NS * C * sizeof(float));
    decoder_batch *b = decoder_batch_new(cfg, NS, 24, &err);
    if (!b) fail_msg("%s", err.msg);
    for (int i = 0; i < NS; i++)
        for (int32_t t = 0; t < prefix[i]; t++) {
            const int32_t tok = (int32_t)rng_below(&rng, (uint32_t)V);
            assert_int_equal(decoder_step_token(cfg, &m->w, alone[i], tok, NULL, &err), 0);
            assert_int_equal(decoder_step_token(cfg, &m->w, kc[i], tok, NULL, &err), 0);
        }
    double maxd = 0.0;
    int rows = 0;
    for (int s = 0; s < STEPS; s++) {
        /* step s runs the sequences whose bit is set in this mask */
        static const unsigned masks[STEPS] = {0x1f, 0x0b, 0x14, 0x1f, 0x01, 0x1e};
        decoder_cache *sel[NS];
        int32_t toks[NS], n = 0;
        for (int i = 0; i < NS; i++)
            if (masks[s] >> i & 1) {
                toks[n] = (int32_t)rng_below(&rng, (uint32_t)V);
                memcpy(x + (size_t)n * C, m->w.tok_emb + (size_t)toks[n] * C, (size_t)C * sizeof(float));
                sel[n++] = kc[i];
            }
        if (decoder_step_batch(cfg, &m->w, sel, n, b, x, lb, &err)) fail_msg("%s: %s", label, err.msg);
        for (int i = 0, r = 0; i < NS; i++) {
            if (!(masks[s] >> i & 1)) continue;
            assert_int_equal(decoder_step_token(cfg, &m->w, alone[i], toks[r], ref, &err), 0);
            assert_int_equal(kc[i]->n, alone[i]->n);
            for (int32_t v = 0; v < V; v++) {
                const double d = fabs((double)lb[(size_t)r * V + v] - ref[v]);
                if (!(d <= maxd)) maxd = d;
            }
            r++;
            rows++;
        }
    }
    printf("batched steps vs single steps [%s]: %d rows, max |diff| %.3g (tol %g)\n", label, rows,
           maxd, tol);
    if (!(maxd <= tol)) fail_msg("%s: batched and single steps differ by %.3g", label, maxd);
    /* more sequences than the scratch holds, a full cache, a cache longer than the scratch */
    assert_int_equal(decoder_step_batch(cfg, &m->w, kc, NS + 1, b, x, lb, &err), -1);
    decoder_cache *big = decoder_cache_new(cfg, 32, &err);
    assert_non_null(big);
    assert_int_equal(decoder_step_batch(cfg, &m->w, &big, 1, b, x, lb, &err), -1);
    assert_non_null(strstr(err.msg, "scratch"));
    decoder_cache_free(big);
    kc[0]->n = kc[0]->max_seq;
    assert_int_equal(decoder_step_batch(cfg, &m->w, kc, 1, b, x, lb, &err), -1);
    assert_non_null(strstr(err.msg, "context full"));
    decoder_batch_free(b);
    for (int i = 0; i < NS; i++) {
        decoder_cache_free(alone[i]);
        decoder_cache_free(kc[i]);
    }
    free(ref);
    free(lb);
    free(x);
}

/* More rows than one loom_gemv_nt block (16): still each row's own bits. */
static void check_wide_batch(const loom_model *m) {
    loom_error err = {{0}};
    enum { NW = 21 };
    const decoder_config *cfg = &m->cfg;
    const int32_t V = cfg->vocab_size, C = cfg->d_model;
    decoder_cache *alone[NW], *kc[NW];
    float *x = xmalloc((size_t)NW * C * sizeof(float)), *lb = xmalloc((size_t)NW * V * sizeof(float));
    float *ref = xmalloc((size_t)V * sizeof(float));
    decoder_batch *b = decoder_batch_new(cfg, NW, 16, &err);
    assert_non_null(b);
    double maxd = 0.0;
    for (int i = 0; i < NW; i++) {
        assert_non_null(alone[i] = decoder_cache_new(cfg, 16, &err));
        assert_non_null(kc[i] = decoder_cache_new(cfg, 16, &err));
        for (int t = 0; t < i % 5; t++) { /* different positions */
            assert_int_equal(decoder_step_token(cfg, &m->w, alone[i], (i + t) % V, NULL, &err), 0);
            assert_int_equal(decoder_step_token(cfg, &m->w, kc[i], (i + t) % V, NULL, &err), 0);
        }
        memcpy(x + (size_t)i * C, m->w.tok_emb + (size_t)((7 * i) % V) * C, (size_t)C * sizeof(float));
    }
    assert_int_equal(decoder_step_batch(cfg, &m->w, kc, NW, b, x, lb, &err), 0);
    for (int i = 0; i < NW; i++) {
        assert_int_equal(decoder_step_token(cfg, &m->w, alone[i], (7 * i) % V, ref, &err), 0);
        for (int32_t v = 0; v < V; v++) {
            const double d = fabs((double)lb[(size_t)i * V + v] - ref[v]);
            if (!(d <= maxd)) maxd = d;
        }
        decoder_cache_free(alone[i]);
        decoder_cache_free(kc[i]);
    }
    printf("batched step of %d rows vs single steps: max |diff| %.3g (tol 0)\n", NW, maxd);
    assert_true(maxd == 0.0);
    decoder_batch_free(b);
    free(x);
    free(lb);
    free(ref);
}

static void test_batched_steps(void **state) {
    (void)state;
    loom_error err = {{0}};
    decoder_config full = tiny_config(67, 32, 2, 4, 2, 48, 32, 0, 0);
    loom_model *m = random_model(&full, 31, 1.0f);
    check_batch_vs_steps("full GQA untied", m, 0.0);
    check_wide_batch(m);
    loom_model *q = model_quantize(m, 32, 1, &err);
    if (!q) fail_msg("%s", err.msg);
    check_batch_vs_steps("int8, int8 head", q, 0.0);
    model_free(q);
    model_free(m);
    decoder_config win = tiny_config(67, 32, 2, 4, 1, 40, 32, 5, 1);
    m = random_model(&win, 32, 0.5f);
    check_batch_vs_steps("window=5 tied MQA", m, 0.0);
    model_free(m);
}

/* ---- right padding does not leak into real positions ---- */

static void test_padding_invariance(void **state) {
    (void)state;
    loom_error err = {{0}};
    decoder_config cfg = tiny_config(61, 32, 2, 4, 2, 48, 16, 0, 0);
    loom_model *m = random_model(&cfg, 21, 1.0f);
    const int32_t B = 3, T = 12, V = cfg.vocab_size;
    const int32_t lens[3] = {12, 5, 9};
    int32_t tokens[3 * 12], targets[3 * 12];
    loom_rng rng;
    rng_seed(&rng, 99);
    for (int32_t b = 0; b < B; b++)
        for (int32_t t = 0; t < T; t++) {
            int real = t < lens[b];
            tokens[b * T + t] = real ? 1 + (int32_t)rng_below(&rng, (uint32_t)V - 1) : TOKEN_PAD;
            targets[b * T + t] = real ? (int32_t)rng_below(&rng, (uint32_t)V) : -1;
        }
    decoder_acts *ab = decoder_acts_new(&cfg, B, T, &err);
    if (!ab) fail_msg("acts: %s", err.msg);
    decoder_embed(&cfg, &m->w, tokens, (int64_t)B * T, ab->x0);
    float batch_loss = decoder_forward(&cfg, &m->w, ab, B, T, targets);

    double maxd = 0.0, loss_sum = 0.0;
    int32_t count = 0;
    for (int32_t b = 0; b < B; b++) {
        const int32_t n = lens[b];
        decoder_acts *a1 = decoder_acts_new(&cfg, 1, n, &err);
        if (!a1) fail_msg("acts: %s", err.msg);
        decoder_embed(&cfg, &m->w, tokens + b * T, n, a1->x0);
        float l1 = decoder_forward(&cfg, &m->w, a1, 1, n, targets + b * T);
        loss_sum += (double)l1 * n;
        count += n;
        for (int32_t t = 0; t < n; t++)
            for (int32_t v = 0; v < V; v++) {
                double d = fabs((double)a1->logits[(size_t)t * V + v] -
                                ab->logits[((size_t)b * T + t) * V + v]);
                if (!(d <= maxd)) maxd = d;
            }
        /* per-position losses of padding are exactly 0 */
        for (int32_t t = n; t < T; t++) assert_true(ab->losses[b * T + t] == 0.0f);
        decoder_acts_free(a1);
    }
    double loss_d = fabs(batch_loss - loss_sum / count);
    const double tol = 1e-5;
    printf("padding: alone vs padded in a batch: max |logit diff| %.3g (tol %.0e); batch loss %.6f vs mean of rows %.6f (diff %.3g, tol %.0e)\n",
           maxd, tol, batch_loss, loss_sum / count, loss_d, tol);
    assert_true(maxd <= tol);
    assert_true(loss_d <= tol);
    decoder_acts_free(ab);
    model_free(m);
}

/* ---- forward and backward at 1 and 2 threads ---- */

static void test_threads_agree(void **state) {
    (void)state;
    loom_error err = {{0}};
    decoder_config cfg = tiny_config(97, 32, 2, 4, 2, 48, 16, 5, 1);
    loom_model *m = random_model(&cfg, 51, 0.5f);
    const int32_t B = 3, T = 16, V = cfg.vocab_size;
    int32_t tokens[3 * 16], targets[3 * 16];
    loom_rng rng;
    rng_seed(&rng, 52);
    for (int32_t i = 0; i < B * T; i++) {
        tokens[i] = (int32_t)rng_below(&rng, (uint32_t)V);
        targets[i] = i % 5 == 0 ? -1 : (int32_t)rng_below(&rng, (uint32_t)V);
    }
    float *logits[2], *grads[2], loss[2];
    for (int run = 0; run < 2; run++) {
        loom_threads_set(run + 1);
        decoder_acts *a = decoder_acts_new(&cfg, B, T, &err);
        assert_non_null(a);
        grads[run] = floats_alloc(m->table.total);
        logits[run] = xmalloc((size_t)B * T * V * sizeof(float));
        assert_non_null(grads[run]);
        decoder_weights g;
        decoder_bind(&cfg, &m->table, grads[run], &g);
        decoder_embed(&cfg, &m->w, tokens, (int64_t)B * T, a->x0);
        loss[run] = decoder_forward(&cfg, &m->w, a, B, T, targets);
        memcpy(logits[run], a->logits, (size_t)B * T * V * sizeof(float));
        decoder_backward(&cfg, &m->w, &g, a, B, T, targets, 1.0f);
        decoder_embed_backward(&cfg, &g, tokens, (int64_t)B * T, a->dx0);
        decoder_acts_free(a);
    }
    loom_threads_set(1);
    double dl = 0.0, dg = 0.0, maxg = 0.0;
    for (size_t i = 0; i < (size_t)B * T * V; i++) {
        double d = fabs((double)logits[0][i] - logits[1][i]);
        if (!(d <= dl)) dl = d;
    }
    for (size_t i = 0; i < m->table.total; i++) {
        double d = fabs((double)grads[0][i] - grads[1][i]);
        if (!(d <= dg)) dg = d;
        if (fabs(grads[0][i]) > maxg) maxg = fabs(grads[0][i]);
    }
    printf("1 vs 2 threads: max |logit diff| %.3g (tol 1e-5), loss %.7f vs %.7f, max |grad diff| %.3g (tol 1e-5 * max |grad| %.3g)\n",
           dl, loss[0], loss[1], dg, maxg);
    assert_true(dl <= 1e-5);
    assert_true(fabs(loss[0] - loss[1]) <= 1e-5);
    assert_true(dg <= 1e-5 * maxg);
    for (int run = 0; run < 2; run++) {
        free(logits[run]);
        free(grads[run]);
    }
    model_free(m);
}

/* ---- backward against central finite differences ---- */

static float fd_loss(const decoder_config *cfg, loom_model *m, decoder_acts *a, int32_t B,
                     int32_t T, const int32_t *tokens, const int32_t *targets) {
    decoder_embed(cfg, &m->w, tokens, (int64_t)B * T, a->x0);
    return decoder_forward(cfg, &m->w, a, B, T, targets);
}

/* Returns the number of failing elements; prints the worst relative error. */
static int check_grads(const char *label, decoder_config cfg, uint64_t seed) {
    loom_error err = {{0}};
    loom_model *m = random_model(&cfg, seed, 0.5f);
    /* milder weights than random_model's: the loss stays smooth on the scale of eps */
    for (int32_t i = 0; i < m->table.n; i++) {
        const param_info *p = &m->table.info[i];
        if (strstr(p->name, "norm") || !strcmp(p->name, "decoder.tok_emb")) continue;
        for (size_t j = 0; j < p->numel; j++) m->params[p->offset + j] *= 0.5f;
    }
    const int32_t B = 2, T = 7, V = cfg.vocab_size;
    int32_t tokens[2 * 7], targets[2 * 7];
    loom_rng rng;
    rng_seed(&rng, seed + 5);
    for (int32_t i = 0; i < B * T; i++) {
        tokens[i] = (int32_t)rng_below(&rng, (uint32_t)V);
        targets[i] = (int32_t)rng_below(&rng, (uint32_t)V);
    }
    targets[0] = targets[3] = -1; /* ignored positions */
    tokens[T + 6] = TOKEN_PAD;    /* a padded tail */
    targets[T + 6] = -1;

    decoder_acts *a = decoder_acts_new(&cfg, B, T, &err);
    if (!a) fail_msg("acts: %s", err.msg);
    float *grads = floats_alloc(m->table.total);
    assert_non_null(grads);
    decoder_weights g;
    decoder_bind(&cfg, &m->table, grads, &g);
    fd_loss(&cfg, m, a, B, T, tokens, targets);
    decoder_backward(&cfg, &m->w, &g, a, B, T, targets, 1.0f);
    decoder_embed_backward(&cfg, &g, tokens, (int64_t)B * T, a->dx0);

    static const char *names[] = {
        "decoder.tok_emb", "decoder.attn_norm", "decoder.wq", "decoder.wk", "decoder.wv",
        "decoder.wo", "decoder.mlp_norm", "decoder.w_gate", "decoder.w_up", "decoder.w_down",
        "decoder.final_norm", "decoder.lm_head",
    };
    const float eps = 1e-2f;
    const double rel_tol = 1e-2, abs_tol = 2e-4;
    int fails = 0, checked = 0;
    double worst_rel = 0.0;
    for (size_t ni = 0; ni < sizeof names / sizeof names[0]; ni++) {
        const param_info *p = params_find(&m->table, names[ni]);
        if (!p) continue; /* lm_head when tied */
        /* the element with the largest gradient, plus three random ones */
        size_t pick[4], best = 0;
        for (size_t j = 1; j < p->numel; j++)
            if (fabsf(grads[p->offset + j]) > fabsf(grads[p->offset + best])) best = j;
        pick[0] = best;
        for (int k = 1; k < 4; k++) pick[k] = rng_below(&rng, (uint32_t)p->numel);
        /* tok_emb: make sure a row that is actually embedded is among them */
        if (!strcmp(names[ni], "decoder.tok_emb"))
            pick[1] = (size_t)tokens[4] * (size_t)cfg.d_model + 1;
        for (int k = 0; k < 4; k++) {
            float *w = m->params + p->offset + pick[k];
            const float w0 = *w;
            *w = w0 + eps;
            float lp = fd_loss(&cfg, m, a, B, T, tokens, targets);
            *w = w0 - eps;
            float lm = fd_loss(&cfg, m, a, B, T, tokens, targets);
            *w = w0;
            double fd = ((double)lp - (double)lm) / (2.0 * eps);
            double an = grads[p->offset + pick[k]];
            double diff = fabs(fd - an), scale = fmax(fabs(fd), fabs(an));
            double rel = diff / fmax(scale, 1e-12);
            int ok = diff <= rel_tol * scale + abs_tol;
            if (scale > 1e-3 && rel > worst_rel) worst_rel = rel;
            checked++;
            if (!ok) {
                fails++;
                printf("FAIL %s %s[%zu]: analytic %.6g, finite difference %.6g (|diff| %.3g)\n", label,
                       names[ni], pick[k], an, fd, diff);
            }
        }
    }
    printf("backward vs finite differences [%s]: %d elements, worst relative error %.3g among |grad| > 1e-3 "
           "(tol: |diff| <= %.0e * max(|fd|,|analytic|) + %.0e, eps %.0e)\n",
           label, checked, worst_rel, rel_tol, abs_tol, (double)eps);
    free(grads);
    decoder_acts_free(a);
    model_free(m);
    return fails;
}

static void test_backward_finite_differences(void **state) {
    (void)state;
    int fails = 0;
    fails += check_grads("GQA window=3 tied", tiny_config(23, 8, 2, 2, 1, 12, 8, 3, 1), 31);
    fails += check_grads("MHA full untied", tiny_config(19, 8, 1, 2, 2, 10, 8, 0, 0), 32);
    assert_int_equal(fails, 0);
}

/* gradients accumulate (+=) and loss_scale scales them linearly */
static void test_backward_accumulates(void **state) {
    (void)state;
    loom_error err = {{0}};
    decoder_config cfg = tiny_config(23, 8, 1, 2, 1, 12, 8, 0, 0);
    loom_model *m = random_model(&cfg, 41, 0.5f);
    const int32_t B = 2, T = 6;
    int32_t tokens[12], targets[12];
    for (int i = 0; i < 12; i++) {
        tokens[i] = (i * 7 + 3) % cfg.vocab_size;
        targets[i] = (i * 5 + 1) % cfg.vocab_size;
    }
    decoder_acts *a = decoder_acts_new(&cfg, B, T, &err);
    float *g1 = floats_alloc(m->table.total), *g2 = floats_alloc(m->table.total);
    assert_non_null(a);
    assert_non_null(g1);
    assert_non_null(g2);
    decoder_weights w1, w2;
    decoder_bind(&cfg, &m->table, g1, &w1);
    decoder_bind(&cfg, &m->table, g2, &w2);
    for (int rep = 0; rep < 2; rep++) { /* g1: two passes at scale 0.5 */
        fd_loss(&cfg, m, a, B, T, tokens, targets);
        decoder_backward(&cfg, &m->w, &w1, a, B, T, targets, 0.5f);
        decoder_embed_backward(&cfg, &w1, tokens, B * T, a->dx0);
    }
    fd_loss(&cfg, m, a, B, T, tokens, targets); /* g2: one pass at scale 1 */
    decoder_backward(&cfg, &m->w, &w2, a, B, T, targets, 1.0f);
    decoder_embed_backward(&cfg, &w2, tokens, B * T, a->dx0);
    double maxd = 0.0, maxg = 0.0;
    for (size_t i = 0; i < m->table.total; i++) {
        double d = fabs((double)g1[i] - g2[i]);
        if (!(d <= maxd)) maxd = d;
        if (fabs(g2[i]) > maxg) maxg = fabs(g2[i]);
    }
    printf("backward accumulation: 2 x (scale 0.5) vs 1 x (scale 1): max |diff| %.3g (max |grad| %.3g, tol 1e-6 * max)\n",
           maxd, maxg);
    assert_true(maxg > 0.0);
    assert_true(maxd <= 1e-6 * maxg);
    /* every target ignored: zero loss, zero gradients */
    for (int i = 0; i < 12; i++) targets[i] = -1;
    memset(g2, 0, m->table.total * sizeof(float));
    assert_true(fd_loss(&cfg, m, a, B, T, tokens, targets) == 0.0f);
    decoder_backward(&cfg, &m->w, &w2, a, B, T, targets, 1.0f);
    decoder_embed_backward(&cfg, &w2, tokens, B * T, a->dx0);
    for (size_t i = 0; i < m->table.total; i++)
        if (g2[i] != 0.0f) fail_msg("nonzero gradient %g at %zu with every target ignored", g2[i], i);
    free(g1);
    free(g2);
    decoder_acts_free(a);
    model_free(m);
}

/* ---- depth growth ---- */

/* L layers grown to L2: the grown decoder's logits equal the original's bit
 * for bit (each extra block adds an exact zero), the layers sit where the
 * spread puts them, and in the first backward only the extra blocks' output
 * projections get gradients among their matrices. */
static void check_grow(int32_t L, int32_t L2) {
    loom_error err = {{0}};
    decoder_config c1 = tiny_config(29, 16, L, 4, 2, 24, 12, 0, 0), c2 = c1;
    c2.n_layers = L2;
    loom_model *m1 = random_model(&c1, 50 + (uint64_t)L2, 0.5f), *m2 = random_model(&c2, 99, 0.5f);
    for (int32_t i = 0; i < m2->table.n; i++) { /* everything outside the layers, by name */
        const param_info *d = &m2->table.info[i], *p = params_find(&m1->table, d->name);
        if (p->numel == d->numel) memcpy(m2->params + d->offset, m1->params + p->offset, p->numel * sizeof(float));
    }
    if (decoder_grow_layers(&c1, &m1->w, &c2, &m2->w, &err)) fail_msg("grow %d -> %d: %s", L, L2, err.msg);

    /* where each grown layer came from: old layer l, then its share of the extras */
    const size_t C = 16, F = 24, QD = 16;
    int32_t j = 0, copies_seen = 0;
    for (int32_t l = 0; l < L; l++) {
        const int32_t n = 1 + (int32_t)(((int64_t)(l + 1) * (L2 - L)) / L - ((int64_t)l * (L2 - L)) / L);
        for (int32_t k = 0; k < n; k++, j++) {
            assert_memory_equal(m2->w.wq + j * QD * C, m1->w.wq + l * QD * C, QD * C * sizeof(float));
            assert_memory_equal(m2->w.w_up + j * F * C, m1->w.w_up + l * F * C, F * C * sizeof(float));
            for (size_t i = 0; i < C * F; i++) {
                const float want = k ? 0.0f : m1->w.w_down[l * C * F + i];
                if (m2->w.w_down[j * C * F + i] != want) fail_msg("grow: layer %d w_down[%zu]", j, i);
            }
            copies_seen += k > 0;
        }
    }
    assert_int_equal(j, L2);
    assert_int_equal(copies_seen, L2 - L);

    const int32_t B = 2, T = 10, V = c1.vocab_size;
    int32_t tokens[20], targets[20];
    for (int i = 0; i < B * T; i++) {
        tokens[i] = (i * 11 + 5) % V;
        targets[i] = (i * 3 + 2) % V;
    }
    decoder_acts *a1 = decoder_acts_new(&c1, B, T, &err), *a2 = decoder_acts_new(&c2, B, T, &err);
    assert_non_null(a1);
    assert_non_null(a2);
    const float l1 = fd_loss(&c1, m1, a1, B, T, tokens, targets);
    const float l2 = fd_loss(&c2, m2, a2, B, T, tokens, targets);
    double maxd = 0.0, spread = 0.0;
    for (size_t i = 0; i < (size_t)B * T * V; i++) {
        double d = fabs((double)a1->logits[i] - a2->logits[i]);
        if (!(d <= maxd)) maxd = d;
        spread = fabs(a1->logits[i]) > spread ? fabs(a1->logits[i]) : spread;
    }
    printf("grow %d -> %d layers: logits max |diff| %.3g (tol 0; max |logit| %.3g), loss %.6f vs %.6f\n", L, L2,
           maxd, spread, l1, l2);
    assert_true(spread > 1.0);
    assert_true(maxd == 0.0);
    assert_true(l1 == l2);

    float *g = floats_alloc(m2->table.total);
    assert_non_null(g);
    decoder_weights gw;
    decoder_bind(&c2, &m2->table, g, &gw);
    decoder_backward(&c2, &m2->w, &gw, a2, B, T, targets, 1.0f);
    j = 0;
    for (int32_t l = 0; l < L; l++) {
        const int32_t n = 1 + (int32_t)(((int64_t)(l + 1) * (L2 - L)) / L - ((int64_t)l * (L2 - L)) / L);
        for (int32_t k = 0; k < n; k++, j++) {
            double wq = 0.0, wo = 0.0, gate = 0.0, down = 0.0;
            for (size_t i = 0; i < QD * C; i++) wq += fabs(gw.wq[j * QD * C + i]), wo += fabs(gw.wo[j * C * QD + i]);
            for (size_t i = 0; i < F * C; i++) gate += fabs(gw.w_gate[j * F * C + i]), down += fabs(gw.w_down[j * C * F + i]);
            assert_true(wo > 0.0 && down > 0.0);
            if (k) assert_true(wq == 0.0 && gate == 0.0);
            else assert_true(wq > 0.0 && gate > 0.0);
        }
    }
    free(g);
    decoder_acts_free(a1);
    decoder_acts_free(a2);
    model_free(m1);
    model_free(m2);
}

static void test_grow_layers(void **state) {
    (void)state;
    check_grow(3, 3);
    check_grow(3, 5);
    check_grow(2, 7);
    check_grow(6, 9);
    /* layers of another shape, fewer layers, an int8 decoder: refused */
    loom_error err = {{0}};
    decoder_config c1 = tiny_config(29, 16, 2, 4, 2, 24, 12, 0, 0), c2 = c1;
    decoder_weights w = {0};
    c2.d_ff = 32;
    assert_int_equal(decoder_grow_layers(&c1, &w, &c2, &w, &err), -1);
    assert_non_null(strstr(err.msg, "differ in shape"));
    c2 = c1, c2.n_layers = 1;
    assert_int_equal(decoder_grow_layers(&c1, &w, &c2, &w, &err), -1);
    assert_non_null(strstr(err.msg, "2 layers cannot become 1"));
    c2 = c1, c2.quant_group = 32;
    assert_int_equal(decoder_grow_layers(&c1, &w, &c2, &w, &err), -1);
    assert_non_null(strstr(err.msg, "quantized"));
}

/* ---- sampler ---- */

static void test_sampler_greedy_and_mask(void **state) {
    (void)state;
    enum { V = 50 };
    float logits[V], scratch[2 * V];
    uint8_t allowed[V];
    loom_rng rng;
    rng_seed(&rng, 3);
    fill_uniform(logits, V, &rng);
    logits[17] = 5.0f;
    logits[31] = 4.0f;
    int32_t argmax = 17;
    sampler_params greedy = {.temp = 0.0f, .top_k = 0, .top_p = 1.0f};
    assert_int_equal(sampler_sample(logits, V, NULL, greedy, &rng, scratch), argmax);
    /* ties go to the lowest id */
    logits[40] = 5.0f;
    assert_int_equal(sampler_sample(logits, V, NULL, greedy, &rng, scratch), 17);
    logits[40] = 0.0f;
    /* top_k 1 and a tiny top_p equal greedy, at any temperature and seed */
    for (int s = 0; s < 200; s++) {
        sampler_params k1 = {.temp = 1.5f, .top_k = 1, .top_p = 1.0f};
        sampler_params p0 = {.temp = 1.5f, .top_k = 0, .top_p = 1e-6f};
        assert_int_equal(sampler_sample(logits, V, NULL, k1, &rng, scratch), argmax);
        assert_int_equal(sampler_sample(logits, V, NULL, p0, &rng, scratch), argmax);
    }
    /* the mask: the two best ids and every odd id are disallowed */
    for (int i = 0; i < V; i++) allowed[i] = (uint8_t)(i % 2 == 0);
    allowed[17] = 0;
    allowed[30] = 0;
    logits[30] = 4.5f;
    int32_t best_allowed = 0;
    for (int i = 0; i < V; i++)
        if (allowed[i] && logits[i] > logits[best_allowed]) best_allowed = i;
    assert_int_equal(sampler_sample(logits, V, allowed, greedy, &rng, scratch), best_allowed);
    sampler_params hot = {.temp = 3.0f, .top_k = 0, .top_p = 1.0f};
    sampler_params mixed = {.temp = 1.0f, .top_k = 5, .top_p = 0.9f};
    int bad = 0, distinct = 0, seen[V] = {0};
    for (int i = 0; i < 10000; i++) {
        int32_t id = sampler_sample(logits, V, allowed, i % 2 ? hot : mixed, &rng, scratch);
        if (id < 0 || id >= V || !allowed[id]) bad++;
        else if (!seen[id]++) distinct++;
    }
    printf("sampler mask: %d disallowed draws in 10000 (must be 0), %d distinct allowed ids drawn\n", bad,
           distinct);
    assert_int_equal(bad, 0);
    assert_true(distinct > 5);
    /* nothing allowed */
    memset(allowed, 0, sizeof allowed);
    assert_int_equal(sampler_sample(logits, V, allowed, greedy, &rng, scratch), -1);
    assert_int_equal(sampler_sample(logits, V, allowed, hot, &rng, scratch), -1);
    /* only one allowed */
    allowed[3] = 1;
    assert_int_equal(sampler_sample(logits, V, allowed, hot, &rng, scratch), 3);
    /* logits untouched */
    float copy[V];
    memcpy(copy, logits, sizeof copy);
    sampler_sample(logits, V, NULL, mixed, &rng, scratch);
    assert_memory_equal(copy, logits, sizeof copy);
}

static void test_sampler_seeded(void **state) {
    (void)state;
    enum { V = 40, N = 500 };
    float logits[V], scratch[2 * V];
    loom_rng rng;
    rng_seed(&rng, 8);
    fill_uniform(logits, V, &rng);
    sampler_params p = {.temp = 1.0f, .top_k = 20, .top_p = 0.95f};
    int32_t a[N], b[N], c[N];
    loom_rng r1, r2, r3;
    rng_seed(&r1, 77);
    rng_seed(&r2, 77);
    rng_seed(&r3, 78);
    for (int i = 0; i < N; i++) {
        a[i] = sampler_sample(logits, V, NULL, p, &r1, scratch);
        b[i] = sampler_sample(logits, V, NULL, p, &r2, scratch);
        c[i] = sampler_sample(logits, V, NULL, p, &r3, scratch);
    }
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
}

/* empirical frequencies against the (truncated) softmax */
static double freq_check(const float *logits, int32_t V, sampler_params p, int32_t n, uint64_t seed,
                         const double *want, double *tol_out) {
    float scratch[64];
    int32_t counts[32] = {0};
    loom_rng rng;
    rng_seed(&rng, seed);
    for (int32_t i = 0; i < n; i++) {
        int32_t id = sampler_sample(logits, V, NULL, p, &rng, scratch);
        assert_true(id >= 0 && id < V);
        counts[id]++;
    }
    double maxd = 0.0;
    for (int32_t v = 0; v < V; v++) {
        double d = fabs((double)counts[v] / n - want[v]);
        if (d > maxd) maxd = d;
    }
    /* 5 standard deviations of a frequency with p = 1/2 */
    *tol_out = 5.0 * sqrt(0.25 / n);
    return maxd;
}

static void test_sampler_frequencies(void **state) {
    (void)state;
    enum { V = 6, N = 200000 };
    const float logits[V] = {1.0f, 0.5f, -0.3f, 2.0f, 0.0f, -1.5f};
    double want[V], tol, d;
    /* temp 1: softmax */
    double z = 0.0;
    for (int v = 0; v < V; v++) z += exp(logits[v]);
    for (int v = 0; v < V; v++) want[v] = exp(logits[v]) / z;
    d = freq_check(logits, V, (sampler_params){.temp = 1.0f, .top_k = 0, .top_p = 1.0f}, N, 5, want, &tol);
    printf("sampler temp 1: max |freq - softmax| %.4f over %d draws (tol %.4f)\n", d, N, tol);
    assert_true(d <= tol);
    /* temp 2: softmax(logits / 2) */
    z = 0.0;
    for (int v = 0; v < V; v++) z += exp(logits[v] / 2.0);
    for (int v = 0; v < V; v++) want[v] = exp(logits[v] / 2.0) / z;
    d = freq_check(logits, V, (sampler_params){.temp = 2.0f, .top_k = 0, .top_p = 1.0f}, N, 6, want, &tol);
    printf("sampler temp 2: max |freq - softmax(l/2)| %.4f (tol %.4f)\n", d, tol);
    assert_true(d <= tol);
    /* top_k 2: ids 3 and 0 renormalized */
    memset(want, 0, sizeof want);
    z = exp(2.0) + exp(1.0);
    want[3] = exp(2.0) / z;
    want[0] = exp(1.0) / z;
    d = freq_check(logits, V, (sampler_params){.temp = 1.0f, .top_k = 2, .top_p = 1.0f}, N, 7, want, &tol);
    printf("sampler top_k 2: max |freq - truncated softmax| %.4f (tol %.4f)\n", d, tol);
    assert_true(d <= tol);
    /* top_p 0.7: the smallest prefix (by probability) whose mass reaches 0.7 */
    z = 0.0;
    for (int v = 0; v < V; v++) z += exp(logits[v]);
    const int order[V] = {3, 0, 1, 4, 2, 5};
    double acc = 0.0, kept = 0.0;
    int nkeep = 0;
    while (nkeep < V) {
        acc += exp(logits[order[nkeep]]) / z;
        nkeep++;
        if (acc >= 0.7) break;
    }
    memset(want, 0, sizeof want);
    for (int i = 0; i < nkeep; i++) kept += exp(logits[order[i]]);
    for (int i = 0; i < nkeep; i++) want[order[i]] = exp(logits[order[i]]) / kept;
    d = freq_check(logits, V, (sampler_params){.temp = 1.0f, .top_k = 0, .top_p = 0.7f}, N, 8, want, &tol);
    printf("sampler top_p 0.7 (keeps %d ids): max |freq - nucleus softmax| %.4f (tol %.4f)\n", nkeep, d, tol);
    assert_int_equal(nkeep, 2); /* 0.539 + 0.198 >= 0.7 */
    assert_true(d <= tol);
}

/* ---- learning-rate schedule and gradient clipping ---- */

static void test_lr_schedule(void **state) {
    (void)state;
    const float lr_max = 1e-3f, lr_min = 1e-4f;
    const int64_t warmup = 10, total = 110;
    /* warmup: linear in step, reaching lr_max at its last step */
    for (int64_t s = 0; s < warmup; s++) {
        float want = lr_max * (float)(s + 1) / (float)warmup;
        assert_float_equal(lr_schedule(s, warmup, total, lr_max, lr_min), want, 1e-9);
    }
    assert_float_equal(lr_schedule(warmup - 1, warmup, total, lr_max, lr_min), lr_max, 1e-9);
    assert_float_equal(lr_schedule(warmup, warmup, total, lr_max, lr_min), lr_max, 1e-9);
    /* cosine: halfway is the mean, the end is lr_min, decreasing in between */
    assert_float_equal(lr_schedule(warmup + 50, warmup, total, lr_max, lr_min), 0.5f * (lr_max + lr_min),
                       1e-8);
    assert_float_equal(lr_schedule(total, warmup, total, lr_max, lr_min), lr_min, 1e-9);
    assert_float_equal(lr_schedule(total + 100, warmup, total, lr_max, lr_min), lr_min, 1e-9);
    float prev = lr_schedule(warmup, warmup, total, lr_max, lr_min);
    for (int64_t s = warmup + 1; s <= total; s++) {
        float lr = lr_schedule(s, warmup, total, lr_max, lr_min);
        assert_true(lr <= prev);
        assert_true(lr >= lr_min && lr <= lr_max);
        prev = lr;
    }
    /* a quarter of the way: lr_min + (max - min) * (1 + cos(pi/4)) / 2 */
    double q = lr_min + (lr_max - lr_min) * 0.5 * (1.0 + cos(3.141592653589793 / 4.0));
    assert_float_equal(lr_schedule(warmup + 25, warmup, total, lr_max, lr_min), q, 1e-8);
    /* no warmup: starts at lr_max */
    assert_float_equal(lr_schedule(0, 0, 100, lr_max, lr_min), lr_max, 1e-9);
    assert_float_equal(lr_schedule(100, 0, 100, lr_max, lr_min), lr_min, 1e-9);
    /* warmup as long as the run: the last step is lr_max, then lr_min */
    assert_float_equal(lr_schedule(9, 10, 10, lr_max, lr_min), lr_max, 1e-9);
    assert_float_equal(lr_schedule(10, 10, 10, lr_max, lr_min), lr_min, 1e-9);
}

static void test_grad_clip(void **state) {
    (void)state;
    enum { N = 1003 };
    float *g = xmalloc(N * sizeof(float)), *orig = xmalloc(N * sizeof(float));
    loom_rng rng;
    rng_seed(&rng, 9);
    fill_uniform(g, N, &rng);
    double want = 0.0;
    for (int i = 0; i < N; i++) want += (double)g[i] * g[i];
    want = sqrt(want);
    double norm = grad_global_norm(g, N);
    printf("grad_global_norm: %.9g vs double reference %.9g (diff %.3g, tol 1e-9 relative)\n", norm, want,
           fabs(norm - want));
    assert_true(fabs(norm - want) <= 1e-9 * want);
    /* clipping: the returned norm is the one before, the new norm max_norm */
    memcpy(orig, g, N * sizeof(float));
    const float max_norm = 1.0f;
    double before = grad_clip(g, N, max_norm);
    double after = grad_global_norm(g, N);
    printf("grad_clip: norm %.6g -> %.9g (max_norm %g, tol 1e-5)\n", before, after, (double)max_norm);
    assert_true(fabs(before - want) <= 1e-9 * want);
    assert_true(fabs(after - max_norm) <= 1e-5);
    /* same direction: g = orig * coef for one coef */
    double coef = max_norm / (want + 1e-6);
    for (int i = 0; i < N; i++) assert_float_equal(g[i], orig[i] * coef, 1e-7);
    /* below the limit: untouched, bit for bit */
    memcpy(orig, g, N * sizeof(float));
    for (int i = 0; i < N; i++) g[i] *= 0.5f;
    memcpy(orig, g, N * sizeof(float));
    double small = grad_clip(g, N, max_norm);
    assert_true(small < max_norm);
    assert_memory_equal(g, orig, N * sizeof(float));
    /* max_norm <= 0 disables clipping */
    for (int i = 0; i < N; i++) g[i] *= 100.0f;
    memcpy(orig, g, N * sizeof(float));
    assert_true(grad_clip(g, N, 0.0f) > 10.0);
    assert_memory_equal(g, orig, N * sizeof(float));
    /* tiny sizes (fewer elements than the norm's chunks) and zero */
    float three[3] = {3.0f, 0.0f, 4.0f};
    assert_float_equal(grad_global_norm(three, 3), 5.0, 1e-12);
    assert_float_equal(grad_clip(three, 3, 1.0f), 5.0, 1e-12);
    assert_float_equal(three[0], 0.6f, 1e-6);
    assert_float_equal(three[2], 0.8f, 1e-6);
    assert_float_equal(grad_global_norm(three, 0), 0.0, 0.0);
    free(g);
    free(orig);
}

/* ---- AdamW: one step by hand ---- */

static void test_adamw_step(void **state) {
    (void)state;
    loom_error err = {{0}};
    param_table t = {0};
    int64_t s2[2] = {3, 5}, s1[1] = {4};
    assert_int_equal(params_add(&t, "w", 2, s2, 1, &err), 0);
    assert_int_equal(params_add(&t, "norm", 1, s1, 0, &err), 0);
    float *p = floats_alloc(t.total), *g = floats_alloc(t.total), *m = floats_alloc(t.total),
          *v = floats_alloc(t.total), *p0 = floats_alloc(t.total);
    assert_non_null(p);
    assert_non_null(g);
    assert_non_null(m);
    assert_non_null(v);
    assert_non_null(p0);
    loom_rng rng;
    rng_seed(&rng, 4);
    fill_uniform(p, t.total, &rng);
    memcpy(p0, p, t.total * sizeof(float));
    adamw_params ap = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    double md[64] = {0}, vd[64] = {0}, pd[64];
    for (size_t i = 0; i < t.total; i++) pd[i] = p[i];
    double maxd = 0.0;
    for (int64_t step = 1; step <= 3; step++) {
        fill_uniform(g, t.total, &rng);
        adamw_step(&t, p, g, m, v, ap, step);
        for (int32_t ti = 0; ti < t.n; ti++) {
            const param_info *pi = &t.info[ti];
            for (size_t j = pi->offset; j < pi->offset + pi->numel; j++) {
                md[j] = ap.beta1 * md[j] + (1 - ap.beta1) * g[j];
                vd[j] = ap.beta2 * vd[j] + (1 - ap.beta2) * (double)g[j] * g[j];
                double mh = md[j] / (1 - pow(ap.beta1, (double)step));
                double vh = vd[j] / (1 - pow(ap.beta2, (double)step));
                if (pi->decay) pd[j] -= ap.lr * ap.weight_decay * pd[j];
                pd[j] -= ap.lr * mh / (sqrt(vh) + ap.eps);
            }
        }
    }
    for (int32_t ti = 0; ti < t.n; ti++) {
        const param_info *pi = &t.info[ti];
        for (size_t j = pi->offset; j < pi->offset + pi->numel; j++) {
            double d = fabs(p[j] - pd[j]);
            if (d > maxd) maxd = d;
        }
    }
    printf("adamw: 3 steps vs double reference (decay on the matrix only): max |diff| %.3g (tol 1e-6)\n", maxd);
    assert_true(maxd <= 1e-6);
    free(p);
    free(g);
    free(m);
    free(v);
    free(p0);
    params_free(&t);
}

/* ---- config validation and JSON round trip ---- */

static void test_config_json(void **state) {
    (void)state;
    loom_error err = {{0}};
    decoder_config c = tiny_config(300, 32, 2, 4, 2, 48, 64, 5, 0);
    char *j = decoder_config_to_json(&c);
    assert_non_null(j);
    decoder_config d;
    assert_int_equal(decoder_config_from_json(j, &d, &err), 0);
    assert_memory_equal(&c, &d, sizeof c);
    free(j);
    decoder_config bad = c;
    bad.n_kv_heads = 3;
    assert_int_equal(decoder_config_check(&bad, &err), -1);
    assert_non_null(strstr(err.msg, "n_kv_heads"));
    bad = c;
    bad.n_heads = 32; /* head dim 1: odd */
    assert_int_equal(decoder_config_check(&bad, &err), -1);
    assert_int_equal(decoder_config_from_json("{\"vocab_size\": 1.5}", &d, &err), -1);
    assert_int_equal(decoder_config_from_json("[]", &d, &err), -1);
    /* parameter count = the table's sum of tensor sizes */
    loom_model *m = model_new(&c, NULL, &err);
    assert_non_null(m);
    size_t sum = 0;
    for (int32_t i = 0; i < m->table.n; i++) sum += m->table.info[i].numel;
    assert_int_equal((int64_t)sum, decoder_param_count(&c));
    model_free(m);
}

int main(void) {
    /* One thread except where threads are the point (gemm, test_threads):
     * thousands of tiny parallel regions crawl on a loaded machine. */
    loom_threads_set(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_vs_ref),
        cmocka_unit_test(test_kv_cache_matches_forward),
        cmocka_unit_test(test_batched_steps),
        cmocka_unit_test(test_padding_invariance),
        cmocka_unit_test(test_threads_agree),
        cmocka_unit_test(test_backward_finite_differences),
        cmocka_unit_test(test_backward_accumulates),
        cmocka_unit_test(test_grow_layers),
        cmocka_unit_test(test_sampler_greedy_and_mask),
        cmocka_unit_test(test_sampler_seeded),
        cmocka_unit_test(test_sampler_frequencies),
        cmocka_unit_test(test_lr_schedule),
        cmocka_unit_test(test_grad_clip),
        cmocka_unit_test(test_adamw_step),
        cmocka_unit_test(test_config_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
