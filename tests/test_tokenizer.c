/* test_tokenizer.c: byte-level BPE tokenizer tests.
 *
 * Exact comparisons throughout: round trips, a naive reference trainer and
 * encoder that the fast ones must agree with id for id, hostile JSON.
 * Set LOOM_TEST_NO_TIMING=1 (e.g. under valgrind) to skip the time limit of
 * the training speed test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/error.h"
#include "fusion/tokenizer.h"

/* ---- helpers ---- */

static uint64_t rng_next(uint64_t *s) {  // xorshift64*
    *s ^= *s >> 12; *s ^= *s << 25; *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dULL;
}

static size_t rng_below(uint64_t *s, size_t n) { return (size_t)(rng_next(s) % n); }

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) fail_msg("test_tokenizer: out of memory (%zu bytes)", n);
    return p;
}

static const char *const words[] = {
    "the", "of", "and", "to", "in", "is", "was", "that", "for", "it", "with", "as", "his", "on",
    "be", "at", "by", "had", "this", "not", "but", "from", "have", "they", "which", "one", "you",
    "were", "her", "all", "she", "there", "would", "their", "we", "him", "been", "has", "when",
    "who", "will", "more", "no", "if", "out", "so", "said", "what", "up", "its", "about", "into",
    "than", "them", "can", "only", "other", "new", "some", "could", "time", "these", "two", "may",
    "then", "do", "first", "any", "my", "now", "such", "like", "our", "over", "man", "me", "even",
    "most", "made", "after", "also", "did", "many", "before", "must", "through", "back", "years",
    "where", "much", "your", "way", "well", "down", "should", "because", "each", "just", "those",
    "people", "how", "too", "little", "state", "good", "very", "make", "world", "still", "own",
    "see", "men", "work", "long", "get", "here", "between", "both", "life", "being", "under",
    "never", "day", "same", "another", "know", "while", "last", "might", "us", "great", "old",
    "year", "off", "come", "since", "against", "go", "came", "right", "used", "take", "three",
    "transformer", "attention", "image", "audio", "token", "model", "caf\xc3\xa9",
    "na\xc3\xafve", "\xe6\x97\xa5\xe6\x9c\xac", "gr\xc3\xbc\xc3\x9f",
};
#define N_WORDS (sizeof words / sizeof words[0])

// English-like text of about target bytes: sentences, punctuation, numbers, newlines.
static char *make_english(size_t target, uint64_t seed, size_t *len) {
    char *buf = xmalloc(target + 64);
    size_t n = 0;
    uint64_t s = seed;
    int start = 1;
    while (n < target) {
        const char *w = words[rng_below(&s, N_WORDS)];
        size_t wl = strlen(w);
        if (n + wl + 8 > target + 64) break;
        if (!start) buf[n++] = ' ';
        memcpy(buf + n, w, wl);
        if (start && w[0] >= 'a' && w[0] <= 'z') buf[n] = (char)(w[0] - 'a' + 'A');
        n += wl;
        start = 0;
        size_t r = rng_below(&s, 100);
        if (r < 3) n += (size_t)sprintf(buf + n, " %u", (unsigned)rng_below(&s, 2000));
        else if (r < 8) buf[n++] = ',';
        else if (r < 16) {
            buf[n++] = rng_below(&s, 8) == 0 ? '?' : '.';
            if (rng_below(&s, 5) == 0) buf[n++] = '\n';
            start = 1;
        }
    }
    *len = n;
    return buf;
}

static void random_bytes(uint64_t *s, char *buf, size_t n) {
    for (size_t i = 0; i < n; i++) {
        size_t r = rng_below(s, 10);
        if (r == 0) buf[i] = 0;
        else if (r == 1) buf[i] = (char)0xff;
        else if (r == 2) buf[i] = (char)(0x80 + rng_below(s, 64));  // stray continuation bytes
        else if (r == 3) buf[i] = (char)(0xc0 + rng_below(s, 64));  // truncated lead bytes
        else if (r < 6) buf[i] = " \n\t\r"[rng_below(s, 4)];
        else if (r < 9) buf[i] = (char)('a' + rng_below(s, 26));
        else buf[i] = (char)rng_below(s, 256);
    }
}

// Encodes with exact sizing; fails the test on error. Returns malloc'd ids.
static int32_t *encode_all(const tokenizer *t, const char *text, size_t len, size_t *n) {
    loom_error err = {{0}};
    size_t need = 0;
    int64_t r = tokenizer_encode(t, text, len, NULL, 0, &need, &err);
    if (r != -1 && !(r == 0 && len == 0)) fail_msg("size query returned %lld", (long long)r);
    int32_t *ids = xmalloc(need * sizeof *ids);
    r = tokenizer_encode(t, text, len, ids, need, NULL, &err);
    if (r < 0) fail_msg("tokenizer_encode: %s", err.msg);
    if ((size_t)r != need) fail_msg("encode wrote %lld ids, size query said %zu", (long long)r, need);
    *n = need;
    return ids;
}

// Asserts decode(encode(text)) == text byte for byte; returns the id count.
static size_t check_roundtrip(const tokenizer *t, const char *text, size_t len) {
    size_t n, out_len = 0;
    int32_t *ids = encode_all(t, text, len, &n);
    int32_t V = tokenizer_vocab_size(t);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < TOKENIZER_BYTE_BASE || ids[i] >= V)
            fail_msg("id %d at %zu out of [%d, %d) (text length %zu)", (int)ids[i], i,
                     TOKENIZER_BYTE_BASE, (int)V, len);
    loom_error err = {{0}};
    char *back = tokenizer_decode(t, ids, n, 0, &out_len, &err);
    if (!back) fail_msg("tokenizer_decode: %s", err.msg);
    if (out_len != len) fail_msg("round trip length %zu != %zu", out_len, len);
    for (size_t i = 0; i < len; i++)
        if (back[i] != text[i])
            fail_msg("round trip mismatch at byte %zu of %zu: got 0x%02x want 0x%02x", i, len,
                     (unsigned char)back[i], (unsigned char)text[i]);
    assert_int_equal(back[len], 0);
    free(back);
    free(ids);
    return n;
}

static tokenizer *train_or_die(const char *const *docs, const size_t *lens, size_t n, int32_t vocab) {
    loom_error err = {{0}};
    tokenizer_train_params p = tokenizer_train_default_params();
    p.vocab_size = vocab;
    tokenizer *t = tokenizer_train(docs, lens, n, p, &err);
    if (!t) fail_msg("tokenizer_train: %s", err.msg);
    return t;
}

/* Shared fixture: a tokenizer trained on ~300 KB of English-like text plus
 * a little binary noise. */
typedef struct {
    tokenizer *tok;
    char *corpus;
    size_t corpus_len;
} fixture;

static int group_setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    f->corpus = make_english(300000, 42, &f->corpus_len);
    uint64_t s = 7;
    char noise[4000];
    random_bytes(&s, noise, sizeof noise);
    const char *docs[2] = {f->corpus, noise};
    size_t lens[2] = {f->corpus_len, sizeof noise};
    loom_error err = {{0}};
    tokenizer_train_params p = tokenizer_train_default_params();
    p.vocab_size = 1024;
    f->tok = tokenizer_train(docs, lens, 2, p, &err);
    if (!f->tok) {
        fprintf(stderr, "group_setup: tokenizer_train: %s\n", err.msg);
        free(f->corpus);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int group_teardown(void **state) {
    fixture *f = *state;
    tokenizer_free(f->tok);
    free(f->corpus);
    free(f);
    return 0;
}

/* ---- tests ---- */

static void test_special_names(void **state) {
    (void)state;
    const char *want[] = {"<pad>", "<bos>", "<eos>", "<sep>", "<img>", "</img>",
                          "<row>", "<aud>", "</aud>", "<boi>", "<eoi>"};
    for (int i = 0; i < 11; i++) assert_string_equal(tokenizer_special_name(i), want[i]);
    assert_int_equal(TOKEN_EOI, 10);
    assert_int_equal(TOKENIZER_N_SPECIAL, 32);
    assert_int_equal(TOKENIZER_BYTE_BASE, 32);
    assert_string_equal(tokenizer_special_name(11), "<reserved11>");
    assert_string_equal(tokenizer_special_name(31), "<reserved31>");
    for (int i = 0; i < 32; i++)
        assert_true(strlen(tokenizer_special_name(i)) < TOKENIZER_MAX_SPECIAL_NAME);
    assert_null(tokenizer_special_name(32));
    assert_null(tokenizer_special_name(-1));
}

static void test_no_merges_is_bytes(void **state) {
    (void)state;
    loom_error err = {{0}};
    tokenizer *t = tokenizer_from_merges(NULL, 0, &err);
    if (!t) fail_msg("from_merges(0): %s", err.msg);
    assert_int_equal(tokenizer_vocab_size(t), 288);
    const char text[] = "a\0\xff<img>";
    size_t n;
    int32_t *ids = encode_all(t, text, sizeof text - 1, &n);
    assert_int_equal(n, sizeof text - 1);
    for (size_t i = 0; i < n; i++) assert_int_equal(ids[i], 32 + (unsigned char)text[i]);
    free(ids);
    check_roundtrip(t, "", 0);
    tokenizer_free(t);
}

static void test_roundtrip_random(void **state) {
    fixture *f = *state;
    uint64_t s = 12345;
    size_t max_len = 6000, total_bytes = 0, total_ids = 0;
    char *buf = xmalloc(max_len);
    for (int it = 0; it < 300; it++) {
        size_t len = it < 10 ? (size_t)it : rng_below(&s, max_len);
        if (it % 3 == 0) {
            random_bytes(&s, buf, len);
        } else {  // English with binary spliced in
            size_t off = rng_below(&s, f->corpus_len - max_len);
            memcpy(buf, f->corpus + off, len);
            for (int k = 0; k < 5 && len > 0; k++) buf[rng_below(&s, len)] = (char)rng_below(&s, 256);
        }
        total_ids += check_roundtrip(f->tok, buf, len);
        total_bytes += len;
    }
    // a run longer than TOKENIZER_MAX_CHUNK_BYTES of each class
    size_t big = 3 * TOKENIZER_MAX_CHUNK_BYTES + 17;
    char *run = xmalloc(big);
    const char fills[] = {'a', ' ', '7', '.', '\0', (char)0xff, '\n'};
    for (size_t k = 0; k < sizeof fills; k++) {
        memset(run, fills[k], big);
        check_roundtrip(f->tok, run, big);
    }
    free(run);
    free(buf);
    print_message("    random round trips: %zu bytes -> %zu ids\n", total_bytes, total_ids);
}

static void test_special_literals(void **state) {
    fixture *f = *state;
    char text[1024];
    size_t len = 0;
    len += (size_t)sprintf(text, "<img><bos>");
    for (int i = 0; i < TOKENIZER_N_SPECIAL; i++)
        len += (size_t)sprintf(text + len, " %s", tokenizer_special_name(i));
    size_t n;
    int32_t *ids = encode_all(f->tok, text, len, &n);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < TOKENIZER_N_SPECIAL) fail_msg("literal text encoded to special id %d at %zu", (int)ids[i], i);
    free(ids);
    check_roundtrip(f->tok, text, len);
    ids = encode_all(f->tok, "<img><bos>", 10, &n);
    for (size_t i = 0; i < n; i++) assert_true(ids[i] >= TOKENIZER_N_SPECIAL);
    free(ids);
}

static void test_encode_deterministic(void **state) {
    fixture *f = *state;
    size_t len = 50000, n1, n2;
    int32_t *a = encode_all(f->tok, f->corpus, len, &n1);
    int32_t *b = encode_all(f->tok, f->corpus, len, &n2);
    assert_int_equal(n1, n2);
    for (size_t i = 0; i < n1; i++)
        if (a[i] != b[i]) fail_msg("encode differs at %zu: %d vs %d", i, (int)a[i], (int)b[i]);
    free(a);
    free(b);
}

static void test_train_deterministic(void **state) {
    fixture *f = *state;
    size_t len = 100000;
    char *copy = xmalloc(len);  // same bytes at a different address
    memcpy(copy, f->corpus, len);
    const char *d1[1] = {f->corpus}, *d2[1] = {copy};
    size_t lens[1] = {len};
    tokenizer *t1 = train_or_die(d1, lens, 1, 700);
    tokenizer *t2 = train_or_die(d2, lens, 1, 700);
    loom_error err = {{0}};
    char *j1 = tokenizer_to_json(t1, &err), *j2 = tokenizer_to_json(t2, &err);
    if (!j1 || !j2) fail_msg("to_json: %s", err.msg);
    if (strcmp(j1, j2) != 0) {
        size_t i = 0;
        while (j1[i] == j2[i]) i++;
        fail_msg("training not deterministic: JSON differs at byte %zu", i);
    }
    assert_int_equal(tokenizer_vocab_size(t1), 700);
    free(j1); free(j2); free(copy);
    tokenizer_free(t1);
    tokenizer_free(t2);
}

static void test_json_roundtrip(void **state) {
    fixture *f = *state;
    loom_error err = {{0}};
    char *json = tokenizer_to_json(f->tok, &err);
    if (!json) fail_msg("to_json: %s", err.msg);
    assert_non_null(strstr(json, "\"type\":\"byte-bpe\""));
    tokenizer *t2 = tokenizer_from_json(json, strlen(json), &err);
    if (!t2) fail_msg("from_json of to_json output: %s", err.msg);
    assert_int_equal(tokenizer_vocab_size(t2), tokenizer_vocab_size(f->tok));
    char *json2 = tokenizer_to_json(t2, &err);
    assert_string_equal(json, json2);
    size_t len = 80000, n1, n2;
    int32_t *a = encode_all(f->tok, f->corpus + 1000, len, &n1);
    int32_t *b = encode_all(t2, f->corpus + 1000, len, &n2);
    assert_int_equal(n1, n2);
    for (size_t i = 0; i < n1; i++)
        if (a[i] != b[i]) fail_msg("reloaded tokenizer differs at id %zu: %d vs %d", i, (int)a[i], (int)b[i]);
    // pretty-printed JSON with an extra key and 1.0 for 1 is accepted too
    const char *pretty = "{\n  \"type\": \"byte-bpe\", \"version\": 1.0, \"n_special\": 32,\n"
                         "  \"comment\": \"x\", \"merges\": [ [ 32, 33 ],\n [288, 288] ]\n}\n";
    tokenizer *t3 = tokenizer_from_json(pretty, strlen(pretty), &err);
    if (!t3) fail_msg("pretty JSON rejected: %s", err.msg);
    assert_int_equal(tokenizer_vocab_size(t3), 290);
    tokenizer_free(t3);
    free(a); free(b); free(json); free(json2);
    tokenizer_free(t2);
}

static void expect_reject(const char *json, size_t len, const char *what) {
    loom_error err = {{0}};
    char *copy = xmalloc(len);  // exactly len bytes, no terminator: over-reads show in valgrind/ASan
    memcpy(copy, json, len);
    tokenizer *t = tokenizer_from_json(copy, len, &err);
    free(copy);
    if (t) {
        tokenizer_free(t);
        fail_msg("from_json accepted bad input (%s)", what);
    }
    if (err.msg[0] == '\0') fail_msg("from_json rejected %s without a message", what);
}

static void test_json_rejects(void **state) {
    (void)state;
#define HEAD "{\"type\":\"byte-bpe\",\"version\":1,\"n_special\":32,\"merges\":"
    static const char *const bad[] = {
        "",
        "{",
        "null",
        "123",
        "[]",
        "\"byte-bpe\"",
        HEAD "[[32,32]",
        HEAD "[[32,32]]",  // truncated below by length instead
        "{\"type\":\"bpe\",\"version\":1,\"n_special\":32,\"merges\":[]}",
        "{\"type\":7,\"version\":1,\"n_special\":32,\"merges\":[]}",
        "{\"version\":1,\"n_special\":32,\"merges\":[]}",
        "{\"type\":\"byte-bpe\",\"version\":2,\"n_special\":32,\"merges\":[]}",
        "{\"type\":\"byte-bpe\",\"version\":\"1\",\"n_special\":32,\"merges\":[]}",
        "{\"type\":\"byte-bpe\",\"version\":1.5,\"n_special\":32,\"merges\":[]}",
        "{\"type\":\"byte-bpe\",\"n_special\":32,\"merges\":[]}",
        "{\"type\":\"byte-bpe\",\"version\":1,\"n_special\":31,\"merges\":[]}",
        "{\"type\":\"byte-bpe\",\"version\":1,\"merges\":[]}",
        "{\"type\":\"byte-bpe\",\"version\":1,\"n_special\":32}",
        HEAD "{}}",
        HEAD "\"[[32,32]]\"}",
        HEAD "[[32,288]]}",             // refers to the id it creates
        HEAD "[[32,33],[290,32]]}",     // refers to a future id
        HEAD "[[288,32]]}",
        HEAD "[[-1,32]]}",
        HEAD "[[32,-5]]}",
        HEAD "[[5,32]]}",               // special id
        HEAD "[[31,32]]}",
        HEAD "[[1e300,32]]}",
        HEAD "[[32,1e999]]}",
        HEAD "[[4294967328,32]]}",
        HEAD "[[2147483648,32]]}",
        HEAD "[[32.5,33]]}",
        HEAD "[[\"32\",\"33\"]]}",
        HEAD "[[null,32]]}",
        HEAD "[[true,32]]}",
        HEAD "[[32,33,34]]}",
        HEAD "[[32]]}",
        HEAD "[[]]}",
        HEAD "[[[32],33]]}",
        HEAD "[32,33]}",
        HEAD "[[32,33],[32,33]]}",      // duplicate pair
        HEAD "[[32,33]]}garbage",
        HEAD "[[32,33]],}",
        "{\"type\":\"byte-bpe\"\"version\":1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "case %zu", i);
        size_t len = strlen(bad[i]);
        if (i == 7) len -= 2;  // HEAD [[32,32] without the closing brackets
        expect_reject(bad[i], len, what);
    }
    expect_reject(HEAD "[[32,33]]}\0{}", sizeof(HEAD "[[32,33]]}\0{}") - 1, "embedded NUL");

    // a token over TOKENIZER_MAX_TOKEN_BYTES: 11 doublings of one byte = 2048 bytes
    char buf[4096];
    size_t n = (size_t)sprintf(buf, HEAD "[[32,32]");
    for (int i = 1; i < 11; i++) n += (size_t)sprintf(buf + n, ",[%d,%d]", 287 + i, 287 + i);
    n += (size_t)sprintf(buf + n, "]}");
    expect_reject(buf, n, "token longer than the limit");
    buf[n - 2 - strlen(",[297,297]")] = ']';  // 10 doublings = 1024 bytes: allowed
    buf[n - 1 - strlen(",[297,297]")] = '}';
    loom_error err = {{0}};
    tokenizer *t = tokenizer_from_json(buf, n - strlen(",[297,297]"), &err);
    if (!t) fail_msg("1024-byte token rejected: %s", err.msg);
    assert_int_equal(tokenizer_decode_token(t, 297, 0, NULL, 0), 1024);
    tokenizer_free(t);

    // deep nesting must fail cleanly, not overflow the stack
    size_t depth = 100000;
    char *deep = xmalloc(2 * depth);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    expect_reject(deep, 2 * depth, "deep nesting");
    free(deep);

    // more than TOKENIZER_MAX_MERGES merges
    size_t nm = (size_t)TOKENIZER_MAX_MERGES + 1, cap = nm * 8 + 128;
    char *big = xmalloc(cap);
    n = (size_t)sprintf(big, HEAD "[");
    for (size_t i = 0; i < nm; i++) { memcpy(big + n, "[32,32],", 8); n += 8; }
    big[n - 1] = ']';
    big[n++] = '}';
    expect_reject(big, n, "too many merges");
    free(big);
    assert_null(tokenizer_from_merges(NULL, TOKENIZER_MAX_MERGES + 1, NULL));
    assert_null(tokenizer_from_merges(NULL, -1, NULL));
    assert_null(tokenizer_from_json(NULL, 10, NULL));
#undef HEAD
}

// Every prefix and many byte mutations of a valid file: never crash, and
// whatever is accepted must round-trip text.
static void test_json_fuzz(void **state) {
    fixture *f = *state;
    const int32_t m[] = {32 + 'h', 32 + 'e', 32 + 'l', 32 + 'l', 288, 289, 32 + 'o', 32 + ' '};
    tokenizer *t = tokenizer_from_merges(m, 4, NULL);
    assert_non_null(t);
    char *json = tokenizer_to_json(t, NULL);
    assert_non_null(json);
    tokenizer_free(t);
    size_t len = strlen(json), accepted = 0;
    for (size_t k = 0; k < len; k++) expect_reject(json, k, "prefix");
    uint64_t s = 99;
    char *buf = xmalloc(len);
    const char alphabet[] = "[]{},:\"0123456789-+.eE tnul\\\x01\xff";
    for (int it = 0; it < 20000; it++) {
        memcpy(buf, json, len);
        int edits = 1 + (int)rng_below(&s, 3);
        for (int e = 0; e < edits; e++) buf[rng_below(&s, len)] = alphabet[rng_below(&s, sizeof alphabet - 1)];
        tokenizer *u = tokenizer_from_json(buf, len, NULL);
        if (u) {
            accepted++;
            check_roundtrip(u, f->corpus, 2000);
            tokenizer_free(u);
        }
    }
    free(buf);
    free(json);
    print_message("    json fuzz: %zu of 20000 mutations accepted\n", accepted);
}

static void test_compression(void **state) {
    fixture *f = *state;
    size_t len = 100000;
    char *text = make_english(len, 777, &len);  // unseen text from the same distribution
    size_t n = check_roundtrip(f->tok, text, len);
    double ratio = (double)len / (double)n;
    print_message("    compression: %zu bytes -> %zu ids (%.2f bytes/id)\n", len, n, ratio);
    if (!(ratio > 2.5)) fail_msg("poor compression: %.3f bytes per id (want > 2.5)", ratio);
    free(text);
}

static void test_out_cap(void **state) {
    fixture *f = *state;
    const char *text = "Hello, world! The transformer model reads the image.";
    size_t len = strlen(text), need = 0;
    loom_error err = {{0}};
    int32_t out[256];
    int64_t n = tokenizer_encode(f->tok, text, len, out, 256, &need, &err);
    assert_true(n > 0);
    assert_int_equal((size_t)n, need);
    size_t full = (size_t)n;
    need = 0;
    err.msg[0] = '\0';
    assert_int_equal(tokenizer_encode(f->tok, text, len, out, full - 1, &need, &err), -1);
    assert_int_equal(need, full);
    assert_true(err.msg[0] != '\0');
    need = 0;
    assert_int_equal(tokenizer_encode(f->tok, text, len, NULL, 0, &need, NULL), -1);
    assert_int_equal(need, full);
    assert_int_equal(tokenizer_encode(f->tok, text, len, NULL, 5, NULL, NULL), -1);
    assert_int_equal(tokenizer_encode(f->tok, NULL, 3, out, 256, NULL, NULL), -1);
    assert_int_equal(tokenizer_encode(NULL, text, len, out, 256, NULL, NULL), -1);
    assert_int_equal(tokenizer_encode(f->tok, NULL, 0, NULL, 0, &need, NULL), 0);
    assert_int_equal(need, 0);
}

static void test_decode_token(void **state) {
    fixture *f = *state;
    int32_t V = tokenizer_vocab_size(f->tok);
    char buf[TOKENIZER_MAX_TOKEN_BYTES];
    assert_int_equal(tokenizer_decode_token(f->tok, -1, 1, buf, sizeof buf), -1);
    assert_int_equal(tokenizer_decode_token(f->tok, V, 1, buf, sizeof buf), -1);
    assert_int_equal(tokenizer_decode_token(f->tok, INT32_MAX, 0, buf, sizeof buf), -1);
    assert_int_equal(tokenizer_decode_token(f->tok, INT32_MIN, 0, buf, sizeof buf), -1);
    assert_int_equal(tokenizer_decode_token(f->tok, TOKEN_BOS, 0, buf, sizeof buf), 0);
    assert_int_equal(tokenizer_decode_token(f->tok, TOKEN_IMG_END, 1, buf, sizeof buf), 6);
    assert_memory_equal(buf, "</img>", 6);
    assert_int_equal(tokenizer_decode_token(f->tok, 32 + 'A', 0, buf, sizeof buf), 1);
    assert_int_equal(buf[0], 'A');
    // cap smaller than the token: full length returned, only cap bytes written
    int32_t id = V - 1;
    int64_t full = tokenizer_decode_token(f->tok, id, 0, NULL, 0);
    assert_true(full >= 2);
    memset(buf, '#', sizeof buf);
    assert_int_equal(tokenizer_decode_token(f->tok, id, 0, buf, 1), full);
    assert_int_equal(buf[1], '#');

    int32_t ids[] = {TOKEN_BOS, 32 + 'h', 32 + 'i', TOKEN_EOS, 32 + 0};
    size_t out_len = 0;
    char *s = tokenizer_decode(f->tok, ids, 5, 1, &out_len, NULL);
    assert_non_null(s);
    assert_int_equal(out_len, 5 + 2 + 5 + 1);
    assert_memory_equal(s, "<bos>hi<eos>\0", 13);
    free(s);
    s = tokenizer_decode(f->tok, ids, 5, 0, &out_len, NULL);
    assert_int_equal(out_len, 3);
    assert_memory_equal(s, "hi\0", 3);
    free(s);
    int32_t badids[] = {32, V};
    loom_error err = {{0}};
    assert_null(tokenizer_decode(f->tok, badids, 2, 0, &out_len, &err));
    assert_true(err.msg[0] != '\0');
    s = tokenizer_decode(f->tok, NULL, 0, 0, &out_len, NULL);
    assert_non_null(s);
    assert_int_equal(out_len, 0);
    free(s);
}

// Every learned token must lie inside one pre-split chunk.
static int cls(unsigned char c) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r') return 0;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80) return 1;
    if (c >= '0' && c <= '9') return 2;
    return 3;
}

static void test_chunk_boundaries(void **state) {
    fixture *f = *state;
    int32_t V = tokenizer_vocab_size(f->tok);
    unsigned char buf[TOKENIZER_MAX_TOKEN_BYTES];
    size_t leading_space = 0;
    for (int32_t id = TOKENIZER_MERGE_BASE; id < V; id++) {
        int64_t n = tokenizer_decode_token(f->tok, id, 0, (char *)buf, sizeof buf);
        assert_true(n >= 2 && n <= TOKENIZER_MAX_TOKEN_BYTES);
        size_t start = (buf[0] == ' ' && cls(buf[1]) != 0) ? 1 : 0;
        leading_space += start;
        for (size_t i = start + 1; i < (size_t)n; i++)
            if (cls(buf[i]) != cls(buf[start]))
                fail_msg("token %d (\"%.*s\") crosses a chunk boundary at byte %zu", (int)id, (int)n,
                         (const char *)buf, i);
    }
    assert_true(leading_space > 100);  // " the", " of", ... were learned
    // " the" as one token if it was learned: it must encode to a single id
    size_t n;
    int32_t *ids = encode_all(f->tok, " the", 4, &n);
    assert_int_equal(n, 1);
    free(ids);
}

/* The pre-split rule, seen through hand-made merges: a merge that would
 * cross a chunk boundary must never apply. */
#define B(c) (TOKENIZER_BYTE_BASE + (unsigned char)(c))
static void test_presplit_rule(void **state) {
    (void)state;
    const int32_t m[] = {
        B(' '), B(' '),     // 288 "  "
        B(' '), B('a'),     // 289 " a"
        B('a'), B('1'),     // 290 letter|digit: never applies
        B('1'), B('1'),     // 291 "11"
        B('.'), B('.'),     // 292 ".."
        B('\n'), B(' '),    // 293 "\n " (only inside a whitespace run)
        B('a'), B(0xc3),    // 294 bytes >= 0x80 are letters
        B('a'), B('a'),     // 295 "aa"
        B('!'), B(' '),     // 296 other|space: never applies
        B(' '), B('.'),     // 297 " ." leading space of a punctuation run
    };
    tokenizer *t = tokenizer_from_merges(m, 10, NULL);
    assert_non_null(t);
    static const struct { const char *text; int32_t ids[4]; int n; } cases[] = {
        {"  a", {B(' '), 289}, 2},          // "  a" -> " " + " a"
        {"   a", {288, 289}, 2},            // "   a" -> "  " + " a"
        {"a1", {B('a'), B('1')}, 2},
        {"11", {291}, 1},
        {" 11", {B(' '), 291}, 2},
        {"a\xc3", {294}, 1},
        {" ...", {B(' '), 292, B('.')}, 3},
        {" .", {297}, 1},
        {"\n a", {B('\n'), 289}, 2},        // the run gives its last ' ' to the word
        {"\n \n", {293, B('\n')}, 2},       // whitespace run at the end stays whole
        {"\n\na", {B('\n'), B('\n'), B('a')}, 3},
        {"a  ", {B('a'), 288}, 2},
        {"!  ", {B('!'), 288}, 2},
        {"! ", {B('!'), B(' ')}, 2},
        {"a a", {B('a'), 289}, 2},
        {"aa", {295}, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t n;
        int32_t *ids = encode_all(t, cases[c].text, strlen(cases[c].text), &n);
        int ok = n == (size_t)cases[c].n;
        for (size_t i = 0; ok && i < n; i++) ok = ids[i] == cases[c].ids[i];
        if (!ok) {
            fprintf(stderr, "case %zu (\"%s\"): got", c, cases[c].text);
            for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", (int)ids[i]);
            fprintf(stderr, ", want");
            for (int i = 0; i < cases[c].n; i++) fprintf(stderr, " %d", (int)cases[c].ids[i]);
            fprintf(stderr, "\n");
            fail_msg("pre-split rule broken on case %zu", c);
        }
        free(ids);
    }
    // chunks are cut every TOKENIZER_MAX_CHUNK_BYTES: " " + 4097 '1' -> " 111..1" (4096) + "11"
    size_t len = 1 + TOKENIZER_MAX_CHUNK_BYTES + 1, n;
    char *text = xmalloc(len);
    memset(text, '1', len);
    text[0] = ' ';
    int32_t *ids = encode_all(t, text, len, &n);
    assert_int_equal(n, 1 + 2047 + 1 + 1);
    assert_int_equal(ids[0], B(' '));
    assert_int_equal(ids[n - 2], B('1'));
    assert_int_equal(ids[n - 1], 291);
    free(ids);
    free(text);
    tokenizer_free(t);
}
#undef B

/* Naive reference BPE: recount every pair after every merge (trainer) and
 * scan for the lowest rank pair (encoder). Inputs are letters only, so each
 * document and each input is a single pre-split chunk. */
static void test_train_matches_naive(void **state) {
    (void)state;
    enum { N_DOCS = 300, TARGET = 160 };
    const int V = TOKENIZER_MERGE_BASE + TARGET;
    uint64_t s = 2024;
    char *docs[N_DOCS];
    size_t lens[N_DOCS];
    const char *alpha = "aabbbcd\xc3\xa9";  // skewed alphabet: ties and overlaps ("aaa")
    for (int d = 0; d < N_DOCS; d++) {
        lens[d] = 1 + rng_below(&s, 60);
        docs[d] = xmalloc(lens[d]);
        for (size_t i = 0; i < lens[d]; i++) docs[d][i] = alpha[rng_below(&s, 9)];
        if (d % 10 == 0) memset(docs[d], 'a', lens[d]);
    }
    tokenizer *t = train_or_die((const char *const *)docs, lens, N_DOCS, V);

    // reference trainer
    int32_t *seq[N_DOCS];
    size_t slen[N_DOCS];
    for (int d = 0; d < N_DOCS; d++) {
        seq[d] = xmalloc(lens[d] * sizeof(int32_t));
        slen[d] = lens[d];
        for (size_t i = 0; i < lens[d]; i++) seq[d][i] = 32 + (unsigned char)docs[d][i];
    }
    int64_t *cnt = xmalloc((size_t)V * V * sizeof *cnt);
    int32_t ref[TARGET][2];
    int n_ref = 0;
    while (n_ref < TARGET) {
        memset(cnt, 0, (size_t)V * V * sizeof *cnt);
        for (int d = 0; d < N_DOCS; d++)
            for (size_t i = 0; i + 1 < slen[d]; i++) cnt[(size_t)seq[d][i] * V + seq[d][i + 1]]++;
        int64_t best = 0;
        int ba = -1, bb = -1;
        for (int a = 0; a < V; a++)
            for (int b = 0; b < V; b++)
                if (cnt[(size_t)a * V + b] > best) { best = cnt[(size_t)a * V + b]; ba = a; bb = b; }
        if (best < 2) break;  // default min_frequency
        int32_t x = TOKENIZER_MERGE_BASE + n_ref;
        ref[n_ref][0] = ba;
        ref[n_ref][1] = bb;
        n_ref++;
        for (int d = 0; d < N_DOCS; d++) {
            size_t o = 0;
            for (size_t i = 0; i < slen[d];) {
                if (i + 1 < slen[d] && seq[d][i] == ba && seq[d][i + 1] == bb) { seq[d][o++] = x; i += 2; }
                else seq[d][o++] = seq[d][i++];
            }
            slen[d] = o;
        }
    }
    if (tokenizer_n_merges(t) != n_ref)
        fail_msg("fast trainer made %d merges, reference %d", (int)tokenizer_n_merges(t), n_ref);
    for (int i = 0; i < n_ref; i++) {
        int32_t a, b;
        assert_int_equal(tokenizer_get_merge(t, i, &a, &b), 0);
        if (a != ref[i][0] || b != ref[i][1])
            fail_msg("merge %d: fast (%d, %d), reference (%d, %d)", i, (int)a, (int)b,
                     (int)ref[i][0], (int)ref[i][1]);
    }
    assert_int_equal(tokenizer_get_merge(t, n_ref, NULL, NULL), -1);

    // reference encoder on fresh letter strings
    for (int it = 0; it < 300; it++) {
        size_t len = 1 + rng_below(&s, 200);
        char *text = xmalloc(len);
        for (size_t i = 0; i < len; i++) text[i] = alpha[rng_below(&s, 9)];
        if (it % 7 == 0) memset(text, 'a', len);
        int32_t *r = xmalloc(len * sizeof *r);
        size_t rn = len;
        for (size_t i = 0; i < len; i++) r[i] = 32 + (unsigned char)text[i];
        for (;;) {
            int best = INT32_MAX;
            size_t pos = 0;
            for (size_t i = 0; i + 1 < rn; i++)
                for (int k = 0; k < n_ref && k < best; k++)
                    if (ref[k][0] == r[i] && ref[k][1] == r[i + 1]) { best = k; pos = i; }
            if (best == INT32_MAX) break;
            r[pos] = TOKENIZER_MERGE_BASE + best;
            memmove(r + pos + 1, r + pos + 2, (rn - pos - 2) * sizeof *r);
            rn--;
        }
        size_t n;
        int32_t *ids = encode_all(t, text, len, &n);
        if (n != rn) fail_msg("encode of %zu bytes: fast %zu ids, reference %zu", len, n, rn);
        for (size_t i = 0; i < n; i++)
            if (ids[i] != r[i]) fail_msg("encode id %zu: fast %d, reference %d", i, (int)ids[i], (int)r[i]);
        free(ids); free(r); free(text);
    }
    for (int d = 0; d < N_DOCS; d++) { free(docs[d]); free(seq[d]); }
    free(cnt);
    tokenizer_free(t);
}

static void test_train_params_and_limits(void **state) {
    (void)state;
    loom_error err = {{0}};
    tokenizer_train_params p = tokenizer_train_default_params();
    assert_int_equal(p.vocab_size, 1024);
    assert_int_equal(p.min_frequency, 2);
    p.vocab_size = 287;
    assert_null(tokenizer_train(NULL, NULL, 0, p, &err));
    assert_true(err.msg[0] != '\0');
    p.vocab_size = 300;
    p.min_frequency = 0;
    assert_null(tokenizer_train(NULL, NULL, 0, p, NULL));
    p.min_frequency = 2;
    assert_null(tokenizer_train(NULL, NULL, 1, p, NULL));
    tokenizer *t = tokenizer_train(NULL, NULL, 0, p, &err);  // empty corpus: no merges
    if (!t) fail_msg("empty corpus: %s", err.msg);
    assert_int_equal(tokenizer_vocab_size(t), 288);
    tokenizer_free(t);

    // one long run of 'a': tokens double until TOKENIZER_MAX_TOKEN_BYTES stops them
    size_t len = 50000;
    char *run = xmalloc(len);
    memset(run, 'a', len);
    const char *docs[1] = {run};
    t = train_or_die(docs, &len, 1, 400);
    int32_t V = tokenizer_vocab_size(t);
    for (int32_t id = TOKENIZER_MERGE_BASE; id < V; id++)
        assert_true(tokenizer_decode_token(t, id, 0, NULL, 0) <= TOKENIZER_MAX_TOKEN_BYTES);
    assert_int_equal(tokenizer_decode_token(t, V - 1, 0, NULL, 0), TOKENIZER_MAX_TOKEN_BYTES);
    size_t n = check_roundtrip(t, run, len);
    print_message("    50000 x 'a' -> %zu ids with %d merges\n", n, (int)tokenizer_n_merges(t));
    assert_true(n < 100);
    free(run);
    tokenizer_free(t);
}

static void test_train_speed(void **state) {
    (void)state;
    size_t len;
    char *text = make_english(2u << 20, 31337, &len);
    // split into ~1 KB documents, as a real corpus would be
    size_t n_docs = 0, cap = len / 512 + 2;
    const char **docs = xmalloc(cap * sizeof *docs);
    size_t *lens = xmalloc(cap * sizeof *lens);
    for (size_t off = 0; off < len && n_docs < cap;) {
        size_t l = len - off < 1024 ? len - off : 1024;
        docs[n_docs] = text + off;
        lens[n_docs++] = l;
        off += l;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    tokenizer *t = train_or_die(docs, lens, n_docs, 1024);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t n;
    int32_t *ids = encode_all(t, text, len, &n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double esec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    print_message("    train %.2f MB -> vocab %d in %.2f s; encode in %.3f s (%.2f bytes/id)\n",
                  (double)len / (1 << 20), (int)tokenizer_vocab_size(t), sec, esec, (double)len / (double)n);
    assert_int_equal(tokenizer_vocab_size(t), 1024);
    const char *no_timing = getenv("LOOM_TEST_NO_TIMING");
    if (!(no_timing && no_timing[0] == '1') && sec > 10.0) fail_msg("training took %.2f s (limit 10 s)", sec);
    free(ids);
    tokenizer_free(t);
    free(docs);
    free(lens);
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_special_names),
        cmocka_unit_test(test_no_merges_is_bytes),
        cmocka_unit_test(test_roundtrip_random),
        cmocka_unit_test(test_special_literals),
        cmocka_unit_test(test_encode_deterministic),
        cmocka_unit_test(test_train_deterministic),
        cmocka_unit_test(test_json_roundtrip),
        cmocka_unit_test(test_json_rejects),
        cmocka_unit_test(test_json_fuzz),
        cmocka_unit_test(test_compression),
        cmocka_unit_test(test_out_cap),
        cmocka_unit_test(test_decode_token),
        cmocka_unit_test(test_chunk_boundaries),
        cmocka_unit_test(test_presplit_rule),
        cmocka_unit_test(test_train_matches_naive),
        cmocka_unit_test(test_train_params_and_limits),
        cmocka_unit_test(test_train_speed),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
