#include "heads/png.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stb_image_write.h>

uint32_t png_crc32(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

typedef struct membuf {
    uint8_t *p;
    size_t n, cap;
    int failed;
} membuf;

static void membuf_write(void *ctx, void *data, int size) {
    membuf *b = ctx;
    if (b->failed || size <= 0) return;
    if (b->n + (size_t)size > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + (size_t)size) cap *= 2;
        uint8_t *np = realloc(b->p, cap);
        if (!np) {
            b->failed = 1;
            return;
        }
        b->p = np, b->cap = cap;
    }
    memcpy(b->p + b->n, data, (size_t)size);
    b->n += (size_t)size;
}

static int key_ok(const char *k) {
    size_t n = strlen(k);
    if (n < 1 || n > 79 || k[0] == ' ' || k[n - 1] == ' ') return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)k[i];
        if (!((c >= 32 && c <= 126) || c >= 161)) return 0;
        if (c == ' ' && k[i + 1] == ' ') return 0;
    }
    return 1;
}

int png_encode(const uint8_t *rgb, int32_t W, int32_t H, const png_text *text, int32_t n_text,
               uint8_t **out, size_t *len, loom_error *err) {
    *out = NULL, *len = 0;
    if (!rgb || W < 1 || H < 1 || (int64_t)W * H > ((int64_t)1 << 28) / 3 || n_text < 0 ||
        (n_text > 0 && !text))
        return loom_error_set(err, "png: bad arguments (%dx%d)", (int)W, (int)H);
    size_t extra = 0;
    for (int32_t i = 0; i < n_text; i++) {
        if (!text[i].key || !text[i].value || !key_ok(text[i].key))
            return loom_error_set(err, "png: bad text key \"%s\"", text[i].key ? text[i].key : "");
        size_t vl = strlen(text[i].value);
        if (vl > ((size_t)1 << 20)) return loom_error_set(err, "png: text \"%s\" too long", text[i].key);
        extra += 12 + strlen(text[i].key) + 1 + vl;
    }
    membuf b = {0};
    if (!stbi_write_png_to_func(membuf_write, &b, W, H, 3, rgb, W * 3) || b.failed || b.n < 33) {
        free(b.p);
        return loom_error_set(err, "png: encoding failed (out of memory?)");
    }
    /* signature (8) + IHDR (4 length + 4 type + 13 data + 4 crc) = 33 bytes */
    uint8_t *p = malloc(b.n + extra);
    if (!p) {
        free(b.p);
        return loom_error_set(err, "png: out of memory");
    }
    memcpy(p, b.p, 33);
    size_t at = 33;
    for (int32_t i = 0; i < n_text; i++) {
        size_t kl = strlen(text[i].key), vl = strlen(text[i].value);
        put_be32(p + at, (uint32_t)(kl + 1 + vl));
        memcpy(p + at + 4, "tEXt", 4);
        memcpy(p + at + 8, text[i].key, kl + 1);
        memcpy(p + at + 8 + kl + 1, text[i].value, vl);
        put_be32(p + at + 8 + kl + 1 + vl, png_crc32(0, p + at + 4, 4 + kl + 1 + vl));
        at += 12 + kl + 1 + vl;
    }
    memcpy(p + at, b.p + 33, b.n - 33);
    *len = at + b.n - 33;
    *out = p;
    free(b.p);
    return 0;
}

int png_write_file(const char *path, const uint8_t *rgb, int32_t W, int32_t H,
                   const png_text *text, int32_t n_text, loom_error *err) {
    uint8_t *png;
    size_t len;
    if (png_encode(rgb, W, H, text, n_text, &png, &len, err)) return loom_error_wrap(err, "%s", path);
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        free(png);
        return loom_error_set(err, "%s: path too long", path);
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int e = errno;
        free(png);
        return loom_error_set(err, "%s: cannot write: %s", path, strerror(e));
    }
    int ok = fwrite(png, 1, len, f) == len;
    ok = (fflush(f) == 0) && ok;
    ok = (fclose(f) == 0) && ok;
    free(png);
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return loom_error_set(err, "%s: write failed: %s", path, strerror(e));
    }
    return 0;
}

int png_read_text(const uint8_t *png, size_t len, const char *key, char *out, size_t cap) {
    static const uint8_t sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
    if (len < 8 || memcmp(png, sig, 8) != 0) return -1;
    size_t at = 8, kl = strlen(key);
    while (at + 12 <= len) {
        uint32_t n = get_be32(png + at);
        if (n > len - at - 12) return -1;
        const uint8_t *type = png + at + 4, *data = png + at + 8;
        if (get_be32(data + n) != png_crc32(0, type, 4 + (size_t)n)) return -1;
        if (memcmp(type, "tEXt", 4) == 0 && n > kl && memcmp(data, key, kl) == 0 && data[kl] == 0) {
            size_t vl = n - kl - 1;
            if (vl + 1 > cap) return -1;
            memcpy(out, data + kl + 1, vl);
            out[vl] = '\0';
            return 0;
        }
        if (memcmp(type, "IEND", 4) == 0) break;
        at += 12 + (size_t)n;
    }
    return -1;
}
