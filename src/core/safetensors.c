/* safetensors.c: reader and atomic writer for .safetensors files (see safetensors.h). */
#include "core/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

/* ---------------------------------------------------------------- dtypes */

static const struct { const char *name; size_t size; } dtype_info[] = {
    [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2},
    [ST_F64] = {"F64", 8}, [ST_I8] = {"I8", 1},   [ST_U8] = {"U8", 1},
    [ST_I16] = {"I16", 2}, [ST_I32] = {"I32", 4}, [ST_I64] = {"I64", 8},
    [ST_BOOL] = {"BOOL", 1},
};
#define N_DTYPES (sizeof dtype_info / sizeof dtype_info[0])

size_t st_dtype_size(st_dtype dtype) {
    return (unsigned)dtype < N_DTYPES ? dtype_info[dtype].size : 0;
}

const char *st_dtype_name(st_dtype dtype) {
    return (unsigned)dtype < N_DTYPES ? dtype_info[dtype].name : "?";
}

static int dtype_from_name(const char *s, st_dtype *out) {
    for (size_t i = 0; i < N_DTYPES; i++) {
        if (strcmp(s, dtype_info[i].name) == 0) { *out = (st_dtype)i; return 0; }
    }
    return -1;
}

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* numel and nbytes of a shape, overflow-checked. Returns 0 or -1. */
static int shape_size(st_dtype dtype, int32_t ndim, const int64_t *shape,
                      int64_t *numel, size_t *nbytes) {
    size_t n = 1;
    for (int32_t i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (uint64_t)shape[i] > SIZE_MAX) return -1;
        if (loom_mul_size(n, (size_t)shape[i], &n)) return -1;
    }
    if ((uint64_t)n > INT64_MAX) return -1;
    if (loom_mul_size(n, st_dtype_size(dtype), nbytes)) return -1;
    *numel = (int64_t)n;
    return 0;
}

/* "[2, 3]" into buf. */
static void shape_str(char *buf, size_t cap, int32_t ndim, const int64_t *shape) {
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int32_t i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
}

/* ---------------------------------------------------------------- reader */

struct st_file {
    uint8_t *map;               /* mmap'd file, or NULL */
    size_t map_len;
    uint8_t *owned;             /* malloc'd file bytes, or NULL */
    cJSON *root;                /* parsed header: names and metadata point into it */
    st_tensor *tensors;         /* (n) in header order */
    size_t n;
    const st_tensor **by_name;  /* (n) sorted by name, for st_find */
    const cJSON **meta;         /* (n_meta) __metadata__ entries sorted by key */
    size_t n_meta;
};

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const st_tensor *const *)a)->name, (*(const st_tensor *const *)b)->name);
}

static int cmp_tensor_offset(const void *a, const void *b) {
    const uint8_t *pa = (*(const st_tensor *const *)a)->data;
    const uint8_t *pb = (*(const st_tensor *const *)b)->data;
    return pa < pb ? -1 : pa > pb;
}

static int cmp_meta_key(const void *a, const void *b) {
    return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

/* A JSON number that is an integer in [0, 2^53] (exact in a double). */
static int json_to_index(const cJSON *v, int64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0.0 && d <= 9007199254740992.0)) return -1; /* also rejects NaN */
    int64_t i = (int64_t)d;
    if ((double)i != d) return -1;
    *out = i;
    return 0;
}

/* Validates one header entry and fills t; data is base of the data section. */
static int parse_tensor(const cJSON *e, const uint8_t *data, size_t data_len,
                        st_tensor *t, loom_error *err) {
    const char *name = e->string;
    if (!cJSON_IsObject(e)) return loom_error_set(err, "tensor '%.100s': entry is not an object", name);

    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!cJSON_IsString(dt)) return loom_error_set(err, "tensor '%.100s': missing or non-string dtype", name);
    if (dtype_from_name(dt->valuestring, &t->dtype))
        return loom_error_set(err, "tensor '%.100s': unsupported dtype '%.32s'", name, dt->valuestring);

    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!cJSON_IsArray(sh)) return loom_error_set(err, "tensor '%.100s': missing or non-array shape", name);
    int32_t ndim = 0;
    for (const cJSON *d = sh->child; d; d = d->next) {
        if (ndim == ST_MAX_DIMS)
            return loom_error_set(err, "tensor '%.100s': shape has more than %d dims", name, ST_MAX_DIMS);
        if (json_to_index(d, &t->shape[ndim]))
            return loom_error_set(err, "tensor '%.100s': shape[%d] is not a non-negative integer <= 2^53", name, (int)ndim);
        ndim++;
    }
    t->ndim = ndim;
    if (shape_size(t->dtype, ndim, t->shape, &t->numel, &t->nbytes))
        return loom_error_set(err, "tensor '%.100s': byte size of shape overflows", name);

    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    int64_t begin, end;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
        json_to_index(off->child, &begin) || json_to_index(off->child->next, &end))
        return loom_error_set(err, "tensor '%.100s': data_offsets must be 2 non-negative integers", name);
    if (begin > end)
        return loom_error_set(err, "tensor '%.100s': data_offsets begin %lld > end %lld", name,
                              (long long)begin, (long long)end);
    if ((uint64_t)end > data_len)
        return loom_error_set(err, "tensor '%.100s': data_offsets end %lld is beyond the %zu-byte data section",
                              name, (long long)end, data_len);
    if ((uint64_t)(end - begin) != t->nbytes) {
        char shp[256];
        shape_str(shp, sizeof shp, t->ndim, t->shape);
        return loom_error_set(err, "tensor '%.100s': %s %s needs %zu bytes but data_offsets span %lld",
                              name, st_dtype_name(t->dtype), shp, t->nbytes, (long long)(end - begin));
    }
    t->data = data + begin;
    return 0;
}

/* Validates the header of the file in f->map or f->owned (size bytes). */
static int parse_file(st_file *f, const uint8_t *base, size_t size, loom_error *err) {
    if (!host_is_little_endian()) return loom_error_set(err, "big-endian hosts are not supported");
    if (size < 8) return loom_error_set(err, "file is %zu bytes, shorter than the 8-byte header length", size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | base[i];
    if (hlen == 0) return loom_error_set(err, "header length is 0");
    if (hlen > ST_MAX_HEADER)
        return loom_error_set(err, "header length %llu exceeds the %u-byte limit",
                              (unsigned long long)hlen, (unsigned)ST_MAX_HEADER);
    if (hlen > size - 8)
        return loom_error_set(err, "header length %llu exceeds the %zu bytes after the length field",
                              (unsigned long long)hlen, size - 8);
    const char *hdr = (const char *)base + 8;
    if (memchr(hdr, '\0', (size_t)hlen)) return loom_error_set(err, "header contains a NUL byte");

    /* cJSON wants a NUL-terminated string. */
    char *text = malloc((size_t)hlen + 1);
    if (!text) return loom_error_set(err, "out of memory for a %llu-byte header", (unsigned long long)hlen);
    memcpy(text, hdr, (size_t)hlen);
    text[hlen] = '\0';
    const char *end = NULL;
    f->root = cJSON_ParseWithOpts(text, &end, 0);
    if (!f->root) {
        long pos = end ? (long)(end - text) : -1;
        free(text);
        return loom_error_set(err, "header is not valid JSON (error near byte %ld)", pos);
    }
    size_t tail = (size_t)(end - text);
    while (tail < hlen && strchr(" \t\r\n", text[tail])) tail++;
    free(text);
    if (tail != hlen) return loom_error_set(err, "header has trailing bytes after the JSON value");
    if (!cJSON_IsObject(f->root)) return loom_error_set(err, "header is not a JSON object");

    const uint8_t *data = base + 8 + hlen;
    size_t data_len = size - 8 - (size_t)hlen;
    const cJSON *meta = NULL;
    size_t n = 0;
    for (const cJSON *e = f->root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") != 0) { n++; continue; }
        if (meta) return loom_error_set(err, "header has two __metadata__ entries");
        if (!cJSON_IsObject(e)) return loom_error_set(err, "__metadata__ is not an object");
        meta = e;
    }

    /* metadata: string values, unique keys */
    if (meta) {
        for (const cJSON *m = meta->child; m; m = m->next) {
            if (!cJSON_IsString(m))
                return loom_error_set(err, "__metadata__ value for '%.100s' is not a string", m->string);
            f->n_meta++;
        }
        f->meta = calloc(f->n_meta ? f->n_meta : 1, sizeof *f->meta);
        if (!f->meta) return loom_error_set(err, "out of memory");
        size_t i = 0;
        for (const cJSON *m = meta->child; m; m = m->next) f->meta[i++] = m;
        qsort(f->meta, f->n_meta, sizeof *f->meta, cmp_meta_key);
        for (i = 1; i < f->n_meta; i++)
            if (strcmp(f->meta[i - 1]->string, f->meta[i]->string) == 0)
                return loom_error_set(err, "__metadata__ key '%.100s' appears twice", f->meta[i]->string);
    }

    /* tensors */
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    f->by_name = calloc(n ? n : 1, sizeof *f->by_name);
    if (!f->tensors || !f->by_name) return loom_error_set(err, "out of memory for %zu tensors", n);
    for (const cJSON *e = f->root->child; e; e = e->next) {
        if (e == meta) continue;
        st_tensor *t = &f->tensors[f->n];
        t->name = e->string;
        size_t len = strlen(t->name);
        if (len == 0 || len > ST_MAX_NAME)
            return loom_error_set(err, "tensor name '%.100s' has %zu bytes (must be 1..%d)", t->name, len, ST_MAX_NAME);
        if (parse_tensor(e, data, data_len, t, err)) return -1;
        f->by_name[f->n++] = t;
    }

    /* unique names (sorted once: also the index for st_find) */
    qsort(f->by_name, n, sizeof *f->by_name, cmp_tensor_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(f->by_name[i - 1]->name, f->by_name[i]->name) == 0)
            return loom_error_set(err, "tensor name '%.100s' appears twice", f->by_name[i]->name);

    /* no two non-empty byte ranges overlap */
    const st_tensor **by_off = calloc(n ? n : 1, sizeof *by_off);
    if (!by_off) return loom_error_set(err, "out of memory");
    memcpy(by_off, f->by_name, n * sizeof *by_off);
    qsort(by_off, n, sizeof *by_off, cmp_tensor_offset);
    const st_tensor *prev = NULL;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const st_tensor *t = by_off[i];
        if (t->nbytes == 0) continue;
        if (prev && (const uint8_t *)t->data < (const uint8_t *)prev->data + prev->nbytes)
            rc = loom_error_set(err, "tensors '%.100s' and '%.100s' overlap in the data section",
                                prev->name, t->name);
        prev = t;
    }
    free(by_off);
    return rc;
}

static st_file *open_fail(st_file *f) {
    st_close(f);
    return NULL;
}

st_file *st_open_memory(const void *buf, size_t len, loom_error *err) {
    if (!buf && len) { loom_error_set(err, "safetensors: NULL buffer"); return NULL; }
    st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->owned = malloc(len ? len : 1))) {
        loom_error_set(err, "safetensors: out of memory for a %zu-byte file", len);
        return open_fail(f);
    }
    if (len) memcpy(f->owned, buf, len);
    if (parse_file(f, f->owned, len, err)) {
        loom_error_wrap(err, "safetensors");
        return open_fail(f);
    }
    return f;
}

/* Maps (or reads) the file at fd into f; returns its bytes or NULL. */
static const uint8_t *load_fd(st_file *f, int fd, size_t size, loom_error *err) {
    if (size == 0) {
        f->owned = malloc(1);
        if (!f->owned) loom_error_set(err, "out of memory");
        return f->owned;
    }
    void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) {
        f->map = p;
        f->map_len = size;
        return f->map;
    }
    f->owned = malloc(size);
    if (!f->owned) { loom_error_set(err, "out of memory for %zu bytes", size); return NULL; }
    for (size_t got = 0; got < size;) {
        ssize_t r = read(fd, f->owned + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { loom_error_set(err, "read: %s", strerror(errno)); return NULL; }
        if (r == 0) { loom_error_set(err, "file shrank while reading"); return NULL; }
        got += (size_t)r;
    }
    return f->owned;
}

st_file *st_open(const char *path, loom_error *err) {
    st_file *f = calloc(1, sizeof *f);
    if (!f) { loom_error_set(err, "safetensors: %s: out of memory", path); return NULL; }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        loom_error_set(err, "safetensors: %s: %s", path, strerror(errno));
        return open_fail(f);
    }
    struct stat sb;
    const uint8_t *base = NULL;
    size_t size = 0;
    if (fstat(fd, &sb) != 0) {
        loom_error_set(err, "fstat: %s", strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        loom_error_set(err, "not a regular file");
    } else if (sb.st_size < 0 || (uint64_t)sb.st_size > SIZE_MAX) {
        loom_error_set(err, "file too large");
    } else {
        size = (size_t)sb.st_size;
        base = load_fd(f, fd, size, err);
    }
    close(fd);
    if (!base || parse_file(f, base, size, err)) {
        loom_error_wrap(err, "safetensors: %.200s", path);
        return open_fail(f);
    }
    return f;
}

void st_close(st_file *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->map_len);
    free(f->owned);
    cJSON_Delete(f->root);
    free(f->tensors);
    free(f->by_name);
    free(f->meta);
    free(f);
}

size_t st_count(const st_file *f) { return f->n; }

const st_tensor *st_at(const st_file *f, size_t i) { return i < f->n ? &f->tensors[i] : NULL; }

static int cmp_key_tensor(const void *key, const void *elem) {
    return strcmp(key, (*(const st_tensor *const *)elem)->name);
}

const st_tensor *st_find(const st_file *f, const char *name) {
    if (!name || f->n == 0) return NULL;
    const st_tensor *const *p = bsearch(name, f->by_name, f->n, sizeof *f->by_name, cmp_key_tensor);
    return p ? *p : NULL;
}

static int cmp_key_meta(const void *key, const void *elem) {
    return strcmp(key, (*(const cJSON *const *)elem)->string);
}

const char *st_meta(const st_file *f, const char *key) {
    if (!key || f->n_meta == 0) return NULL;
    const cJSON *const *p = bsearch(key, f->meta, f->n_meta, sizeof *f->meta, cmp_key_meta);
    return p ? (*p)->valuestring : NULL;
}

int st_get(const st_file *f, const char *name, st_dtype dtype, int32_t ndim,
           const int64_t *shape, const void **data, loom_error *err) {
    const st_tensor *t = st_find(f, name);
    if (!t) return loom_error_set(err, "tensor '%.200s' not found", name ? name : "(null)");
    int ok = t->dtype == dtype && t->ndim == ndim && (ndim == 0 || shape);
    for (int32_t i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        char want[256] = "[?]", got[256];
        if (ndim >= 0 && ndim <= ST_MAX_DIMS && (shape || ndim == 0)) shape_str(want, sizeof want, ndim, shape);
        shape_str(got, sizeof got, t->ndim, t->shape);
        return loom_error_set(err, "tensor '%.200s': expected %s %s, found %s %s", name,
                              st_dtype_name(dtype), want, st_dtype_name(t->dtype), got);
    }
    *data = t->data;
    return 0;
}

int st_read_f32(const st_file *f, const char *name, int32_t ndim, const int64_t *shape,
                float *dst, loom_error *err) {
    const void *p;
    if (st_get(f, name, ST_F32, ndim, shape, &p, err)) return -1;
    const st_tensor *t = st_find(f, name);
    if (t->nbytes) memcpy(dst, p, t->nbytes);
    return 0;
}

/* ---------------------------------------------------------------- writer */

typedef struct {
    char *name;
    st_dtype dtype;
    int32_t ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;   /* referenced, not owned */
    size_t nbytes;
} st_wtensor;

typedef struct { char *key, *value; } st_wmeta;  /* both owned */

struct st_writer {
    st_wtensor *t;      /* (n) in insertion order */
    size_t n, cap;
    st_wmeta *meta;     /* (n_meta) in insertion order */
    size_t n_meta, cap_meta;
};

st_writer *st_writer_new(void) { return calloc(1, sizeof(st_writer)); }

void st_writer_free(st_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) free(w->t[i].name);
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->t);
    free(w->meta);
    free(w);
}

/* Room for one more element of size elem in arr (count n, capacity *cap):
 * returns arr, or its reallocation, or NULL (arr untouched) when out of memory. */
static void *grow(void *arr, size_t n, size_t *cap, size_t elem) {
    if (n < *cap) return arr;
    size_t ncap = *cap ? *cap * 2 : 16, bytes;
    if (ncap < *cap || loom_mul_size(ncap, elem, &bytes)) return NULL;
    void *p = realloc(arr, bytes);
    if (p) *cap = ncap;
    return p;
}

static char *dup_str(const char *s) {
    size_t len = strlen(s) + 1;
    char *p = malloc(len);
    if (p) memcpy(p, s, len);
    return p;
}

int st_writer_add(st_writer *w, const char *name, st_dtype dtype, int32_t ndim,
                  const int64_t *shape, const void *data, loom_error *err) {
    if (!w || !name) return loom_error_set(err, "st_writer_add: NULL writer or name");
    size_t len = strlen(name);
    if (len == 0 || len > ST_MAX_NAME)
        return loom_error_set(err, "tensor name '%.100s' has %zu bytes (must be 1..%d)", name, len, ST_MAX_NAME);
    if (strcmp(name, "__metadata__") == 0) return loom_error_set(err, "tensor name '__metadata__' is reserved");
    if (st_dtype_size(dtype) == 0) return loom_error_set(err, "tensor '%.100s': invalid dtype %d", name, (int)dtype);
    if (ndim < 0 || ndim > ST_MAX_DIMS || (ndim > 0 && !shape))
        return loom_error_set(err, "tensor '%.100s': ndim %d outside 0..%d (or NULL shape)", name, (int)ndim, ST_MAX_DIMS);
    st_wtensor t = {.dtype = dtype, .ndim = ndim, .data = data};
    int64_t numel;
    if (ndim > 0) memcpy(t.shape, shape, (size_t)ndim * sizeof *shape);
    if (shape_size(dtype, ndim, t.shape, &numel, &t.nbytes))
        return loom_error_set(err, "tensor '%.100s': negative dim or byte size overflows", name);
    if (!data && t.nbytes) return loom_error_set(err, "tensor '%.100s': NULL data for %zu bytes", name, t.nbytes);
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0) return loom_error_set(err, "tensor '%.100s' added twice", name);
    st_wtensor *arr = grow(w->t, w->n, &w->cap, sizeof *w->t);
    if (arr) w->t = arr;
    if (!arr || !(t.name = dup_str(name))) return loom_error_set(err, "tensor '%.100s': out of memory", name);
    w->t[w->n++] = t;
    return 0;
}

int st_writer_meta(st_writer *w, const char *key, const char *value, loom_error *err) {
    if (!w || !key || !value) return loom_error_set(err, "st_writer_meta: NULL argument");
    for (size_t i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta[i].key, key) == 0) return loom_error_set(err, "metadata key '%.100s' set twice", key);
    st_wmeta m = {dup_str(key), dup_str(value)};
    st_wmeta *arr = grow(w->meta, w->n_meta, &w->cap_meta, sizeof *w->meta);
    if (arr) w->meta = arr;
    if (!m.key || !m.value || !arr) {
        free(m.key);
        free(m.value);
        return loom_error_set(err, "metadata '%.100s': out of memory", key);
    }
    w->meta[w->n_meta++] = m;
    return 0;
}

/* A growable string for the JSON header; oom is sticky. */
typedef struct { char *p; size_t len, cap; int oom; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    size_t need;
    if (loom_add_size(b->len, n, &need)) { b->oom = 1; return; }
    if (need > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < need) {
            if (ncap > SIZE_MAX / 2) { b->oom = 1; return; }
            ncap *= 2;
        }
        char *p = realloc(b->p, ncap);
        if (!p) { b->oom = 1; return; }
        b->p = p;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len = need;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_int(sbuf *b, long long v) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%lld", v);
    sb_put(b, tmp, (size_t)n);
}

/* A JSON string literal: quotes, backslashes and control bytes escaped. */
static void sb_json_str(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; sb_put(b, esc, 2); }
        else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); sb_put(b, esc, 6); }
        else sb_put(b, s, 1);
    }
    sb_put(b, "\"", 1);
}

/* The padded JSON header; returns 0 or -1. */
static int build_header(const st_writer *w, sbuf *b, loom_error *err) {
    sb_str(b, "{");
    if (w->n_meta) {
        sb_str(b, "\"__metadata__\":{");
        for (size_t i = 0; i < w->n_meta; i++) {
            if (i) sb_str(b, ",");
            sb_json_str(b, w->meta[i].key);
            sb_str(b, ":");
            sb_json_str(b, w->meta[i].value);
        }
        sb_str(b, "}");
    }
    size_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const st_wtensor *t = &w->t[i];
        if (i || w->n_meta) sb_str(b, ",");
        sb_json_str(b, t->name);
        sb_str(b, ":{\"dtype\":\"");
        sb_str(b, st_dtype_name(t->dtype));
        sb_str(b, "\",\"shape\":[");
        for (int32_t d = 0; d < t->ndim; d++) {
            if (d) sb_str(b, ",");
            sb_int(b, (long long)t->shape[d]);
        }
        sb_str(b, "],\"data_offsets\":[");
        sb_int(b, (long long)off);
        sb_str(b, ",");
        if (loom_add_size(off, t->nbytes, &off) || (uint64_t)off > INT64_MAX)
            return loom_error_set(err, "data section size overflows");
        sb_int(b, (long long)off);
        sb_str(b, "]}");
    }
    sb_str(b, "}");
    while (!b->oom && (8 + b->len) % 8 != 0) sb_str(b, " ");
    if (b->oom) return loom_error_set(err, "out of memory building the header");
    if (b->len > ST_MAX_HEADER) return loom_error_set(err, "header of %zu bytes exceeds the limit", b->len);
    return 0;
}

/* fsync of the directory holding path, so the rename is durable. */
static int sync_parent_dir(const char *path, loom_error *err) {
    const char *slash = strrchr(path, '/');
    char *dir = dup_str(!slash ? "." : slash == path ? "/" : path);
    if (!dir) return loom_error_set(err, "out of memory");
    if (slash && slash != path) dir[slash - path] = '\0';
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    int rc = 0;
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL))
        rc = loom_error_set(err, "fsync of directory %.200s: %s", dir, strerror(errno));
    if (fd >= 0) close(fd);
    free(dir);
    return rc;
}

int st_writer_save(st_writer *w, const char *path, loom_error *err) {
    if (!w || !path) return loom_error_set(err, "st_writer_save: NULL writer or path");
    if (!host_is_little_endian()) return loom_error_set(err, "safetensors: big-endian hosts are not supported");
    sbuf hdr = {0};
    if (build_header(w, &hdr, err)) {
        free(hdr.p);
        return loom_error_wrap(err, "safetensors: %.200s", path);
    }

    size_t tmp_len = strlen(path) + 32;
    char *tmp = malloc(tmp_len);
    if (!tmp) {
        free(hdr.p);
        return loom_error_set(err, "safetensors: %.200s: out of memory", path);
    }
    snprintf(tmp, tmp_len, "%s.tmp.%ld", path, (long)getpid());

    int rc = 0;
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        rc = loom_error_set(err, "safetensors: cannot create %.200s: %s", tmp, strerror(errno));
        goto done;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hdr.len >> (8 * i));
    int ok = fwrite(len8, 1, 8, fp) == 8 && fwrite(hdr.p, 1, hdr.len, fp) == hdr.len;
    for (size_t i = 0; ok && i < w->n; i++)
        ok = w->t[i].nbytes == 0 || fwrite(w->t[i].data, 1, w->t[i].nbytes, fp) == w->t[i].nbytes;
    ok = ok && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    int saved = errno;
    if (fclose(fp) != 0 && ok) { ok = 0; saved = errno; }
    if (!ok) {
        rc = loom_error_set(err, "safetensors: writing %.200s: %s", tmp, strerror(saved));
        remove(tmp);
        goto done;
    }
    if (rename(tmp, path) != 0) {
        rc = loom_error_set(err, "safetensors: rename %.200s -> %.200s: %s", tmp, path, strerror(errno));
        remove(tmp);
        goto done;
    }
    if (sync_parent_dir(path, err)) rc = loom_error_wrap(err, "safetensors: %.200s written but", path);
done:
    free(tmp);
    free(hdr.p);
    return rc;
}
