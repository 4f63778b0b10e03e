/* image.c: untrusted image files to 8-bit RGB (see image.h for the rules). */
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb_image.h>

/* ------------------------------------------------------------------------ */
/* the pixel buffer */

static int check_dims(const char *name, const char *fmt, int64_t w, int64_t h, loom_error *err) {
    if (w < 1 || h < 1)
        return loom_error_set(err, "%s: %s image is %lldx%lld; width and height must be >= 1",
                              name, fmt, (long long)w, (long long)h);
    if (w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE)
        return loom_error_set(err, "%s: %s image is %lldx%lld; width and height are limited to %d",
                              name, fmt, (long long)w, (long long)h, IMAGE_MAX_SIDE);
    if (w * h > IMAGE_MAX_PIXELS) /* no overflow: both <= 8192 */
        return loom_error_set(err, "%s: %s image is %lldx%lld = %lld pixels; the limit is %lld",
                              name, fmt, (long long)w, (long long)h, (long long)(w * h),
                              (long long)IMAGE_MAX_PIXELS);
    return 0;
}

int image_check(const loom_image *img, loom_error *err) {
    if (!img || !img->rgb) return loom_error_set(err, "image has no pixels");
    return check_dims("image", "RGB", img->width, img->height, err);
}

int image_alloc(loom_image *img, int64_t width, int64_t height, loom_error *err) {
    memset(img, 0, sizeof *img);
    if (check_dims("image_alloc", "RGB", width, height, err)) return -1;
    size_t n = (size_t)width * (size_t)height * 3; /* <= 3 * 2^24, no overflow */
    img->rgb = calloc(n, 1);
    if (!img->rgb) return loom_error_set(err, "out of memory for a %lldx%lld image",
                                         (long long)width, (long long)height);
    img->width = (int32_t)width;
    img->height = (int32_t)height;
    return 0;
}

void image_free(loom_image *img) {
    if (!img) return;
    free(img->rgb);
    memset(img, 0, sizeof *img);
}

/* ------------------------------------------------------------------------ */
/* decoding */

/* Names the format from its magic bytes. Formats stb_image would decode but
 * loom refuses return *refused = 1. A file with no known magic may still be a
 * TGA (the one format without a signature): stb_image's probe decides. */
static const char *sniff_format(const uint8_t *b, size_t n, int *refused) {
    *refused = 0;
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) return "PNG";
    if (n >= 2 && b[0] == 0xFF) { /* SOI, after any 0xFF fill bytes (stb_image skips them) */
        size_t i = 1;
        while (i < n && b[i] == 0xFF) i++;
        if (i < n && b[i] == 0xD8) return "JPEG";
    }
    if (n >= 6 && (!memcmp(b, "GIF87a", 6) || !memcmp(b, "GIF89a", 6))) return "GIF";
    if (n >= 2 && b[0] == 'B' && b[1] == 'M') return "BMP";
    if (n >= 2 && b[0] == 'P' && (b[1] == '5' || b[1] == '6')) return "PNM";
    *refused = 1;
    if (n >= 4 && !memcmp(b, "8BPS", 4)) return "PSD";
    if (n >= 4 && !memcmp(b, "\x53\x80\xF6\x34", 4)) return "PIC";
    if (n >= 2 && b[0] == '#' && b[1] == '?') return "HDR";
    if (n >= 2 && b[0] == 'P' && b[1] >= '1' && b[1] <= '7') return "ASCII/bitmap PNM";
    *refused = 0;
    return "TGA";
}

/* 0 if a JPEG defines a Huffman table of more than 256 codes, else 1. stb_image 2.27
 * (Debian 12's) does not bound that count: its 16 code-length counts (up to 16 x 255) are
 * written into arrays of 257 and 256 entries, overwriting the decoder's other tables
 * (fuzz/fuzz_image.c; refused as "bad size list" in stb_image 2.28). Walks the marker
 * segments as stb_image does, and the entropy-coded data between them byte by byte, up to
 * EOI; every table stb_image would read is checked, before stbi_info reads any. */
static int jpeg_huffman_ok(const uint8_t *b, size_t n) {
    size_t i = 0; /* the fill bytes and SOI are skipped like the other markers without a length */
    while (i + 1 < n) {
        if (b[i] != 0xFF || b[i + 1] == 0xFF) { /* entropy-coded data, junk, fill bytes */
            i++;
            continue;
        }
        const uint8_t m = b[i + 1];
        if (m == 0xD9) return 1;                                  /* EOI */
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) { /* no length */
            i += 2;
            continue;
        }
        if (i + 4 > n) return 1;
        const size_t L = (size_t)b[i + 2] << 8 | b[i + 3];
        if (m != 0xC4) {
            i += 2 + L;
            continue;
        }
        /* DHT: tables of (class/id, 16 counts, values) while stb_image's L - 2 > 0; it
         * reads zeros past the end of the data */
        size_t at = i + 4;
        for (int64_t left = (int64_t)L - 2; left > 0 && at < n;) {
            unsigned codes = 0;
            for (size_t k = 1; k <= 16 && at + k < n; k++) codes += b[at + k];
            if (codes > 256) return 0;
            left -= 17 + (int64_t)codes;
            at += 17 + codes;
        }
        i = at > i + 2 + L ? at : i + 2 + L;
    }
    return 1;
}

/* Binary PNM (P5/P6) headers, read as stb_image 2.27 reads them: it accumulates each number
 * in an int with no overflow check (undefined behaviour; refused in stb_image 2.28), and
 * decodes pixel data shorter than the header promises, leaving the rest of its buffer
 * uninitialized. Returns 0 if fine, 1 if a number exceeds INT32_MAX, 2 if the pixels are
 * short (fuzz/fuzz_image.c found both). */
static int pnm_check(const uint8_t *b, size_t n) {
    size_t pos = 2;
    int c = pos < n ? b[pos++] : 0;
    int64_t v[3]; /* width, height, max value */
    for (int f = 0; f < 3; f++) {
        for (;;) { /* whitespace, and comments from '#' to the end of the line */
            while (pos < n && (c == ' ' || (c >= '\t' && c <= '\r'))) c = b[pos++];
            if (pos >= n || c != '#') break;
            while (pos < n && c != '\n' && c != '\r') c = b[pos++];
        }
        v[f] = 0;
        while (pos < n && c >= '0' && c <= '9') {
            v[f] = v[f] * 10 + (c - '0');
            if (v[f] > INT32_MAX) return 1;
            c = b[pos++];
        }
    }
    /* the pixels follow the one byte that ended the max value */
    const int64_t sample_bytes = (b[1] == '6' ? 3 : 1) * (v[2] > 255 ? 2 : 1);
    return v[0] * v[1] > (int64_t)(n - pos) / sample_bytes ? 2 : 0;
}

/* Decodes buf[0..len) into img; name is for messages only. */
static int decode(const uint8_t *buf, size_t len, const char *name, loom_image *img,
                  loom_error *err) {
    memset(img, 0, sizeof *img);
    if (!buf || len == 0) return loom_error_set(err, "%s: empty (0 bytes), not an image", name);
    if (len > IMAGE_MAX_FILE_BYTES)
        return loom_error_set(err, "%s: %zu bytes; encoded images are limited to %zu bytes (64 MB)",
                              name, len, IMAGE_MAX_FILE_BYTES);
    int refused;
    const char *fmt = sniff_format(buf, len, &refused);
    if (refused)
        return loom_error_set(err, "%s: %s images are not supported (PNG, JPEG, BMP, GIF, TGA, "
                              "binary PNM P5/P6)", name, fmt);

    if (!strcmp(fmt, "JPEG") && !jpeg_huffman_ok(buf, len))
        return loom_error_set(err, "%s: corrupt JPEG: a Huffman table of more than 256 codes", name);
    const int pnm = !strcmp(fmt, "PNM") ? pnm_check(buf, len) : 0;
    if (pnm == 1) return loom_error_set(err, "%s: corrupt PNM header: a number over 2^31", name);
    if (pnm == 2) return loom_error_set(err, "%s: truncated PNM: fewer pixels than its header says", name);

    /* 1. The header only: no pixel memory is allocated here. PNG and GIF keep
     * their size at a fixed offset; loom reads it itself, so a hostile size
     * gets loom's message even where stb_image's own, looser checks (2^24 per
     * side, 2^30 bytes) would also refuse it. */
    int64_t hw, hh;
    if (!strcmp(fmt, "PNG") && len >= 24 && !memcmp(buf + 12, "IHDR", 4)) {
        hw = ((int64_t)buf[16] << 24) | (buf[17] << 16) | (buf[18] << 8) | buf[19];
        hh = ((int64_t)buf[20] << 24) | (buf[21] << 16) | (buf[22] << 8) | buf[23];
        if (check_dims(name, fmt, hw, hh, err)) return -1;
    } else if (!strcmp(fmt, "GIF") && len >= 10) {
        hw = buf[6] | (buf[7] << 8);
        hh = buf[8] | (buf[9] << 8);
        if (check_dims(name, fmt, hw, hh, err)) return -1;
    }
    int w = 0, h = 0, comp = 0;
    if (!stbi_info_from_memory(buf, (int)len, &w, &h, &comp)) {
        const char *why = stbi_failure_reason();
        if (why && !strcmp(why, "too large"))
            return loom_error_set(err, "%s: %s header declares an image too large to decode "
                                  "(stb_image: too large); images are limited to %d per side and "
                                  "%lld pixels", name, fmt, IMAGE_MAX_SIDE,
                                  (long long)IMAGE_MAX_PIXELS);
        if (!strcmp(fmt, "TGA")) /* no signature matched and the TGA probe failed */
            return loom_error_set(err, "%s: unknown image format, not PNG, JPEG, BMP, GIF, TGA or "
                                  "binary PNM (stb_image: %s)", name, why ? why : "?");
        return loom_error_set(err, "%s: unreadable %s header, truncated or corrupt (stb_image: %s)",
                              name, fmt, why ? why : "?");
    }
    /* 2. The limits, before stb_image allocates anything for the pixels. */
    if (check_dims(name, fmt, w, h, err)) return -1;

    /* 3. Decode as RGBA (grey and palette images expand, 16-bit narrows); PNM in its own
     * channels (1 grey or 3 RGB), expanded below. stb_image 2.27 (Debian 12's) converts a
     * 16-bit PNM (maxval > 255) to another channel count with its 8-bit routine and then
     * narrows twice that buffer's bytes to 8 bits: a heap over-read (fuzz/fuzz_image.c;
     * fixed in stb_image 2.28). Asking for the file's own channels skips that conversion. */
    const int want = strcmp(fmt, "PNM") ? 4 : comp;
    if (want != 1 && want != 3 && want != 4)
        return loom_error_set(err, "%s: %s with %d channels is not supported", name, fmt, comp);
    stbi_set_flip_vertically_on_load_thread(0); /* whatever another module set globally */
    int dw = 0, dh = 0, dc = 0;
    uint8_t *px = stbi_load_from_memory(buf, (int)len, &dw, &dh, &dc, want);
    if (!px) {
        const char *why = stbi_failure_reason();
        return loom_error_set(err, "%s: cannot decode %s %dx%d, truncated or corrupt (stb_image: %s)",
                              name, fmt, w, h, why ? why : "?");
    }
    if (dw != w || dh != h) {
        stbi_image_free(px);
        return loom_error_set(err, "%s: %s decoded to %dx%d but its header says %dx%d", name, fmt,
                              dw, dh, w, h);
    }

    /* 4. Grey to RGB, and composite onto black: round(v * a / 255). */
    size_t npix = (size_t)w * (size_t)h;
    uint8_t *rgb = malloc(npix * 3);
    if (!rgb) {
        stbi_image_free(px);
        return loom_error_set(err, "%s: out of memory for a %dx%d image", name, w, h);
    }
    for (size_t i = 0; i < npix; i++) {
        const uint8_t *p = px + (size_t)want * i;
        unsigned a = want == 4 ? p[3] : 255u;
        for (int c = 0; c < 3; c++)
            rgb[3 * i + c] = (uint8_t)((p[want == 1 ? 0 : c] * a + 127u) / 255u);
    }
    stbi_image_free(px);
    img->width = w;
    img->height = h;
    img->rgb = rgb;
    return 0;
}

int image_load_memory(const void *buf, size_t len, const char *name, loom_image *img,
                      loom_error *err) {
    return decode(buf, len, name ? name : "<memory>", img, err);
}

int image_load_file(const char *path, loom_image *img, loom_error *err) {
    memset(img, 0, sizeof *img);
    if (!path) return loom_error_set(err, "image path is NULL");
    /* O_NONBLOCK: a FIFO must not block the open; it is refused below anyway. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return loom_error_set(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return loom_error_set(err, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return loom_error_set(err, "%s: is a directory, not an image file", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return loom_error_set(err, "%s: not a regular file", path);
    }
    if (st.st_size <= 0) {
        close(fd);
        return loom_error_set(err, "%s: empty file (0 bytes), not an image", path);
    }
    if ((uint64_t)st.st_size > IMAGE_MAX_FILE_BYTES) {
        close(fd);
        return loom_error_set(err, "%s: file is %lld bytes; image files are limited to %zu bytes "
                              "(64 MB)", path, (long long)st.st_size, IMAGE_MAX_FILE_BYTES);
    }
    size_t size = (size_t)st.st_size, got = 0;
    uint8_t *buf = malloc(size);
    if (!buf) {
        close(fd);
        return loom_error_set(err, "%s: out of memory for %zu bytes", path, size);
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return loom_error_set(err, "%s: read failed: %s", path, strerror(e));
        }
        if (r == 0) break; /* shrank since fstat: decode what is there */
        got += (size_t)r;
    }
    close(fd);
    int rc = decode(buf, got, path, img, err);
    free(buf);
    return rc;
}
