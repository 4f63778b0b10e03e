/* test_api.c: the public API, through include/loom.h alone.
 *
 * loom.h is included first and nothing else from loom, so this file also
 * proves the header compiles on its own as plain C11. The model files it
 * needs are written here by hand from docs/model-format.md (safetensors:
 * u64 header length, JSON header, little-endian F32 tensors), which checks
 * the loader against the documented format as well:
 *
 *   random.safetensors   a random tiny model: determinism, seeds, limits
 *   rigged.safetensors   weights chosen so greedy decoding is known exactly:
 *                        every layer is zero (the residual stream is the
 *                        embedding), and the LM head prefers, in order, an id
 *                        past the tokenizer, a special token, and then a
 *                        512-byte merge token "aaaa...": the allowed mask must
 *                        skip the first two, and each piece must arrive whole.
 */
#include "loom.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[1024];
static char g_random[1200], g_rigged[1200], g_html[1200], g_trunc[1200];

/* ---- the model config used by both files ---- */

enum { V = 300, C = 16, L = 2, H = 2, KVH = 1, F = 24, MAX_SEQ = 24, WINDOW = 0, TIED = 0 };
enum { HD = C / H, QD = H * HD, KD = KVH * HD };
enum { N_MERGES = 9, TOK_V = 288 + N_MERGES, LONG_ID = 288 + N_MERGES - 1, LONG_BYTES = 512 };
#define BYTE_ID(c) (32 + (unsigned char)(c))

/* ---- a hand-written safetensors file ---- */

typedef struct {
    const char *name;
    int ndim;
    int64_t shape[3];
    float *data;
} tensor_spec;

static int64_t numel(const tensor_spec *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

/* appends s as a JSON string body (quotes and backslashes escaped) */
static size_t json_escape(char *out, size_t o, const char *s) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') out[o++] = '\\';
        out[o++] = *s;
    }
    return o;
}

static void write_model(const char *path, tensor_spec *ts, int nt) {
    char config[512], tok[1024];
    snprintf(config, sizeof config,
             "{\"vocab_size\":%d,\"d_model\":%d,\"n_layers\":%d,\"n_heads\":%d,\"n_kv_heads\":%d,"
             "\"d_ff\":%d,\"max_seq\":%d,\"window\":%d,\"rope_theta\":10000.0,\"norm_eps\":1e-5,"
             "\"tie_embeddings\":%d}",
             V, C, L, H, KVH, F, MAX_SEQ, WINDOW, TIED);
    /* merges: a+a -> "aa" (288), then each token doubled: 289 is 4 a's ... 296 is 512 */
    size_t k = (size_t)snprintf(tok, sizeof tok,
                                "{\"type\":\"byte-bpe\",\"version\":1,\"n_special\":32,\"merges\":[[%d,%d]",
                                BYTE_ID('a'), BYTE_ID('a'));
    for (int i = 1; i < N_MERGES; i++) k += (size_t)snprintf(tok + k, sizeof tok - k, ",[%d,%d]", 287 + i, 287 + i);
    snprintf(tok + k, sizeof tok - k, "]}");

    char *hdr = malloc(1 << 16);
    assert_non_null(hdr);
    size_t o = 0;
    o += (size_t)sprintf(hdr + o, "{\"__metadata__\":{\"format\":\"loom-1\",\"config\":\"");
    o = json_escape(hdr, o, config);
    o += (size_t)sprintf(hdr + o, "\",\"tokenizer\":\"");
    o = json_escape(hdr, o, tok);
    o += (size_t)sprintf(hdr + o, "\"}");
    int64_t off = 0;
    for (int i = 0; i < nt; i++) {
        int64_t bytes = numel(&ts[i]) * 4;
        o += (size_t)sprintf(hdr + o, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", ts[i].name);
        for (int d = 0; d < ts[i].ndim; d++) o += (size_t)sprintf(hdr + o, "%s%lld", d ? "," : "", (long long)ts[i].shape[d]);
        o += (size_t)sprintf(hdr + o, "],\"data_offsets\":[%lld,%lld]}", (long long)off, (long long)(off + bytes));
        off += bytes;
    }
    hdr[o++] = '}';
    while ((8 + o) % 8) hdr[o++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot create %s", path);
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)o >> (8 * i));
    assert_int_equal(fwrite(len, 1, 8, f), 8);
    assert_int_equal(fwrite(hdr, 1, o, f), o);
    for (int i = 0; i < nt; i++) /* the host is little-endian (the loader insists) */
        assert_int_equal(fwrite(ts[i].data, 4, (size_t)numel(&ts[i]), f), (size_t)numel(&ts[i]));
    assert_int_equal(fclose(f), 0);
    free(hdr);
}

/* the decoder's tensors (docs/model-format.md), each filled by fill() */
static void build_model(const char *path, void (*fill)(const char *name, float *p, int64_t n)) {
    tensor_spec ts[] = {
        {"decoder.tok_emb", 2, {V, C}, NULL},        {"decoder.attn_norm", 2, {L, C}, NULL},
        {"decoder.wq", 3, {L, QD, C}, NULL},         {"decoder.wk", 3, {L, KD, C}, NULL},
        {"decoder.wv", 3, {L, KD, C}, NULL},         {"decoder.wo", 3, {L, C, QD}, NULL},
        {"decoder.mlp_norm", 2, {L, C}, NULL},       {"decoder.w_gate", 3, {L, F, C}, NULL},
        {"decoder.w_up", 3, {L, F, C}, NULL},        {"decoder.w_down", 3, {L, C, F}, NULL},
        {"decoder.final_norm", 1, {C}, NULL},        {"decoder.lm_head", 2, {V, C}, NULL},
    };
    int nt = (int)(sizeof ts / sizeof ts[0]);
    for (int i = 0; i < nt; i++) {
        ts[i].data = calloc((size_t)numel(&ts[i]), sizeof(float));
        assert_non_null(ts[i].data);
        fill(ts[i].name, ts[i].data, numel(&ts[i]));
    }
    write_model(path, ts, nt);
    for (int i = 0; i < nt; i++) free(ts[i].data);
}

static uint64_t g_lcg = 12345;
static float rand_normalish(void) { /* sum of uniforms: mean 0, std ~1 */
    float s = 0.0f;
    for (int i = 0; i < 4; i++) {
        g_lcg = g_lcg * 6364136223846793005ull + 1442695040888963407ull;
        s += (float)(g_lcg >> 40) / 16777216.0f - 0.5f;
    }
    return s * 1.7320508f;
}

static void fill_random(const char *name, float *p, int64_t n) {
    int norm = strstr(name, "norm") != NULL;
    float std = !strcmp(name, "decoder.tok_emb") ? 1.0f : 0.3f;
    for (int64_t i = 0; i < n; i++) p[i] = norm ? 1.0f : std * rand_normalish();
}

static void fill_rigged(const char *name, float *p, int64_t n) {
    if (strstr(name, "norm")) {
        for (int64_t i = 0; i < n; i++) p[i] = 1.0f;
    } else if (!strcmp(name, "decoder.tok_emb")) {
        for (int64_t v = 0; v < V; v++) p[v * C] = 1.0f; /* every token is e0 */
    } else if (!strcmp(name, "decoder.lm_head")) {
        p[(int64_t)(V - 1) * C] = 5.0f;  /* past the tokenizer: must never be chosen */
        p[(int64_t)4 * C] = 3.0f;        /* <img>, a special: must never be chosen */
        p[(int64_t)LONG_ID * C] = 1.0f;  /* the 512-byte token */
    }
    /* every layer matrix stays 0 */
}

/* ---- generation helpers ---- */

typedef struct {
    char *buf;
    size_t len, cap;
    int calls, stop_after;
} sink;

static int collect(const char *piece, size_t len, void *user) {
    sink *s = user;
    if (s->len + len + 1 > s->cap) {
        s->cap = (s->len + len + 1) * 2;
        s->buf = realloc(s->buf, s->cap);
        assert_non_null(s->buf);
    }
    memcpy(s->buf + s->len, piece, len);
    s->len += len;
    s->buf[s->len] = '\0';
    s->calls++;
    return s->stop_after && s->calls >= s->stop_after;
}

static int32_t gen(loom_context *ctx, const char *prompt, struct loom_sampling_params sp, sink *s) {
    memset(s, 0, sizeof *s);
    return loom_generate(ctx, prompt, strlen(prompt), sp, collect, s);
}

static loom_context *open_ok(const char *path) {
    char err[512] = "";
    struct loom_context_params cp = loom_context_default_params();
    cp.n_threads = 1; /* tiny matrices: threads only add barriers */
    loom_context *ctx = loom_init_from_file(path, cp, err, sizeof err);
    if (!ctx) fail_msg("loom_init_from_file %s: %s", path, err);
    return ctx;
}

/* ---- tests ---- */

static void expect_open_fails(const char *path, const char *needle) {
    char err[512];
    memset(err, 'x', sizeof err);
    struct loom_context_params cp = loom_context_default_params();
    cp.n_threads = 1;
    assert_null(loom_init_from_file(path, cp, err, sizeof err));
    assert_non_null(memchr(err, '\0', sizeof err));
    assert_true(strlen(err) > 0);
    if (!strstr(err, path)) fail_msg("message does not name %s: '%s'", path, err);
    if (needle && !strstr(err, needle)) fail_msg("expected '%s' in '%s'", needle, err);
    printf("rejected: %s\n", err);
    assert_null(loom_init_from_file(path, cp, NULL, 0)); /* no buffer: still fails cleanly */
    char tiny[8];
    assert_null(loom_init_from_file(path, cp, tiny, sizeof tiny)); /* message truncated, terminated */
    assert_true(strlen(tiny) < sizeof tiny);
}

static void test_init_failures(void **state) {
    (void)state;
    char missing[1200];
    snprintf(missing, sizeof missing, "%s/missing.safetensors", g_dir);
    expect_open_fails(missing, "No such file");
    expect_open_fails(g_html, NULL);
    expect_open_fails(g_trunc, NULL);
    expect_open_fails(g_dir, NULL); /* a directory */
}

static void test_model_info(void **state) {
    (void)state;
    loom_context *ctx = open_ok(g_random);
    struct loom_model_info mi = loom_get_model_info(ctx);
    assert_int_equal(mi.vocab_size, V);
    assert_int_equal(mi.d_model, C);
    assert_int_equal(mi.n_layers, L);
    assert_int_equal(mi.n_heads, H);
    assert_int_equal(mi.n_kv_heads, KVH);
    assert_int_equal(mi.d_ff, F);
    assert_int_equal(mi.max_seq, MAX_SEQ);
    assert_int_equal(mi.window, WINDOW);
    assert_int_equal(mi.tie_embeddings, TIED);
    int64_t per_layer = 2 * C + QD * C + 2 * KD * C + C * QD + 3 * F * C;
    assert_int_equal(mi.n_params, (int64_t)V * C + L * per_layer + C + (int64_t)V * C);
    loom_free(ctx);
    loom_free(NULL);
}

static void test_determinism(void **state) {
    (void)state;
    loom_context *ctx = open_ok(g_random);
    struct loom_sampling_params sp = loom_sampling_default_params();
    sp.n_predict = 12;
    sp.seed = 7;
    sink a, b, c;
    int32_t na = gen(ctx, "a a aa", sp, &a);
    int32_t nb = gen(ctx, "a a aa", sp, &b);
    printf("sampled (seed 7): %d tokens, %zu bytes, twice\n", na, a.len);
    assert_true(na >= 0 && na <= sp.n_predict);
    assert_int_equal(na, nb);
    assert_int_equal(a.calls, na); /* one piece per token (no specials reach the callback) */
    assert_int_equal(a.len, b.len);
    if (a.len) assert_memory_equal(a.buf, b.buf, a.len);
    assert_string_equal(loom_last_error(ctx), "");
    /* a second context on the same file agrees */
    loom_context *ctx2 = open_ok(g_random);
    int32_t nc = gen(ctx2, "a a aa", sp, &c);
    assert_int_equal(nc, na);
    assert_int_equal(c.len, a.len);
    if (a.len) assert_memory_equal(a.buf, c.buf, a.len);
    free(a.buf);
    free(b.buf);
    free(c.buf);
    /* greedy: deterministic and independent of the seed */
    sp.temp = 0.0f;
    sp.seed = 1;
    na = gen(ctx, "ab", sp, &a);
    sp.seed = 999;
    nb = gen(ctx2, "ab", sp, &b);
    assert_int_equal(na, nb);
    assert_int_equal(a.len, b.len);
    if (a.len) assert_memory_equal(a.buf, b.buf, a.len);
    printf("greedy: %d tokens, same for seeds 1 and 999\n", na);
    free(a.buf);
    free(b.buf);
    loom_free(ctx2);
    loom_free(ctx);
}

static void test_limits_and_errors(void **state) {
    (void)state;
    loom_context *ctx = open_ok(g_random);
    struct loom_sampling_params sp = loom_sampling_default_params();
    sink s;
    /* the context holds MAX_SEQ - 1 prompt tokens after <bos>; "b" never merges */
    char prompt[64];
    memset(prompt, 'b', sizeof prompt);
    prompt[MAX_SEQ] = '\0'; /* MAX_SEQ tokens: one too many */
    assert_int_equal(gen(ctx, prompt, sp, &s), -1);
    assert_int_equal(s.calls, 0);
    printf("too long: %s\n", loom_last_error(ctx));
    assert_non_null(strstr(loom_last_error(ctx), "context"));
    prompt[60] = '\0';
    assert_int_equal(gen(ctx, prompt, sp, &s), -1);
    /* exactly full: one token can still be predicted from the last position */
    prompt[MAX_SEQ - 1] = '\0';
    sp.temp = 0.0f;
    int32_t n = gen(ctx, prompt, sp, &s);
    assert_true(n == 0 || n == 1);
    assert_string_equal(loom_last_error(ctx), "");
    free(s.buf);
    /* n_predict 0: nothing; negative n_predict or temperature: an error */
    sp.n_predict = 0;
    assert_int_equal(gen(ctx, "ab", sp, &s), 0);
    assert_int_equal(s.calls, 0);
    sp.n_predict = -1;
    assert_int_equal(gen(ctx, "ab", sp, &s), -1);
    assert_true(strlen(loom_last_error(ctx)) > 0);
    sp.n_predict = 4;
    sp.temp = -1.0f;
    assert_int_equal(gen(ctx, "ab", sp, &s), -1);
    assert_true(strlen(loom_last_error(ctx)) > 0);
    sp.temp = NAN;
    assert_int_equal(gen(ctx, "ab", sp, &s), -1);
    /* the context is still usable after errors; empty prompt is fine */
    sp.temp = 0.8f;
    assert_true(gen(ctx, "", sp, &s) >= 0);
    free(s.buf);
    /* NUL bytes in the prompt are bytes */
    assert_true(loom_generate(ctx, "a\0b", 3, sp, NULL, NULL) >= 0);
    loom_free(ctx);
}

static void test_rigged_greedy(void **state) {
    (void)state;
    loom_context *ctx = open_ok(g_rigged);
    struct loom_sampling_params sp = loom_sampling_default_params();
    sp.temp = 0.0f;
    sp.n_predict = 3;
    sink s;
    int32_t n = gen(ctx, "hi", sp, &s);
    assert_int_equal(n, 3);
    assert_int_equal(s.calls, 3);
    /* three whole 512-byte tokens */
    printf("rigged greedy: %d tokens, %zu bytes (want %d)\n", n, s.len, 3 * LONG_BYTES);
    assert_int_equal(s.len, 3 * LONG_BYTES);
    for (size_t i = 0; i < s.len; i++)
        if (s.buf[i] != 'a') fail_msg("byte %zu is 0x%02x, want 'a'", i, (unsigned char)s.buf[i]);
    free(s.buf);
    /* until the context is full: prompt <bos> h i is 3 positions, so
     * MAX_SEQ - 3 + 1 predictions */
    sp.n_predict = 1000;
    n = gen(ctx, "hi", sp, &s);
    assert_int_equal(n, MAX_SEQ - 3 + 1);
    assert_int_equal(s.len, (size_t)n * LONG_BYTES);
    free(s.buf);
    /* the callback stops generation */
    memset(&s, 0, sizeof s);
    s.stop_after = 2;
    n = loom_generate(ctx, "hi", 2, sp, collect, &s);
    assert_int_equal(n, 2);
    assert_int_equal(s.calls, 2);
    free(s.buf);
    /* top_k 1 at temperature 1 is greedy over the allowed ids */
    sp.temp = 1.0f;
    sp.top_k = 1;
    sp.n_predict = 4;
    n = gen(ctx, "hi", sp, &s);
    assert_int_equal(n, 4);
    assert_int_equal(s.len, 4 * LONG_BYTES);
    assert_true(s.buf[0] == 'a' && s.buf[s.len - 1] == 'a');
    free(s.buf);
    loom_free(ctx);
}

/* ---- fixtures ---- */

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    char path[2048];
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        remove(path);
    }
    closedir(d);
    rmdir(dir);
}

static int setup(void **state) {
    (void)state;
    const char *base = getenv("LOOM_TEST_TMP");
    snprintf(g_dir, sizeof g_dir, "%s/api_test_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(g_dir)) return -1;
    snprintf(g_random, sizeof g_random, "%s/random.safetensors", g_dir);
    snprintf(g_rigged, sizeof g_rigged, "%s/rigged.safetensors", g_dir);
    snprintf(g_html, sizeof g_html, "%s/page.safetensors", g_dir);
    snprintf(g_trunc, sizeof g_trunc, "%s/truncated.safetensors", g_dir);
    build_model(g_random, fill_random);
    build_model(g_rigged, fill_rigged);
    FILE *f = fopen(g_html, "wb");
    if (!f) return -1;
    fputs("<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
          "<body><h1>Not Found</h1></body></html>\n", f);
    fclose(f);
    /* the first half of a valid model */
    FILE *in = fopen(g_random, "rb");
    if (!in) return -1;
    fseek(in, 0, SEEK_END);
    long n = ftell(in);
    fseek(in, 0, SEEK_SET);
    char *buf = malloc((size_t)n);
    if (!buf || fread(buf, 1, (size_t)n, in) != (size_t)n) return -1;
    fclose(in);
    FILE *out = fopen(g_trunc, "wb");
    if (!out) return -1;
    fwrite(buf, 1, (size_t)n / 2, out);
    fclose(out);
    free(buf);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    remove_tree(g_dir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_failures),
        cmocka_unit_test(test_model_info),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_limits_and_errors),
        cmocka_unit_test(test_rigged_greedy),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
