/* test_png.c: PNG writing with tEXt metadata (heads/png.h), read back by
 * loom's own loader (stb_image) and by png_read_text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "encoders/image.h"
#include "heads/png.h"

static void test_crc(void **state) {
    (void)state;
    assert_int_equal(png_crc32(0, (const uint8_t *)"123456789", 9), 0xCBF43926u);
    assert_int_equal(png_crc32(png_crc32(0, (const uint8_t *)"1234", 4), (const uint8_t *)"56789", 5),
                     0xCBF43926u);
}

static void test_round_trip(void **state) {
    (void)state;
    loom_error err = {{0}};
    uint8_t rgb[5 * 3 * 3];
    for (int i = 0; i < 45; i++) rgb[i] = (uint8_t)(i * 37 + 11);
    png_text meta[3] = {{"prompt", "a large red circle at the top left"}, {"seed", "7"},
                        {"model", "models/loom-shapes.safetensors"}};
    uint8_t *png;
    size_t len;
    assert_int_equal(png_encode(rgb, 5, 3, meta, 3, &png, &len, &err), 0);
    loom_image img;
    assert_int_equal(image_load_memory(png, len, "t.png", &img, &err), 0);
    assert_int_equal(img.width, 5);
    assert_int_equal(img.height, 3);
    assert_memory_equal(img.rgb, rgb, sizeof rgb);
    image_free(&img);
    char v[256];
    assert_int_equal(png_read_text(png, len, "prompt", v, sizeof v), 0);
    assert_string_equal(v, "a large red circle at the top left");
    assert_int_equal(png_read_text(png, len, "seed", v, sizeof v), 0);
    assert_string_equal(v, "7");
    assert_int_equal(png_read_text(png, len, "model", v, sizeof v), 0);
    assert_int_equal(png_read_text(png, len, "missing", v, sizeof v), -1);
    assert_int_equal(png_read_text(png, len, "prompt", v, 4), -1); /* too small for the value */
    /* a corrupted chunk fails its CRC */
    png[40] ^= 1;
    assert_int_equal(png_read_text(png, len, "seed", v, sizeof v), -1);
    free(png);
}

static void test_bad_arguments(void **state) {
    (void)state;
    loom_error err = {{0}};
    uint8_t rgb[3] = {1, 2, 3}, *png;
    size_t len;
    png_text bad[1] = {{"", "x"}};
    assert_int_equal(png_encode(rgb, 1, 1, bad, 1, &png, &len, &err), -1);
    png_text bad2[1] = {{"two  spaces", "x"}};
    assert_int_equal(png_encode(rgb, 1, 1, bad2, 1, &png, &len, &err), -1);
    assert_int_equal(png_encode(rgb, 0, 1, NULL, 0, &png, &len, &err), -1);
    assert_int_equal(png_write_file("/nonexistent-dir/x.png", rgb, 1, 1, NULL, 0, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x.png"));
}

static void test_write_file(void **state) {
    (void)state;
    loom_error err = {{0}};
    char path[] = "/tmp/loom_test_png_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    uint8_t rgb[2 * 2 * 3] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255};
    png_text meta[1] = {{"seed", "42"}};
    assert_int_equal(png_write_file(path, rgb, 2, 2, meta, 1, &err), 0);
    loom_image img;
    assert_int_equal(image_load_file(path, &img, &err), 0);
    assert_memory_equal(img.rgb, rgb, sizeof rgb);
    image_free(&img);
    remove(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_write_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
