/* test_image.c: image loading (every format, alpha, limits, hostile files), Fuyu-style
 * patch preprocessing (order, padding, resize decisions) and the patch projector
 * (forward/backward against naive loops). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <stb_image_write.h>

#include "core/params.h"
#include "core/rng.h"
#include "encoders/image.h"
#include "encoders/patch.h"

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

/* The expected normalized value of a pixel code, written independently of patch.c. */
static float norm(int v) {
    return (float)((double)v / 127.5 - 1.0);
}

/* Loads path (must succeed) and checks it is w x h. */
static void load_ok(const char *path, loom_image *img, int w, int h) {
    loom_error err = {{0}};
    if (image_load_file(path, img, &err)) fail_msg("%s: %s", path, err.msg);
    assert_int_equal(img->width, w);
    assert_int_equal(img->height, h);
    assert_non_null(img->rgb);
}

/* Loading path must fail (by file and by memory when it is a regular file) with a message
 * containing the path and every non-NULL needle. */
static void expect_reject(const char *path, const char *needle1, const char *needle2) {
    loom_error err = {{0}};
    loom_image img = {.width = 7, .height = 7, .rgb = (uint8_t *)&img};
    if (!image_load_file(path, &img, &err)) {
        image_free(&img);
        fail_msg("%s: accepted (expected '%s')", path, needle1);
    }
    print_message("  rejected: %s\n", err.msg);
    assert_null(img.rgb);
    assert_int_equal(img.width, 0);
    assert_int_equal(img.height, 0);
    if (!strstr(err.msg, path)) fail_msg("path missing in '%s'", err.msg);
    if (needle1 && !strstr(err.msg, needle1)) fail_msg("expected '%s' in '%s'", needle1, err.msg);
    if (needle2 && !strstr(err.msg, needle2)) fail_msg("expected '%s' in '%s'", needle2, err.msg);
    assert_int_equal(image_load_file(path, &img, NULL), -1); /* NULL err must not crash */

    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= (off_t)IMAGE_MAX_FILE_BYTES) {
        size_t len;
        uint8_t *buf = read_file(path, &len);
        loom_error merr = {{0}};
        assert_int_equal(image_load_memory(buf, len, "mem-copy", &img, &merr), -1);
        assert_null(img.rgb);
        assert_non_null(strstr(merr.msg, "mem-copy"));
        if (needle1 && !strstr(merr.msg, needle1))
            fail_msg("memory: expected '%s' in '%s'", needle1, merr.msg);
        free(buf);
    }
}

/* ------------------------------------------------------------------------ */
/* PNG crafting: chunks with correct CRCs */

static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

static size_t put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return 4;
}

/* Appends a chunk (length, type, data, CRC of type + data) at p; returns its size. */
static size_t put_chunk(uint8_t *p, const char *type, const uint8_t *data, uint32_t n) {
    size_t o = put_be32(p, n);
    memcpy(p + o, type, 4);
    if (n) memcpy(p + o + 4, data, n);
    put_be32(p + o + 4 + n, crc32_png(p + o, 4 + (size_t)n));
    return 12 + (size_t)n;
}

/* A PNG of signature + IHDR (w x h, 8-bit RGB) + IEND: a header with no pixel data. */
static size_t craft_png_header(uint8_t *buf, uint32_t w, uint32_t h) {
    memcpy(buf, "\x89PNG\r\n\x1a\n", 8);
    uint8_t ihdr[13];
    put_be32(ihdr, w);
    put_be32(ihdr + 4, h);
    ihdr[8] = 8;  /* bit depth */
    ihdr[9] = 2;  /* colour type RGB */
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    size_t n = 8 + put_chunk(buf + 8, "IHDR", ihdr, 13);
    return n + put_chunk(buf + n, "IEND", NULL, 0);
}

static void test_png_crc(void **state) {
    (void)state;
    uint8_t buf[64];
    size_t n = craft_png_header(buf, 1, 1);
    assert_int_equal(n, 8 + 25 + 12);
    /* The IEND chunk's CRC is the well-known AE 42 60 82. */
    assert_memory_equal(buf + n - 4, "\xAE\x42\x60\x82", 4);
}

/* ------------------------------------------------------------------------ */
/* patch order and padding */

/* W=10, H=6, P=4: R=2 rows, Cn=3 cols; pixel (y, x, c) = (y*10 + x)*3 + c (0..179, unique). */
static void test_patch_order(void **state) {
    (void)state;
    enum { W = 10, H = 6, P = 4, D = P * P * 3 };
    loom_image img;
    loom_error err = {{0}};
    assert_int_equal(image_alloc(&img, W, H, &err), 0);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) img.rgb[(y * W + x) * 3 + c] = (uint8_t)((y * W + x) * 3 + c);

    float *pt = NULL;
    int32_t R = -1, Cn = -1;
    patch_plan plan;
    if (patch_image(&img, P, 8, 8, &pt, &R, &Cn, &plan, &err)) fail_msg("%s", err.msg);
    assert_int_equal(plan.resized, 0);
    assert_int_equal(plan.width, W);
    assert_int_equal(plan.height, H);
    assert_int_equal(R, 2);
    assert_int_equal(Cn, 3);

    /* Hand-computed entries: index = patch * D + (py*P + px)*3 + ch. */
    assert_true(pt[0] == -1.0f);                          /* patch 0, (0,0,R): pixel code 0 */
    assert_true(pt[1 * D + 0] == norm(12));               /* patch (0,1) starts at x=4: (0*10+4)*3 */
    assert_true(pt[0 * D + (1 * P + 2) * 3 + 1] == norm(37)); /* y=1, x=2, G: 12*3+1 */
    assert_true(pt[4 * D + (1 * P + 1) * 3 + 2] == norm(167)); /* patch (1,1): y=5, x=5, B */
    assert_true(pt[4 * D + (3 * P + 3) * 3 + 2] == -1.0f);     /* patch (1,1): y=7 >= H: pad */
    assert_true(pt[5 * D + (1 * P + 1) * 3 + 2] == norm(179)); /* patch (1,2): y=5, x=9, B */
    assert_true(pt[5 * D + (1 * P + 2) * 3 + 0] == -1.0f);     /* x=10 >= W: right padding */
    assert_true(pt[3 * D + (2 * P + 0) * 3 + 0] == -1.0f);     /* patch (1,0): y=6: bottom pad */
    assert_true(pt[3 * D + (1 * P + 3) * 3 + 0] == norm(((5 * W) + 3) * 3)); /* y=5, x=3 */

    /* Every element against the documented formula. */
    int npad = 0;
    for (int r = 0; r < R; r++)
        for (int c = 0; c < Cn; c++)
            for (int py = 0; py < P; py++)
                for (int px = 0; px < P; px++)
                    for (int ch = 0; ch < 3; ch++) {
                        int y = r * P + py, x = c * P + px;
                        float want = (y < H && x < W) ? norm((y * W + x) * 3 + ch) : -1.0f;
                        float got = pt[((r * Cn + c) * P * P + py * P + px) * 3 + ch];
                        npad += !(y < H && x < W);
                        if (got != want)
                            fail_msg("patch (%d,%d) py=%d px=%d ch=%d: got %.9g want %.9g", r, c,
                                     py, px, ch, (double)got, (double)want);
                    }
    assert_int_equal(npad, (2 * 4 * 3 * 4 - H * W) * 3); /* 8x12 padded grid minus the image */
    free(pt);

    /* patch_extract straight from the pixels gives the same bytes. */
    float *pe = malloc(sizeof(float) * 6 * D);
    assert_non_null(pe);
    patch_extract(img.rgb, W, H, P, pe);
    float *pt2 = NULL;
    assert_int_equal(patch_image(&img, P, 2, 3, &pt2, &R, &Cn, NULL, &err), 0); /* exact fit */
    assert_memory_equal(pe, pt2, sizeof(float) * 6 * D);
    free(pe);
    free(pt2);
    image_free(&img);
}

/* A white 5x3 image, P=4: one row of 2 patches; exactly the 15 image pixels are +1. */
static void test_patch_padding(void **state) {
    (void)state;
    loom_image img;
    loom_error err = {{0}};
    assert_int_equal(image_alloc(&img, 5, 3, &err), 0);
    memset(img.rgb, 255, 5 * 3 * 3);
    float *pt = NULL;
    int32_t R, Cn;
    assert_int_equal(patch_image(&img, 4, 1, 2, &pt, &R, &Cn, NULL, &err), 0);
    assert_int_equal(R, 1);
    assert_int_equal(Cn, 2);
    int ones = 0, minus = 0;
    for (int i = 0; i < 2 * 48; i++) {
        ones += pt[i] == 1.0f;
        minus += pt[i] == -1.0f;
    }
    assert_int_equal(ones, 15 * 3);
    assert_int_equal(minus, 2 * 48 - 15 * 3);
    /* Patch 1 (x 4..7): only px=0 of rows 0..2 is image. */
    for (int py = 0; py < 4; py++)
        for (int px = 0; px < 4; px++)
            for (int ch = 0; ch < 3; ch++)
                assert_true(pt[48 + (py * 4 + px) * 3 + ch] == ((py < 3 && px == 0) ? 1.0f : -1.0f));
    free(pt);
    /* A black image is indistinguishable from its padding: the background is black. */
    memset(img.rgb, 0, 5 * 3 * 3);
    assert_int_equal(patch_image(&img, 4, 1, 2, &pt, &R, &Cn, NULL, &err), 0);
    for (int i = 0; i < 2 * 48; i++) assert_true(pt[i] == -1.0f);
    free(pt);
    image_free(&img);
}

/* ------------------------------------------------------------------------ */
/* resize decisions */

static void plan_ok(int64_t w, int64_t h, int32_t P, int32_t mr, int32_t mc, int resized,
                    int32_t W2, int32_t H2, int32_t R, int32_t Cn) {
    patch_plan p;
    loom_error err = {{0}};
    if (patch_plan_image(w, h, P, mr, mc, &p, &err)) fail_msg("%s", err.msg);
    if (p.resized != resized || p.width != W2 || p.height != H2 || p.rows != R || p.cols != Cn)
        fail_msg("%lldx%lld P=%d budget %dx%d: got resized=%d %dx%d grid %dx%d, want %d %dx%d "
                 "grid %dx%d", (long long)w, (long long)h, P, mr, mc, p.resized, p.width,
                 p.height, p.rows, p.cols, resized, W2, H2, R, Cn);
}

static void test_resize_decision(void **state) {
    (void)state;
    /*      W     H     P  rows cols  resized W'   H'   R   Cn */
    plan_ok(64, 32, 8, 4, 8, 0, 64, 32, 4, 8);       /* exactly the box: kept */
    plan_ok(63, 25, 8, 4, 8, 0, 63, 25, 4, 8);       /* inside, ragged: kept, padded */
    plan_ok(1, 1, 8, 1, 1, 0, 1, 1, 1, 1);           /* tiny: never upscaled */
    plan_ok(65, 32, 8, 4, 8, 1, 64, 32, 4, 8);       /* 1 px too wide: 32*64/65 = 31.5 -> 32 */
    plan_ok(1000, 500, 8, 4, 4, 1, 32, 16, 2, 4);    /* wide: width limits */
    plan_ok(300, 1200, 10, 16, 16, 1, 40, 160, 16, 4); /* tall: height limits */
    plan_ok(8192, 1, 4, 2, 2, 1, 8, 1, 1, 2);        /* extreme aspect: the short side stays >= 1 */
    plan_ok(1, 8192, 4, 2, 2, 1, 1, 8, 2, 1);
    plan_ok(1920, 1080, 30, 36, 64, 0, 1920, 1080, 36, 64); /* Fuyu's 1920x1080 box, P=30 */
    plan_ok(3840, 2160, 30, 36, 64, 1, 1920, 1080, 36, 64);
    plan_ok(4000, 3000, 30, 36, 64, 1, 1440, 1080, 36, 48);

    /* Sweep: always fits, one side on the box, aspect within half a pixel. */
    loom_rng rng;
    rng_seed(&rng, 5);
    for (int i = 0; i < 20000; i++) {
        int64_t w = 1 + rng_below(&rng, IMAGE_MAX_SIDE), h = 1 + rng_below(&rng, IMAGE_MAX_SIDE);
        if (i % 3 == 0) h = 1 + rng_below(&rng, 64);
        int32_t P = 1 + (int32_t)rng_below(&rng, 32), mr = 1 + (int32_t)rng_below(&rng, 64),
                mc = 1 + (int32_t)rng_below(&rng, 64);
        patch_plan p;
        assert_int_equal(patch_plan_image(w, h, P, mr, mc, &p, NULL), 0);
        int64_t Wmax = (int64_t)mc * P, Hmax = (int64_t)mr * P;
        assert_true(p.width >= 1 && p.height >= 1 && p.width <= Wmax && p.height <= Hmax);
        assert_true(p.rows >= 1 && p.rows <= mr && p.cols >= 1 && p.cols <= mc);
        assert_int_equal(p.rows, (p.height + P - 1) / P);
        assert_int_equal(p.cols, (p.width + P - 1) / P);
        if (w <= Wmax && h <= Hmax) {
            assert_int_equal(p.resized, 0);
            assert_int_equal(p.width, w);
            assert_int_equal(p.height, h);
            continue;
        }
        assert_int_equal(p.resized, 1);
        assert_true(p.width <= w && p.height <= h); /* only ever downscaled */
        assert_true(p.width == Wmax || p.height == Hmax);
        /* The limiting side is on the box; the other is within half a pixel of keeping
         * the aspect ratio (unless clamped to 1): |H' - H * W'/W| <= 1/2. */
        if (w * Hmax >= h * Wmax) {
            assert_int_equal(p.width, Wmax);
            if (p.height > 1) assert_true(llabs(2 * ((int64_t)p.height * w - h * p.width)) <= w);
        } else {
            assert_int_equal(p.height, Hmax);
            if (p.width > 1) assert_true(llabs(2 * ((int64_t)p.width * h - w * p.height)) <= h);
        }
    }

    /* Bad arguments, with their messages. */
    patch_plan p;
    loom_error err = {{0}};
    assert_int_equal(patch_plan_image(10, 10, 0, 4, 4, &p, &err), -1);
    assert_non_null(strstr(err.msg, "patch size 0"));
    assert_int_equal(patch_plan_image(10, 10, PATCH_MAX_SIZE + 1, 4, 4, &p, &err), -1);
    assert_int_equal(patch_plan_image(10, 10, 8, 0, 4, &p, &err), -1);
    assert_non_null(strstr(err.msg, "budget"));
    assert_int_equal(patch_plan_image(10, 10, 8, 4, PATCH_MAX_GRID + 1, &p, &err), -1);
    assert_int_equal(patch_plan_image(0, 10, 8, 4, 4, &p, &err), -1);
    assert_non_null(strstr(err.msg, "image size"));
    assert_int_equal(patch_plan_image(10, IMAGE_MAX_SIDE + 1, 8, 4, 4, &p, &err), -1);
}

/* patch_image really resizes: a 40x20 image into a 16x8 box; a flat colour stays flat and a
 * left/right split stays split (the aspect ratio is kept, not the pixels stretched). */
static void test_resize_pixels(void **state) {
    (void)state;
    loom_image img;
    loom_error err = {{0}};
    assert_int_equal(image_alloc(&img, 40, 20, &err), 0);
    for (int y = 0; y < 20; y++)
        for (int x = 0; x < 40; x++) {
            uint8_t *p = img.rgb + (y * 40 + x) * 3;
            p[0] = 100;
            p[1] = x < 20 ? 30 : 220;
            p[2] = 200;
        }
    float *pt = NULL;
    int32_t R, Cn;
    patch_plan plan;
    if (patch_image(&img, 4, 2, 4, &pt, &R, &Cn, &plan, &err)) fail_msg("%s", err.msg);
    assert_int_equal(plan.resized, 1);
    assert_int_equal(plan.width, 16);
    assert_int_equal(plan.height, 8);
    assert_int_equal(R, 2);
    assert_int_equal(Cn, 4);
    const float tol = 1.5f / 127.5f; /* a filter may be off by a code value */
    for (int r = 0; r < R; r++)
        for (int c = 0; c < Cn; c++)
            for (int py = 0; py < 4; py++)
                for (int px = 0; px < 4; px++) {
                    const float *e = pt + ((r * Cn + c) * 16 + py * 4 + px) * 3;
                    int x = c * 4 + px; /* resized column, 0..15; the split is at 8 */
                    assert_true(fabsf(e[0] - norm(100)) <= tol);
                    assert_true(fabsf(e[2] - norm(200)) <= tol);
                    if (x <= 5) assert_true(fabsf(e[1] - norm(30)) <= tol);
                    if (x >= 10) assert_true(fabsf(e[1] - norm(220)) <= tol);
                }
    free(pt);
    /* A caller's bad image is refused, outputs cleared. */
    loom_image bad = {.width = 0, .height = 3, .rgb = img.rgb};
    pt = (float *)&bad;
    R = Cn = 9;
    assert_int_equal(patch_image(&bad, 4, 2, 4, &pt, &R, &Cn, NULL, &err), -1);
    assert_null(pt);
    assert_int_equal(R, 0);
    bad.width = 3;
    bad.rgb = NULL;
    assert_int_equal(patch_image(&bad, 4, 2, 4, &pt, &R, &Cn, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "no pixels"));
    image_free(&img);
}

/* ------------------------------------------------------------------------ */
/* loading */

static void check_pixels(const loom_image *img, const uint8_t *want_rgb, int tol) {
    for (int i = 0; i < img->width * img->height * 3; i++)
        if (abs((int)img->rgb[i] - (int)want_rgb[i]) > tol)
            fail_msg("pixel %d channel %d: got %d want %d", i / 3, i % 3, img->rgb[i], want_rgb[i]);
}

/* Alpha composited onto black, rounded: round(v * a / 255). */
static void test_alpha_composite(void **state) {
    (void)state;
    enum { N = 7 };
    const uint8_t rgba[N * 4] = {
        200, 100, 50, 255, /* opaque: unchanged */
        200, 100, 50, 0,   /* transparent: black */
        200, 100, 50, 128, /* 200*128/255 = 100.39, 50.20, 25.10 */
        255, 255, 255, 1,  /* 1 */
        3, 1, 1, 128,      /* 1.506 -> 2, 0.502 -> 1 */
        1, 1, 255, 127,    /* 0.498 -> 0, 127 */
        254, 2, 128, 254,  /* 253.004 -> 253, 1.99 -> 2, 127.498 -> 127 */
    };
    const uint8_t want[N * 3] = {200, 100, 50, 0, 0, 0, 100, 50, 25, 1, 1, 1,
                                 2, 1, 1, 0, 0, 127, 253, 2, 127};
    char path[1200];
    scratch_path(path, sizeof path, "alpha.png");
    assert_true(stbi_write_png(path, N, 1, 4, rgba, N * 4));
    loom_image img;
    load_ok(path, &img, N, 1);
    check_pixels(&img, want, 0);
    image_free(&img);

    /* Grey + alpha (2 channels): grey expands, then the same compositing. */
    const uint8_t ga[3 * 2] = {100, 51, 255, 0, 9, 255};
    const uint8_t want_ga[3 * 3] = {20, 20, 20, 0, 0, 0, 9, 9, 9};
    scratch_path(path, sizeof path, "grey_alpha.png");
    assert_true(stbi_write_png(path, 3, 1, 2, ga, 3 * 2));
    load_ok(path, &img, 3, 1);
    check_pixels(&img, want_ga, 0);
    image_free(&img);

    /* The same alpha through TGA (32-bit) and BMP (stb writes 32-bit BMP for 4 channels). */
    scratch_path(path, sizeof path, "alpha.tga");
    assert_true(stbi_write_tga(path, N, 1, 4, rgba));
    load_ok(path, &img, N, 1);
    check_pixels(&img, want, 0);
    image_free(&img);
}

/* A 5x4 image with distinct, non-symmetric values, so a flip or channel swap shows. */
static void make_pattern(uint8_t *rgb, int w, int h) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) rgb[(y * w + x) * 3 + c] = (uint8_t)(y * 50 + x * 9 + c * 3 + 1);
}

static const char *fixture_path(char *buf, size_t cap, const char *name) {
    /* __FILE__ is this source file's absolute path under CMake: its directory + fixtures/images. */
    const char *f = __FILE__, *slash = strrchr(f, '/');
    int dir = slash ? (int)(slash - f) : 1;
    snprintf(buf, cap, "%.*s/fixtures/images/%s", dir, slash ? f : ".", name);
    return buf;
}

static void test_load_formats(void **state) {
    (void)state;
    enum { W = 5, H = 4 };
    uint8_t rgb[W * H * 3], grey[W * H], grey_rgb[W * H * 3];
    make_pattern(rgb, W, H);
    for (int i = 0; i < W * H; i++) {
        grey[i] = (uint8_t)(i * 13);
        grey_rgb[3 * i] = grey_rgb[3 * i + 1] = grey_rgb[3 * i + 2] = grey[i];
    }
    char path[1200];
    loom_image img;

    scratch_path(path, sizeof path, "rgb.png");
    assert_true(stbi_write_png(path, W, H, 3, rgb, W * 3));
    load_ok(path, &img, W, H);
    check_pixels(&img, rgb, 0);
    image_free(&img);

    scratch_path(path, sizeof path, "grey.png");
    assert_true(stbi_write_png(path, W, H, 1, grey, W));
    load_ok(path, &img, W, H);
    check_pixels(&img, grey_rgb, 0);
    image_free(&img);

    scratch_path(path, sizeof path, "rgb.bmp");
    assert_true(stbi_write_bmp(path, W, H, 3, rgb));
    load_ok(path, &img, W, H);
    check_pixels(&img, rgb, 0);
    image_free(&img);

    scratch_path(path, sizeof path, "rgb_rle.tga");
    stbi_write_tga_with_rle = 1;
    assert_true(stbi_write_tga(path, W, H, 3, rgb));
    load_ok(path, &img, W, H);
    check_pixels(&img, rgb, 0);
    image_free(&img);
    scratch_path(path, sizeof path, "rgb_raw.tga");
    stbi_write_tga_with_rle = 0;
    assert_true(stbi_write_tga(path, W, H, 3, rgb));
    stbi_write_tga_with_rle = 1;
    load_ok(path, &img, W, H);
    check_pixels(&img, rgb, 0);
    image_free(&img);

    /* JPEG is lossy: a flat 16x16 colour at quality 100 comes back within a few codes. */
    uint8_t flat[16 * 16 * 3];
    for (int i = 0; i < 16 * 16; i++) {
        flat[3 * i] = 100;
        flat[3 * i + 1] = 150;
        flat[3 * i + 2] = 200;
    }
    scratch_path(path, sizeof path, "flat.jpg");
    assert_true(stbi_write_jpg(path, 16, 16, 3, flat, 100));
    load_ok(path, &img, 16, 16);
    check_pixels(&img, flat, 3);
    image_free(&img);

    /* PNM by hand: P6 (RGB) and P5 (grey), with a comment in the header. */
    const char p6_head[] = "P6\n# loom test\n5 4\n255\n";
    uint8_t p6[sizeof p6_head - 1 + sizeof rgb];
    memcpy(p6, p6_head, sizeof p6_head - 1);
    memcpy(p6 + sizeof p6_head - 1, rgb, sizeof rgb);
    scratch_path(path, sizeof path, "rgb.ppm");
    write_file(path, p6, sizeof p6);
    load_ok(path, &img, W, H);
    check_pixels(&img, rgb, 0);
    image_free(&img);

    const char p5_head[] = "P5 5 4 255\n";
    uint8_t p5[sizeof p5_head - 1 + sizeof grey];
    memcpy(p5, p5_head, sizeof p5_head - 1);
    memcpy(p5 + sizeof p5_head - 1, grey, sizeof grey);
    scratch_path(path, sizeof path, "grey.pgm");
    write_file(path, p5, sizeof p5);
    load_ok(path, &img, W, H);
    check_pixels(&img, grey_rgb, 0);
    image_free(&img);

    /* GIF: the hand-made fixture (tests/fixtures/images/README.md documents its bytes). */
    const uint8_t gif_want[3 * 2 * 3] = {10, 20, 30, 200, 100, 50, 200, 100, 50,
                                         200, 100, 50, 10, 20, 30, 10, 20, 30};
    load_ok(fixture_path(path, sizeof path, "tiny_3x2.gif"), &img, 3, 2);
    check_pixels(&img, gif_want, 0);
    image_free(&img);

    /* From memory: the same bytes decode the same; NULL name is "<memory>". */
    size_t len;
    uint8_t *buf = read_file(fixture_path(path, sizeof path, "tiny_3x2.gif"), &len);
    loom_error err = {{0}};
    assert_int_equal(len, 37);
    assert_int_equal(image_load_memory(buf, len, NULL, &img, &err), 0);
    check_pixels(&img, gif_want, 0);
    image_free(&img);
    assert_int_equal(image_load_memory(buf, 0, NULL, &img, &err), -1);
    assert_non_null(strstr(err.msg, "<memory>: empty"));
    assert_int_equal(image_load_memory(NULL, 10, "x", &img, &err), -1);
    free(buf);
    image_free(&img); /* twice is fine */
    image_free(NULL);
}

static void test_reject_files(void **state) {
    (void)state;
    char path[1200];

    scratch_path(path, sizeof path, "empty.png");
    write_file(path, "", 0);
    expect_reject(path, "(0 bytes)", "empty file");

    scratch_path(path, sizeof path, "missing.png");
    expect_reject(path, "cannot open", "No such file");

    expect_reject(g_dir, "is a directory", NULL);

    scratch_path(path, sizeof path, "fifo");
    assert_int_equal(mkfifo(path, 0600), 0);
    expect_reject(path, "not a regular file", NULL);

    scratch_path(path, sizeof path, "notes.txt");
    const char *text = "hello, this is a text file, not an image\n";
    write_file(path, text, strlen(text));
    expect_reject(path, "unknown image format", "stb_image:");

    scratch_path(path, sizeof path, "fake.psd");
    write_file(path, "8BPS\0\1\0\0\0\0\0\0\0\3", 14);
    expect_reject(path, "PSD images are not supported", NULL);
    scratch_path(path, sizeof path, "ascii.ppm");
    write_file(path, "P3\n1 1\n255\n0 0 0\n", 17);
    expect_reject(path, "ASCII/bitmap PNM images are not supported", NULL);

    /* Truncated PNG: a valid 32x32 image cut to half (header intact: the decode fails), and
     * cut inside IHDR (the header itself is unreadable). */
    uint8_t rgb[32 * 32 * 3];
    for (int i = 0; i < (int)sizeof rgb; i++) rgb[i] = (uint8_t)(i * 7 + i / 96);
    scratch_path(path, sizeof path, "full.png");
    assert_true(stbi_write_png(path, 32, 32, 3, rgb, 32 * 3));
    size_t len;
    uint8_t *png = read_file(path, &len);
    loom_image img;
    load_ok(path, &img, 32, 32); /* the whole file is fine */
    image_free(&img);
    scratch_path(path, sizeof path, "half.png");
    write_file(path, png, len / 2);
    expect_reject(path, "cannot decode PNG 32x32", "stb_image:");
    scratch_path(path, sizeof path, "cut_ihdr.png");
    write_file(path, png, 20);
    expect_reject(path, "unreadable PNG header", "stb_image:");
    scratch_path(path, sizeof path, "sig_only.png");
    write_file(path, png, 8);
    expect_reject(path, "PNG", "stb_image:");
    free(png);

    /* A header claiming 100000 x 100000 (valid CRCs, no pixel data): refused on the header. */
    uint8_t hdr[64];
    size_t n = craft_png_header(hdr, 100000, 100000);
    scratch_path(path, sizeof path, "huge_header.png");
    write_file(path, hdr, n);
    expect_reject(path, "PNG image is 100000x100000", "limited to 8192");
    n = craft_png_header(hdr, 0xFFFFFFFFu, 1);
    write_file(path, hdr, n);
    expect_reject(path, "PNG image is 4294967295x1", "limited to 8192");
    n = craft_png_header(hdr, 0, 5);
    write_file(path, hdr, n);
    expect_reject(path, "must be >= 1", NULL);
    /* Within loom's limits, the header-only file gets as far as the decoder. */
    n = craft_png_header(hdr, 16, 16);
    write_file(path, hdr, n);
    expect_reject(path, "cannot decode PNG 16x16", NULL);

    /* A GIF whose logical screen claims 60000 x 60000. */
    uint8_t gif[37];
    size_t glen;
    uint8_t *g = read_file(fixture_path(path, sizeof path, "tiny_3x2.gif"), &glen);
    assert_int_equal(glen, sizeof gif);
    memcpy(gif, g, sizeof gif);
    free(g);
    gif[6] = gif[8] = 0x60;
    gif[7] = gif[9] = 0xEA; /* 0xEA60 = 60000 */
    scratch_path(path, sizeof path, "huge.gif");
    write_file(path, gif, sizeof gif);
    expect_reject(path, "GIF image is 60000x60000", "limited to 8192");

    /* A BMP whose header claims 20000 x 20000 (stb's info reads it; loom's limit refuses). */
    uint8_t bmp_rgb[3] = {1, 2, 3};
    scratch_path(path, sizeof path, "huge.bmp");
    assert_true(stbi_write_bmp(path, 1, 1, 3, bmp_rgb));
    uint8_t *bmp = read_file(path, &len);
    put_be32(bmp + 18, 0x204E0000u); /* little-endian 20000 at offset 18 (width) */
    put_be32(bmp + 22, 0x204E0000u); /* and 22 (height) */
    write_file(path, bmp, len);
    free(bmp);
    expect_reject(path, "BMP image is 20000x20000", "limited to 8192");
}

/* Real, decodable PNGs over the limits: 8193 x 1 (side) and a decompression bomb, 4097 x 4097
 * zeros (16.8 M pixels, > 16,777,216) that compresses to a few tens of KB. */
static void test_reject_bombs(void **state) {
    (void)state;
    char path[1200];
    uint8_t *zeros = calloc((size_t)4097 * 4097, 1);
    assert_non_null(zeros);

    scratch_path(path, sizeof path, "wide.png");
    assert_true(stbi_write_png(path, 8193, 1, 1, zeros, 8193));
    expect_reject(path, "PNG image is 8193x1", "limited to 8192");

    scratch_path(path, sizeof path, "bomb.png");
    assert_true(stbi_write_png(path, 4097, 4097, 1, zeros, 4097));
    free(zeros);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    print_message("  bomb.png: %lld bytes for %d pixels\n", (long long)st.st_size, 4097 * 4097);
    assert_true(st.st_size < 1024 * 1024);
    expect_reject(path, "4097x4097 = 16785409 pixels", "the limit is 16777216");

    /* 4096 x 4096 is exactly the limit: accepted (and decoded: 48 MB of RGB). */
    zeros = calloc((size_t)4096 * 4096, 1);
    assert_non_null(zeros);
    zeros[0] = 77;
    scratch_path(path, sizeof path, "max.png");
    assert_true(stbi_write_png(path, 4096, 4096, 1, zeros, 4096));
    free(zeros);
    loom_image img;
    load_ok(path, &img, 4096, 4096);
    assert_int_equal(img.rgb[0], 77);
    assert_int_equal(img.rgb[3 * 4096 * 4096 - 1], 0);
    image_free(&img);
    remove(path);

    /* A file over 64 MB is refused from its size alone (a sparse file: nothing is written). */
    scratch_path(path, sizeof path, "big.png");
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(ftruncate(fileno(fp), (off_t)IMAGE_MAX_FILE_BYTES + 1), 0);
    fclose(fp);
    expect_reject(path, "limited to 67108864 bytes", NULL);
    loom_error err = {{0}};
    static const uint8_t one[1] = {0}; /* the size is refused before any byte is read */
    assert_int_equal(image_load_memory(one, IMAGE_MAX_FILE_BYTES + 1, "m", &img, &err), -1);
    assert_non_null(strstr(err.msg, "limited to 67108864 bytes"));
    remove(path);
}

static void test_image_alloc(void **state) {
    (void)state;
    loom_image img;
    loom_error err = {{0}};
    assert_int_equal(image_alloc(&img, 3, 2, &err), 0);
    for (int i = 0; i < 18; i++) assert_int_equal(img.rgb[i], 0);
    assert_int_equal(image_check(&img, &err), 0);
    image_free(&img);
    assert_int_equal(image_alloc(&img, 0, 2, &err), -1);
    assert_null(img.rgb);
    assert_int_equal(image_alloc(&img, IMAGE_MAX_SIDE + 1, 1, &err), -1);
    assert_int_equal(image_alloc(&img, 4097, 4097, &err), -1);
    assert_non_null(strstr(err.msg, "limit"));
    assert_int_equal(image_check(NULL, &err), -1);
}

/* ------------------------------------------------------------------------ */
/* the projector */

static void test_patch_params(void **state) {
    (void)state;
    patch_config pc = {.patch = 4, .d_model = 24};
    param_table t = {0};
    loom_error err = {{0}};
    assert_int_equal(patch_register(&pc, &t, &err), 0);
    const param_info *w = params_find(&t, "patch.w"), *b = params_find(&t, "patch.b");
    assert_non_null(w);
    assert_non_null(b);
    assert_int_equal(w->ndim, 2);
    assert_int_equal(w->shape[0], 24);
    assert_int_equal(w->shape[1], 48);
    assert_int_equal(w->decay, 1);
    assert_int_equal(b->ndim, 1);
    assert_int_equal(b->shape[0], 24);
    assert_int_equal(b->decay, 0);
    assert_int_equal(patch_register(&pc, &t, &err), -1); /* duplicate */
    assert_non_null(strstr(err.msg, "duplicate"));

    float *base = floats_alloc(t.total);
    assert_non_null(base);
    patch_weights pw;
    patch_bind(&pc, &t, base, &pw);
    assert_ptr_equal(pw.w, base + w->offset);
    assert_ptr_equal(pw.b, base + b->offset);
    loom_rng rng;
    rng_seed(&rng, 3);
    for (int j = 0; j < 24; j++) pw.b[j] = 5.0f;
    patch_init_weights(&pc, &pw, &rng);
    double s = 0, s2 = 0;
    for (int i = 0; i < 24 * 48; i++) {
        s += pw.w[i];
        s2 += (double)pw.w[i] * pw.w[i];
    }
    double mean = s / (24 * 48), std = sqrt(s2 / (24 * 48) - mean * mean);
    assert_true(fabs(mean) < 0.003 && fabs(std - 0.02) < 0.003);
    for (int j = 0; j < 24; j++) assert_true(pw.b[j] == 0.0f);
    free(base);
    params_free(&t);

    patch_config bad = {.patch = 0, .d_model = 8};
    assert_int_equal(patch_config_check(&bad, &err), -1);
    bad.patch = 8;
    bad.d_model = 0;
    assert_int_equal(patch_config_check(&bad, &err), -1);
    assert_int_equal(patch_register(&bad, &t, &err), -1);
    params_free(&t);
}

static float max_abs_diff(const float *a, const float *b, int64_t n) {
    float m = 0;
    for (int64_t i = 0; i < n; i++) m = fmaxf(m, fabsf(a[i] - b[i]));
    return m;
}

/* Forward into a strided output and backward from a strided dout, against the naive loops;
 * the gradients accumulate onto non-zero starting values. */
static void test_patch_forward_backward(void **state) {
    (void)state;
    enum { P = 4, C = 24, D = P * P * 3, N = 37, LDO = C + 5 };
    patch_config pc = {.patch = P, .d_model = C};
    loom_rng rng;
    rng_seed(&rng, 11);
    float *w = malloc(sizeof(float) * C * D), *b = malloc(sizeof(float) * C);
    float *x = malloc(sizeof(float) * N * D), *dout = malloc(sizeof(float) * N * LDO);
    float *out = malloc(sizeof(float) * N * LDO), *out_ref = malloc(sizeof(float) * N * LDO);
    float *gw = malloc(sizeof(float) * C * D), *gb = malloc(sizeof(float) * C);
    float *gw_ref = malloc(sizeof(float) * C * D), *gb_ref = malloc(sizeof(float) * C);
    assert_true(w && b && x && dout && out && out_ref && gw && gb && gw_ref && gb_ref);
    for (int i = 0; i < C * D; i++) w[i] = 0.1f * rng_normal(&rng);
    for (int i = 0; i < C; i++) b[i] = rng_normal(&rng);
    for (int i = 0; i < N * D; i++) x[i] = 2.0f * rng_uniform(&rng) - 1.0f;
    for (int i = 0; i < N * LDO; i++) {
        dout[i] = (i % LDO) < C ? rng_normal(&rng) : NAN; /* the gap must never be read */
        out[i] = out_ref[i] = -7.0f;                      /* ... nor written */
    }
    for (int i = 0; i < C * D; i++) gw[i] = gw_ref[i] = 0.5f;
    for (int i = 0; i < C; i++) gb[i] = gb_ref[i] = -0.25f;
    patch_weights pw = {w, b}, g = {gw, gb}, g_ref = {gw_ref, gb_ref};

    patch_forward(&pc, &pw, x, N, out, LDO);
    patch_forward_ref(&pc, &pw, x, N, out_ref, LDO);
    float m = 0;
    for (int n = 0; n < N; n++)
        for (int j = 0; j < LDO; j++) {
            if (j >= C) {
                assert_true(out[n * LDO + j] == -7.0f);
                continue;
            }
            m = fmaxf(m, fabsf(out[n * LDO + j] - out_ref[n * LDO + j]));
        }
    /* An independent spot check of one output: row 5, channel 7. */
    double s = b[7];
    for (int k = 0; k < D; k++) s += (double)x[5 * D + k] * w[7 * D + k];
    assert_true(fabs(out[5 * LDO + 7] - s) < 1e-5);
    print_message("  forward max |fast - ref| = %.3g\n", (double)m);
    assert_true(m < 1e-5f);

    patch_backward(&pc, &pw, &g, x, N, dout, LDO);
    patch_backward_ref(&pc, &pw, &g_ref, x, N, dout, LDO);
    float mw = max_abs_diff(gw, gw_ref, C * D), mb = max_abs_diff(gb, gb_ref, C);
    print_message("  backward max |fast - ref|: dW %.3g db %.3g\n", (double)mw, (double)mb);
    assert_true(mw < 1e-4f && mb < 1e-4f);
    /* Spot check: db[3] = -0.25 + sum_n dout[n, 3]; dW[2, 9] = 0.5 + sum_n dout[n,2] x[n,9]. */
    double sb = -0.25, sw = 0.5;
    for (int n = 0; n < N; n++) {
        sb += dout[n * LDO + 3];
        sw += (double)dout[n * LDO + 2] * x[n * D + 9];
    }
    assert_true(fabs(gb[3] - sb) < 1e-4 && fabs(gw[2 * D + 9] - sw) < 1e-4);

    /* N = 0 changes nothing. */
    memcpy(gw_ref, gw, sizeof(float) * C * D);
    patch_forward(&pc, &pw, x, 0, out, LDO);
    patch_backward(&pc, &pw, &g, x, 0, dout, LDO);
    assert_memory_equal(gw, gw_ref, sizeof(float) * C * D);

    free(w); free(b); free(x); free(dout); free(out); free(out_ref);
    free(gw); free(gb); free(gw_ref); free(gb_ref);
}

/* End to end: a PNG file -> patches -> projector, the first patch against a hand computation. */
static void test_file_to_embeddings(void **state) {
    (void)state;
    uint8_t rgb[6 * 5 * 3];
    make_pattern(rgb, 6, 5);
    char path[1200];
    scratch_path(path, sizeof path, "e2e.png");
    assert_true(stbi_write_png(path, 6, 5, 3, rgb, 6 * 3));
    loom_image img;
    load_ok(path, &img, 6, 5);
    float *pt;
    int32_t R, Cn;
    loom_error err = {{0}};
    assert_int_equal(patch_image(&img, 4, 4, 4, &pt, &R, &Cn, NULL, &err), 0);
    assert_int_equal(R * Cn, 4);
    enum { C = 3, D = 48 };
    float w[C * D], b[C] = {0.5f, -1.0f, 0.0f}, out[4 * C];
    for (int i = 0; i < C * D; i++) w[i] = (float)((i % 7) - 3) * 0.01f;
    patch_config pc = {.patch = 4, .d_model = C};
    patch_weights pw = {w, b};
    patch_forward(&pc, &pw, pt, 4, out, C);
    for (int j = 0; j < C; j++) {
        double s = b[j];
        for (int py = 0; py < 4; py++)
            for (int px = 0; px < 4; px++)
                for (int ch = 0; ch < 3; ch++)
                    s += (double)w[j * D + (py * 4 + px) * 3 + ch] * norm(rgb[(py * 6 + px) * 3 + ch]);
        assert_true(fabs(out[j] - s) < 1e-5);
    }
    free(pt);
    image_free(&img);
}

static int setup(void **state) {
    (void)state;
    const char *base = getenv("LOOM_TEST_TMP");
    snprintf(g_dir, sizeof g_dir, "%s/image_test_XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    DIR *d = opendir(g_dir);
    if (d) {
        char path[1400];
        for (struct dirent *e; (e = readdir(d));) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(path, sizeof path, "%s/%s", g_dir, e->d_name);
            remove(path);
        }
        closedir(d);
    }
    return rmdir(g_dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_crc),
        cmocka_unit_test(test_patch_order),
        cmocka_unit_test(test_patch_padding),
        cmocka_unit_test(test_resize_decision),
        cmocka_unit_test(test_resize_pixels),
        cmocka_unit_test(test_alpha_composite),
        cmocka_unit_test(test_load_formats),
        cmocka_unit_test(test_reject_files),
        cmocka_unit_test(test_reject_bombs),
        cmocka_unit_test(test_image_alloc),
        cmocka_unit_test(test_patch_params),
        cmocka_unit_test(test_patch_forward_backward),
        cmocka_unit_test(test_file_to_embeddings),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
