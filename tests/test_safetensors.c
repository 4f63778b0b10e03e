/* test_safetensors.c: round trip, checked access, every header rejection, atomic save. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/safetensors.h"

static char g_dir[1024]; /* scratch directory for this run, removed at the end */

static void scratch_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", g_dir, name);
}

static void write_file(const char *path, const void *buf, size_t len) {
    FILE *fp = fopen(path, "wb");
    if (!fp) fail_msg("cannot create %s", path);
    if (len) assert_int_equal(fwrite(buf, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

/* Whole file into a malloc'd buffer. */
static uint8_t *read_file(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) fail_msg("cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

/* Number of entries in g_dir whose name contains s. */
static int count_dir_entries(const char *s) {
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, s) != NULL;
    closedir(d);
    return n;
}

/* u64 length (hlen, or strlen(header) if hlen == UINT64_MAX) + header + data_len bytes 0,1,2,... */
static uint8_t *craft(const char *header, size_t data_len, uint64_t hlen, size_t *out_len) {
    size_t n = strlen(header);
    if (hlen == UINT64_MAX) hlen = n;
    uint8_t *buf = malloc(8 + n + data_len + 1);
    assert_non_null(buf);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(hlen >> (8 * i));
    memcpy(buf + 8, header, n);
    for (size_t i = 0; i < data_len; i++) buf[8 + n + i] = (uint8_t)i;
    *out_len = 8 + n + data_len;
    return buf;
}

/* buf must be rejected, through memory and through a file, with a message containing needle. */
static void expect_reject_buf(const uint8_t *buf, size_t len, const char *needle) {
    loom_error err = {{0}};
    st_file *f = st_open_memory(buf, len, &err);
    if (f) {
        st_close(f);
        fail_msg("accepted a bad file (expected '%s')", needle);
    }
    if (!err.msg[0] || !strstr(err.msg, needle)) fail_msg("expected '%s' in message: '%s'", needle, err.msg);
    assert_null(st_open_memory(buf, len, NULL)); /* NULL err must not crash */

    char path[1200];
    scratch_path(path, sizeof path, "bad.safetensors");
    write_file(path, buf, len);
    memset(&err, 0, sizeof err);
    f = st_open(path, &err);
    if (f) {
        st_close(f);
        fail_msg("st_open accepted a bad file (expected '%s')", needle);
    }
    if (!strstr(err.msg, needle) || strncmp(err.msg, "safetensors: ", 13) != 0)
        fail_msg("expected 'safetensors: <path>: ...%s...' in message: '%s'", needle, err.msg);
    remove(path);
}

static void expect_reject(const char *header, size_t data_len, const char *needle) {
    size_t len;
    uint8_t *buf = craft(header, data_len, UINT64_MAX, &len);
    expect_reject_buf(buf, len, needle);
    free(buf);
}

static st_file *expect_accept(const char *header, size_t data_len) {
    size_t len;
    uint8_t *buf = craft(header, data_len, UINT64_MAX, &len);
    loom_error err = {{0}};
    st_file *f = st_open_memory(buf, len, &err);
    free(buf);
    if (!f) fail_msg("rejected a good file: %s", err.msg);
    return f;
}

/* ---------------------------------------------------------------- round trip */

static uint8_t *make_bytes(size_t n, uint8_t seed) {
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(seed + 31 * i);
    return p;
}

#define N_RT 12
static const struct { const char *name; st_dtype dtype; int32_t ndim; int64_t shape[ST_MAX_DIMS]; } rt_spec[N_RT] = {
    {"wte", ST_F32, 2, {2, 3}},
    {"h.0.attn.c_attn.weight", ST_F16, 1, {4}},
    {"bf", ST_BF16, 3, {1, 2, 1}},
    {"f64", ST_F64, 1, {2}},
    {"i8", ST_I8, 1, {5}},
    {"u8", ST_U8, 1, {3}},
    {"i16", ST_I16, 1, {2}},
    {"i32", ST_I32, 2, {2, 2}},
    {"i64", ST_I64, 1, {3}},
    {"mask", ST_BOOL, 1, {4}},
    {"scalar", ST_F32, 0, {0}},
    {"empty \"quoted\\name\"\n", ST_F32, 2, {0, 5}},
};

static void test_round_trip(void **state) {
    (void)state;
    loom_error err = {{0}};
    uint8_t *bufs[N_RT];
    size_t sizes[N_RT];
    st_writer *w = st_writer_new();
    assert_non_null(w);
    for (int i = 0; i < N_RT; i++) {
        int64_t n = 1;
        for (int d = 0; d < rt_spec[i].ndim; d++) n *= rt_spec[i].shape[d];
        sizes[i] = (size_t)n * st_dtype_size(rt_spec[i].dtype);
        bufs[i] = make_bytes(sizes[i], (uint8_t)i);
        if (st_writer_add(w, rt_spec[i].name, rt_spec[i].dtype, rt_spec[i].ndim, rt_spec[i].shape, bufs[i], &err))
            fail_msg("st_writer_add: %s", err.msg);
    }
    const float pi = 3.25f;
    memcpy(bufs[10], &pi, 4);
    const char *odd = "quote\" back\\ nl\n tab\t ctl\x01 utf8 \xc3\xa9";
    assert_int_equal(st_writer_meta(w, "format", "pt", &err), 0);
    assert_int_equal(st_writer_meta(w, "odd", odd, &err), 0);
    assert_int_equal(st_writer_meta(w, "empty", "", &err), 0);

    char path[1200];
    scratch_path(path, sizeof path, "rt.safetensors");
    if (st_writer_save(w, path, &err)) fail_msg("save: %s", err.msg);
    st_writer_free(w);

    /* layout: header length keeps the data section 8-byte aligned */
    size_t flen;
    uint8_t *raw = read_file(path, &flen);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | raw[i];
    assert_int_equal((8 + hlen) % 8, 0);
    size_t total = 0;
    for (int i = 0; i < N_RT; i++) total += sizes[i];
    assert_int_equal(flen, 8 + hlen + total);

    st_file *f = st_open(path, &err);
    if (!f) fail_msg("st_open: %s", err.msg);
    assert_int_equal(st_count(f), N_RT);
    for (int i = 0; i < N_RT; i++) {
        const st_tensor *t = st_at(f, (size_t)i);
        assert_non_null(t);
        assert_string_equal(t->name, rt_spec[i].name);
        assert_ptr_equal(st_find(f, rt_spec[i].name), t);
        assert_int_equal(t->dtype, rt_spec[i].dtype);
        assert_int_equal(t->ndim, rt_spec[i].ndim);
        int64_t n = 1;
        for (int d = 0; d < t->ndim; d++) {
            assert_int_equal(t->shape[d], rt_spec[i].shape[d]);
            n *= t->shape[d];
        }
        assert_int_equal(t->numel, n);
        assert_int_equal(t->nbytes, sizes[i]);
        if (sizes[i]) assert_memory_equal(t->data, bufs[i], sizes[i]);
        /* contiguous in insertion order, starting at the aligned data section */
        size_t off = 0;
        for (int j = 0; j < i; j++) off += sizes[j];
        assert_ptr_equal((const uint8_t *)t->data, (const uint8_t *)st_at(f, 0)->data + off);
    }
    assert_null(st_at(f, N_RT));
    assert_null(st_find(f, "nope"));
    assert_null(st_find(f, ""));
    assert_int_equal(st_at(f, 10)->numel, 1);
    assert_int_equal(st_at(f, 11)->numel, 0);

    float s = 0;
    assert_int_equal(st_read_f32(f, "scalar", 0, NULL, &s, &err), 0);
    assert_true(s == pi);
    const void *p = NULL;
    int64_t shp[2] = {2, 3};
    assert_int_equal(st_get(f, "wte", ST_F32, 2, shp, &p, &err), 0);
    assert_ptr_equal(p, st_find(f, "wte")->data);

    assert_string_equal(st_meta(f, "format"), "pt");
    assert_string_equal(st_meta(f, "odd"), odd);
    assert_string_equal(st_meta(f, "empty"), "");
    assert_null(st_meta(f, "absent"));
    st_close(f);

    /* the same bytes through st_open_memory give the same view */
    f = st_open_memory(raw, flen, &err);
    if (!f) fail_msg("st_open_memory: %s", err.msg);
    assert_int_equal(st_count(f), N_RT);
    assert_memory_equal(st_find(f, "i64")->data, bufs[8], sizes[8]);
    st_close(f);

    free(raw);
    for (int i = 0; i < N_RT; i++) free(bufs[i]);
    remove(path);
}

static void test_empty_writer(void **state) {
    (void)state;
    loom_error err = {{0}};
    st_writer *w = st_writer_new();
    char path[1200];
    scratch_path(path, sizeof path, "empty.safetensors");
    if (st_writer_save(w, path, &err)) fail_msg("save: %s", err.msg);
    st_writer_free(w);
    st_file *f = st_open(path, &err);
    if (!f) fail_msg("open: %s", err.msg);
    assert_int_equal(st_count(f), 0);
    assert_null(st_find(f, "x"));
    assert_null(st_meta(f, "x"));
    st_close(f);
    remove(path);
}

/* ---------------------------------------------------------------- checked access */

static void test_get_checks(void **state) {
    (void)state;
    st_file *f = expect_accept("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 24);
    loom_error err = {{0}};
    const void *p = NULL;
    int64_t good[2] = {2, 3}, bad[2] = {2, 4}, big[3] = {2, 3, 1};

    assert_int_equal(st_get(f, "w", ST_F16, 2, good, &p, &err), -1);
    assert_non_null(strstr(err.msg, "'w'"));
    assert_non_null(strstr(err.msg, "expected F16 [2, 3]"));
    assert_non_null(strstr(err.msg, "found F32 [2, 3]"));

    memset(&err, 0, sizeof err);
    assert_int_equal(st_get(f, "w", ST_F32, 2, bad, &p, &err), -1);
    assert_non_null(strstr(err.msg, "expected F32 [2, 4], found F32 [2, 3]"));

    memset(&err, 0, sizeof err);
    assert_int_equal(st_get(f, "w", ST_F32, 3, big, &p, &err), -1);
    assert_non_null(strstr(err.msg, "[2, 3, 1]"));

    memset(&err, 0, sizeof err);
    assert_int_equal(st_get(f, "w", ST_F32, 0, NULL, &p, &err), -1);
    assert_non_null(strstr(err.msg, "expected F32 []"));

    memset(&err, 0, sizeof err);
    assert_int_equal(st_get(f, "v", ST_F32, 2, good, &p, &err), -1);
    assert_non_null(strstr(err.msg, "'v' not found"));

    memset(&err, 0, sizeof err);
    float dst[6];
    assert_int_equal(st_read_f32(f, "w", 2, bad, dst, &err), -1);
    assert_true(err.msg[0] != 0);
    assert_int_equal(st_get(f, "w", ST_F32, 2, good, &p, NULL), 0);
    assert_int_equal(st_get(f, "w", ST_F16, 2, good, &p, NULL), -1); /* NULL err is fine */
    st_close(f);
}

/* Data at odd addresses: st_read_f32 copies it out correctly. */
static void test_unaligned(void **state) {
    (void)state;
    char hdr[128] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[1,13]}}";
    while ((8 + strlen(hdr) + 1) % 2 == 0) strcat(hdr, " "); /* tensor starts at an odd offset */
    size_t len;
    uint8_t *buf = craft(hdr, 13, UINT64_MAX, &len);
    const float want[3] = {1.5f, -2.0f, 1e-3f};
    memcpy(buf + 8 + strlen(hdr) + 1, want, sizeof want);
    loom_error err = {{0}};
    st_file *f = st_open_memory(buf, len, &err);
    if (!f) fail_msg("open: %s", err.msg);
    assert_true(((uintptr_t)st_find(f, "a")->data) % 4 != 0);
    float got[3];
    int64_t shape[1] = {3};
    assert_int_equal(st_read_f32(f, "a", 1, shape, got, &err), 0);
    assert_memory_equal(got, want, sizeof want);
    st_close(f);
    free(buf);
}

/* Things a valid file may do: trailing spaces, gaps, empty tensors anywhere, unknown keys. */
static void test_accept_variants(void **state) {
    (void)state;
    st_file *f = expect_accept("{}        ", 0);
    assert_int_equal(st_count(f), 0);
    st_close(f);

    f = expect_accept("{\"__metadata__\":{\"k\":\"v\"},"
                      "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[6,8],\"extra\":[1]},"
                      "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                      "\"z\":{\"dtype\":\"U8\",\"shape\":[0,3],\"data_offsets\":[1,1]}}   \n",
                      16);
    assert_int_equal(st_count(f), 3);
    assert_string_equal(st_at(f, 0)->name, "b"); /* header order */
    assert_string_equal(st_at(f, 1)->name, "a");
    assert_int_equal(((const uint8_t *)st_find(f, "b")->data)[0], 6);
    assert_int_equal(st_find(f, "z")->nbytes, 0);
    assert_string_equal(st_meta(f, "k"), "v");
    st_close(f);
}

/* ---------------------------------------------------------------- rejections */

static void test_reject_sizes(void **state) {
    (void)state;
    expect_reject_buf((const uint8_t *)"", 0, "shorter than");
    expect_reject_buf((const uint8_t *)"\x02\0\0\0\0\0\0", 7, "shorter than");

    size_t len;
    uint8_t *buf = craft("{}", 0, 0, &len);
    expect_reject_buf(buf, len, "header length is 0");
    free(buf);

    buf = craft("{}", 0, 3, &len); /* one byte more than the file holds */
    expect_reject_buf(buf, len, "exceeds the 2 bytes");
    free(buf);

    buf = craft("{}", 16, 1000, &len);
    expect_reject_buf(buf, len, "exceeds the 18 bytes");
    free(buf);

    buf = craft("{}", 0, (uint64_t)1 << 63, &len);
    expect_reject_buf(buf, len, "limit");
    free(buf);

    buf = craft("{}", 0, UINT64_MAX - 1, &len);
    expect_reject_buf(buf, len, "limit");
    free(buf);

    buf = craft("{}", 0, 100000001, &len);
    expect_reject_buf(buf, len, "limit");
    free(buf);
}

static void test_reject_json(void **state) {
    (void)state;
    expect_reject("{\"a\": ", 0, "not valid JSON");
    expect_reject("not json", 0, "not valid JSON");
    expect_reject("{\"a\":1,}", 0, "not valid JSON");
    expect_reject("[1, 2]", 0, "not a JSON object");
    expect_reject("\"str\"", 0, "not a JSON object");
    expect_reject("{} {}", 0, "trailing");
    expect_reject("{}  x", 0, "trailing");
    char deep[4000];
    memset(deep, '[', 3000);
    deep[3000] = '\0';
    expect_reject(deep, 0, "not valid JSON"); /* nesting limit, no stack overflow */

    size_t len;
    uint8_t *buf = craft("{} \n", 0, UINT64_MAX, &len);
    buf[10] = '\0';
    expect_reject_buf(buf, len, "NUL");
    free(buf);
}

static void test_reject_entries(void **state) {
    (void)state;
#define T(body) "{\"t\":{" body "}}"
    expect_reject("{\"t\":1}", 0, "not an object");
    expect_reject(T("\"shape\":[1],\"data_offsets\":[0,4]"), 4, "dtype");
    expect_reject(T("\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,4]"), 4, "dtype");
    expect_reject(T("\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]"), 4, "unsupported dtype 'F33'");
    expect_reject(T("\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]"), 4, "unsupported dtype");
    expect_reject(T("\"dtype\":\"F32\",\"data_offsets\":[0,4]"), 4, "shape");
    expect_reject(T("\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]"), 4, "shape");
    expect_reject(T("\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]"), 4, "shape[0] is not");
    expect_reject(T("\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]"), 4, "shape[0] is not");
    expect_reject(T("\"dtype\":\"F32\",\"shape\":[1,\"2\"],\"data_offsets\":[0,8]"), 8, "shape[1] is not");
    expect_reject(T("\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]"), 4, "shape[0] is not");
    expect_reject(T("\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]"), 1, "more than 8");
    expect_reject(T("\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,4]"), 4,
                  "overflows");
    expect_reject(T("\"dtype\":\"F32\",\"shape\":[1]"), 4, "data_offsets");
    expect_reject(T("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]"), 4, "data_offsets");
    expect_reject(T("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]"), 8, "data_offsets");
    expect_reject(T("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]"), 4, "data_offsets");
    expect_reject(T("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{\"a\":0,\"b\":4}"), 4, "data_offsets");
    expect_reject(T("\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]"), 4, "begin 4 > end 0");
    /* offsets past the end of the data section */
    expect_reject(T("\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]"), 16, "beyond the 16-byte data section");
    expect_reject(T("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[13,17]"), 16, "beyond");
    expect_reject(T("\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[17,17]"), 16, "beyond");
    expect_reject(T("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,18446744073709551615]"), 4, "data_offsets");
    /* shape and offsets disagree */
    expect_reject(T("\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]"), 16, "F32 [3] needs 12 bytes but data_offsets span 8");
    expect_reject(T("\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,16]"), 16, "needs 8 bytes");
    expect_reject(T("\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,0]"), 16, "needs 4 bytes");
#undef T
}

static void test_reject_names_and_overlap(void **state) {
    (void)state;
#define E(off) "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" off "}"
    expect_reject("{\"a\":" E("[0,8]") ",\"b\":" E("[4,12]") "}", 16, "overlap");
    expect_reject("{\"a\":" E("[8,16]") ",\"b\":" E("[0,8]") ",\"c\":" E("[4,12]") "}", 16, "overlap");
    expect_reject("{\"a\":" E("[0,8]") ",\"b\":" E("[0,8]") "}", 16, "overlap");
    expect_reject("{\"a\":" E("[0,8]") ",\"a\":" E("[8,16]") "}", 16, "'a' appears twice");
    expect_reject("{\"\":" E("[0,8]") "}", 16, "has 0 bytes");
    /* names that only differ after an escaped NUL collapse to the same C string */
    expect_reject("{\"a\\u0000x\":" E("[0,8]") ",\"a\\u0000y\":" E("[8,16]") "}", 16, "appears twice");

    char *big = malloc(2000);
    assert_non_null(big);
    char name[1100];
    memset(name, 'n', 1025);
    name[1025] = '\0';
    snprintf(big, 2000, "{\"%s\":" E("[0,8]") "}", name);
    expect_reject(big, 16, "has 1025 bytes");
    name[1024] = '\0'; /* 1024 is allowed */
    snprintf(big, 2000, "{\"%s\":" E("[0,8]") "}", name);
    st_file *f = expect_accept(big, 16);
    assert_non_null(st_find(f, name));
    st_close(f);
    free(big);

    /* metadata */
    expect_reject("{\"__metadata__\":{\"a\":1}}", 0, "__metadata__ value for 'a' is not a string");
    expect_reject("{\"__metadata__\":{\"a\":\"x\",\"b\":null}}", 0, "not a string");
    expect_reject("{\"__metadata__\":{\"a\":{\"b\":\"c\"}}}", 0, "not a string");
    expect_reject("{\"__metadata__\":[\"a\"]}", 0, "__metadata__ is not an object");
    expect_reject("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "two __metadata__");
    expect_reject("{\"__metadata__\":{\"a\":\"x\",\"a\":\"y\"}}", 0, "'a' appears twice");
#undef E
}

static void test_open_errors(void **state) {
    (void)state;
    loom_error err = {{0}};
    char path[1200];
    scratch_path(path, sizeof path, "does_not_exist.safetensors");
    assert_null(st_open(path, &err));
    assert_non_null(strstr(err.msg, "does_not_exist"));
    memset(&err, 0, sizeof err);
    assert_null(st_open(g_dir, &err));
    assert_non_null(strstr(err.msg, "not a regular file"));
    assert_null(st_open(g_dir, NULL));
}

/* Every truncation and many single-byte corruptions of a valid file: no crash, no leak. */
static void test_corruptions(void **state) {
    (void)state;
    int64_t shape[2] = {3, 2};
    float vals[6] = {1, 2, 3, 4, 5, 6};
    st_writer *w = st_writer_new();
    assert_int_equal(st_writer_add(w, "a", ST_F32, 2, shape, vals, NULL), 0);
    assert_int_equal(st_writer_add(w, "b", ST_I8, 1, shape, vals, NULL), 0);
    assert_int_equal(st_writer_meta(w, "k", "v", NULL), 0);
    char path[1200];
    scratch_path(path, sizeof path, "fuzz.safetensors");
    assert_int_equal(st_writer_save(w, path, NULL), 0);
    st_writer_free(w);
    size_t len;
    uint8_t *raw = read_file(path, &len);
    remove(path);

    for (size_t cut = 0; cut < len; cut++) {
        st_file *f = st_open_memory(raw, cut, NULL); /* every cut loses tensor bytes */
        st_close(f);
        assert_null(f);
    }
    const uint8_t flips[] = {0x00, 0x01, 0x20, 0x22, 0x2c, 0x30, 0x39, 0x5b, 0x5d, 0x7b, 0x7d, 0x80, 0xff};
    int accepted = 0;
    for (size_t i = 0; i < len; i++) {
        for (size_t k = 0; k < sizeof flips; k++) {
            uint8_t save = raw[i];
            raw[i] = flips[k];
            loom_error err = {{0}};
            st_file *f = st_open_memory(raw, len, &err);
            if (f) {
                accepted++;
                for (size_t j = 0; j < st_count(f); j++) { /* valgrind/ASan check the reads */
                    const st_tensor *t = st_at(f, j);
                    volatile uint8_t sink = 0;
                    for (size_t b = 0; b < t->nbytes; b++) sink ^= ((const uint8_t *)t->data)[b];
                    (void)sink;
                }
                st_close(f);
            } else {
                assert_true(err.msg[0] != 0);
            }
            raw[i] = save;
        }
    }
    assert_true(accepted > 0); /* flips inside the data section are harmless */
    free(raw);
}

/* ---------------------------------------------------------------- writer */

static void test_writer_rejects(void **state) {
    (void)state;
    loom_error err = {{0}};
    st_writer *w = st_writer_new();
    int64_t shape[9] = {2, 2, 1, 1, 1, 1, 1, 1, 1}, neg[1] = {-1};
    float v[4] = {0};
    assert_int_equal(st_writer_add(w, "x", ST_F32, 2, shape, v, &err), 0);
    assert_int_equal(st_writer_add(w, "x", ST_F32, 2, shape, v, &err), -1);
    assert_non_null(strstr(err.msg, "twice"));
    assert_int_equal(st_writer_add(w, "", ST_F32, 2, shape, v, &err), -1);
    assert_int_equal(st_writer_add(w, "__metadata__", ST_F32, 2, shape, v, &err), -1);
    assert_non_null(strstr(err.msg, "reserved"));
    assert_int_equal(st_writer_add(w, "y", ST_F32, 9, shape, v, &err), -1);
    assert_int_equal(st_writer_add(w, "y", ST_F32, -1, shape, v, &err), -1);
    assert_int_equal(st_writer_add(w, "y", ST_F32, 1, neg, v, &err), -1);
    assert_int_equal(st_writer_add(w, "y", ST_F32, 2, shape, NULL, &err), -1);
    assert_int_equal(st_writer_add(w, "y", (st_dtype)99, 2, shape, v, &err), -1);
    int64_t huge[2] = {INT64_MAX, 4};
    assert_int_equal(st_writer_add(w, "y", ST_F32, 2, huge, v, &err), -1);
    assert_non_null(strstr(err.msg, "overflows"));
    int64_t zero[2] = {0, 7};
    assert_int_equal(st_writer_add(w, "y", ST_F32, 2, zero, NULL, &err), 0);
    assert_int_equal(st_writer_meta(w, "k", "1", &err), 0);
    assert_int_equal(st_writer_meta(w, "k", "2", &err), -1);
    assert_int_equal(st_writer_add(w, NULL, ST_F32, 2, shape, v, NULL), -1);
    st_writer_free(w);
    st_writer_free(NULL);
    st_close(NULL);
    assert_int_equal(st_dtype_size(ST_BF16), 2);
    assert_string_equal(st_dtype_name(ST_BOOL), "BOOL");
    assert_string_equal(st_dtype_name((st_dtype)42), "?");
}

static void test_atomic_replace(void **state) {
    (void)state;
    loom_error err = {{0}};
    char path[1200];
    scratch_path(path, sizeof path, "atomic.safetensors");
    int64_t shape[1] = {2};
    float a[2] = {1, 2}, b[2] = {3, 4};

    st_writer *w = st_writer_new();
    assert_int_equal(st_writer_add(w, "old", ST_F32, 1, shape, a, &err), 0);
    assert_int_equal(st_writer_save(w, path, &err), 0);
    st_writer_free(w);

    w = st_writer_new();
    assert_int_equal(st_writer_add(w, "new", ST_F32, 1, shape, b, &err), 0);
    assert_int_equal(st_writer_meta(w, "v", "2", &err), 0);
    if (st_writer_save(w, path, &err)) fail_msg("save: %s", err.msg);
    st_writer_free(w);

    st_file *f = st_open(path, &err);
    if (!f) fail_msg("open: %s", err.msg);
    assert_int_equal(st_count(f), 1);
    assert_null(st_find(f, "old"));
    float got[2];
    assert_int_equal(st_read_f32(f, "new", 1, shape, got, &err), 0);
    assert_memory_equal(got, b, sizeof b);
    assert_string_equal(st_meta(f, "v"), "2");
    st_close(f);
    assert_int_equal(count_dir_entries(".tmp."), 0);
    remove(path);
}

static void test_save_missing_dir(void **state) {
    (void)state;
    loom_error err = {{0}};
    char path[1200];
    scratch_path(path, sizeof path, "no_such_dir/x.safetensors");
    float v = 1;
    st_writer *w = st_writer_new();
    assert_int_equal(st_writer_add(w, "v", ST_F32, 0, NULL, &v, &err), 0);
    assert_int_equal(st_writer_save(w, path, &err), -1);
    assert_non_null(strstr(err.msg, "no_such_dir"));
    assert_int_equal(st_writer_save(w, path, NULL), -1);
    st_writer_free(w);
    struct stat sb;
    assert_int_equal(stat(path, &sb), -1);
    assert_int_equal(count_dir_entries(".tmp."), 0);
}

/* ---------------------------------------------------------------- main */

static int setup(void **state) {
    (void)state;
    const char *base = getenv("LOOM_TEST_TMP");
    snprintf(g_dir, sizeof g_dir, "%s/st_test_XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    DIR *d = opendir(g_dir);
    if (d) {
        char path[1400];
        for (struct dirent *e; (e = readdir(d));) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            snprintf(path, sizeof path, "%s/%s", g_dir, e->d_name);
            remove(path);
        }
        closedir(d);
    }
    return rmdir(g_dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_empty_writer),
        cmocka_unit_test(test_get_checks),
        cmocka_unit_test(test_unaligned),
        cmocka_unit_test(test_accept_variants),
        cmocka_unit_test(test_reject_sizes),
        cmocka_unit_test(test_reject_json),
        cmocka_unit_test(test_reject_entries),
        cmocka_unit_test(test_reject_names_and_overlap),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_corruptions),
        cmocka_unit_test(test_writer_rejects),
        cmocka_unit_test(test_atomic_replace),
        cmocka_unit_test(test_save_missing_dir),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
