/* fuzz_tokenizer.c: the tokenizer on hostile bytes.
 *
 *   1. tokenizer_from_json on the input (the "tokenizer" metadata of every
 *      model file). A tokenizer it accepts must survive to_json -> from_json
 *      with the same merges, and round-trip the input's own bytes.
 *   2. encode -> decode of the input with fixed tokenizers: the shipped
 *      captioner's (models/loom-shapes.safetensors, 158 merges), one trained
 *      here on a few lines of mixed text, and the bytes-only one. The
 *      contract (tokenizer.h): decode(encode(x)) == x for EVERY byte string,
 *      valid UTF-8 or not, NULs included; ids in [32, vocab); no specials;
 *      the size query gives the count; too small an output is an error.
 *   3. the input read as 16-bit ids, decoded with specials rendered: an id
 *      out of range is an error, otherwise the result is the concatenation
 *      of tokenizer_decode_token of each id. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NAME "fuzz_tokenizer"
#include "fuzz_common.h"

#include "core/safetensors.h"
#include "fusion/tokenizer.h"

#ifndef LOOM_SOURCE_DIR
#define LOOM_SOURCE_DIR "."
#endif

#define N_FIXED 3
static tokenizer *g_tok[N_FIXED];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    loom_error err = {{0}};
    const char *path = LOOM_SOURCE_DIR "/models/loom-shapes.safetensors";
    st_file *f = st_open(path, &err);
    const char *tj = f ? st_meta(f, "tokenizer") : NULL;
    if (!tj) fail(path, f ? "no tokenizer in the metadata" : err.msg);
    if (!(g_tok[0] = tokenizer_from_json(tj, strlen(tj), &err))) fail(path, err.msg);
    st_close(f);
    static const char *const docs[] = {
        "a large red circle at the top left",
        "what color is the circle? red",
        "how many objects are there? two",
        "  indented\tand\ttabbed  lines\r\n with   runs of   spaces ",
        "numbers 0123456789 1234 4096 65536 and 3.14159, -42!",
        "caf\xc3\xa9 na\xc3\xafve \xe2\x82\xac 100 \xf0\x9f\x98\x80 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
        "<img> <bos> </img> <sep> literal specials {\"json\": [1, 2]}",
        "\xff\xfe\x80\x80 invalid \xc3 utf-8 \xed\xa0\x80 bytes",
    };
    size_t lens[sizeof docs / sizeof *docs];
    const char *ds[sizeof docs / sizeof *docs];
    for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) ds[i] = docs[i], lens[i] = strlen(docs[i]);
    tokenizer_train_params p = tokenizer_train_default_params();
    p.vocab_size = 400;
    p.min_frequency = 1;
    if (!(g_tok[1] = tokenizer_train(ds, lens, sizeof docs / sizeof *docs, p, &err))) fail("train", err.msg);
    if (!(g_tok[2] = tokenizer_from_merges(NULL, 0, &err))) fail("bytes-only tokenizer", err.msg);
    return 0;
}

/* encode -> decode of text with t must give text back exactly. */
static void round_trip(const tokenizer *t, const uint8_t *text, size_t len) {
    loom_error err = {{0}};
    size_t need = 0;
    if (tokenizer_encode(t, (const char *)text, len, NULL, 0, &need, &err) >= 0 && len > 0)
        fail("size query did not report a short buffer", NULL);
    if (need > len) fail("more ids than bytes", NULL);
    int32_t *ids = malloc((need + 1) * sizeof *ids);
    if (!ids) fail("out of memory", NULL);
    if (need > 0 && tokenizer_encode(t, (const char *)text, len, ids, need - 1, NULL, &err) >= 0)
        fail("encode into too small a buffer succeeded", NULL);
    int64_t n = tokenizer_encode(t, (const char *)text, len, ids, need, NULL, &err);
    if (n < 0) fail("encode failed with the size it asked for", err.msg);
    if ((size_t)n != need) fail("encode wrote a different count than the size query", NULL);
    const int32_t V = tokenizer_vocab_size(t);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < TOKENIZER_BYTE_BASE || ids[i] >= V) fail("encode produced a special or out-of-range id", NULL);
    for (int render = 0; render < 2; render++) {
        size_t out_len = 0;
        char *back = tokenizer_decode(t, ids, (size_t)n, render, &out_len, &err);
        if (!back) fail("decode of encode failed", err.msg);
        if (out_len != len || memcmp(back, text, len) != 0 || back[out_len] != '\0')
            fail("decode(encode(x)) != x", NULL);
        free(back);
    }
    free(ids);
}

/* data as little-endian 16-bit ids, decoded with specials rendered. */
static void decode_ids(const tokenizer *t, const uint8_t *data, size_t size) {
    loom_error err = {{0}};
    const size_t n = size / 2;
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) fail("out of memory", NULL);
    const int32_t V = tokenizer_vocab_size(t);
    int in_range = 1;
    size_t expect = 0;
    for (size_t i = 0; i < n; i++) {
        ids[i] = (int32_t)(data[2 * i] | data[2 * i + 1] << 8) - 16; /* a few negative ids too */
        int64_t k = tokenizer_decode_token(t, ids[i], 1, NULL, 0);
        if ((k < 0) != (ids[i] < 0 || ids[i] >= V)) fail("decode_token range check", NULL);
        if (k < 0) in_range = 0;
        else expect += (size_t)k;
    }
    size_t out_len = 0;
    char *s = tokenizer_decode(t, ids, n, 1, &out_len, &err);
    if (!!s != in_range) fail(s ? "decoded an out-of-range id" : "refused in-range ids", err.msg);
    if (s) {
        if (out_len != expect || s[out_len] != '\0') fail("decode length != sum of decode_token", NULL);
        char piece[TOKENIZER_MAX_TOKEN_BYTES + 16];
        size_t at = 0;
        for (size_t i = 0; i < n; i++) {
            int64_t k = tokenizer_decode_token(t, ids[i], 1, piece, sizeof piece);
            if (k < 0 || (size_t)k > sizeof piece) fail("decode_token longer than the limit", NULL);
            if (memcmp(s + at, piece, (size_t)k) != 0) fail("decode != concatenated decode_token", NULL);
            at += (size_t)k;
        }
        free(s);
    }
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    loom_error err = {{0}};
    tokenizer *t = tokenizer_from_json((const char *)data, size, &err);
    if (t) {
        char *json = tokenizer_to_json(t, &err);
        if (!json) fail("to_json of a parsed tokenizer", err.msg);
        tokenizer *t2 = tokenizer_from_json(json, strlen(json), &err);
        if (!t2) fail("from_json(to_json(t)) refused", err.msg);
        if (tokenizer_n_merges(t2) != tokenizer_n_merges(t)) fail("merge count changed in a JSON round trip", NULL);
        for (int32_t i = 0; i < tokenizer_n_merges(t); i++) {
            int32_t a, b, a2, b2;
            if (tokenizer_get_merge(t, i, &a, &b) || tokenizer_get_merge(t2, i, &a2, &b2) || a != a2 || b != b2)
                fail("merge changed in a JSON round trip", NULL);
        }
        free(json);
        tokenizer_free(t2);
        round_trip(t, data, size);
        tokenizer_free(t);
    } else if (!err.msg[0]) {
        fail("refused tokenizer without a message", NULL);
    }
    for (int i = 0; i < N_FIXED; i++) round_trip(g_tok[i], data, size);
    decode_ids(g_tok[0], data, size);
    return 0;
}
