/* test_server.c: the server's parsers without sockets: base64 (RFC 4648's
 * vectors and every malformation) and multipart/form-data. The API itself is
 * tested over HTTP by server_test.py and fuzzed by fuzz/fuzz_server.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/b64.h"
#include "server/multipart.h"

static void test_b64_vectors(void **state) {
    (void)state;
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char enc[16];
        uint8_t dec[16];
        const size_t n = strlen(plain[i]);
        assert_int_equal(b64_encoded_len(n), strlen(coded[i]));
        b64_encode((const uint8_t *)plain[i], n, enc);
        assert_string_equal(enc, coded[i]);
        assert_int_equal(b64_decode(coded[i], strlen(coded[i]), dec, NULL), (int64_t)n);
        assert_memory_equal(dec, plain[i], n);
    }
    /* every byte value round-trips */
    uint8_t all[256], back[260];
    char enc[400];
    for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
    b64_encode(all, 256, enc);
    assert_int_equal(b64_decode(enc, strlen(enc), back, NULL), 256);
    assert_memory_equal(all, back, 256);
}

static void test_b64_lenient_and_strict(void **state) {
    (void)state;
    uint8_t out[32];
    size_t bad = 99;
    /* MIME line breaks and spaces between characters are fine; so is missing padding */
    assert_int_equal(b64_decode("Zm9v\r\nYmFy", 10, out, NULL), 6);
    assert_int_equal(b64_decode(" Zm 9v ", 7, out, NULL), 3);
    assert_int_equal(b64_decode("Zm8", 3, out, NULL), 2);
    assert_memory_equal(out, "fo", 2);
    /* a character outside the alphabet, with its offset */
    assert_int_equal(b64_decode("Zm9v*mFy", 8, out, &bad), -1);
    assert_int_equal(bad, 4);
    /* URL-safe alphabet is not base64 */
    assert_int_equal(b64_decode("Zm9-", 4, out, &bad), -1);
    /* a lone character, padding too early or too much, data after padding */
    assert_int_equal(b64_decode("Z", 1, out, &bad), -1);
    assert_int_equal(b64_decode("Z===", 4, out, &bad), -1);
    assert_int_equal(b64_decode("Zg=", 3, out, &bad), -1);
    assert_int_equal(b64_decode("Zg===", 5, out, &bad), -1);
    assert_int_equal(b64_decode("Zg==Zg==", 8, out, &bad), -1);
    assert_int_equal(bad, 4);
    assert_int_equal(b64_decode("=", 1, out, &bad), -1);
}

#define CT "multipart/form-data; boundary=XyZ"

static void test_multipart(void **state) {
    (void)state;
    static const char body[] =
        "preamble is ignored\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"model\"\r\n\r\n"
        "loom-shapes\r\n"
        "--XyZ\r\n"
        "content-disposition: form-data; name=\"file\"; filename=\"q a.wav\"\r\n"
        "Content-Type: audio/wav\r\n\r\n"
        "RIFF\r\n--XY not the boundary\r\n\r\n"
        "--XyZ--\r\n";
    multipart_part parts[4];
    int32_t n = 0;
    loom_error err = {{0}};
    assert_int_equal(multipart_parse(CT, (const uint8_t *)body, sizeof body - 1, parts, 4, &n, &err), 0);
    assert_int_equal(n, 2);
    const multipart_part *m = multipart_find(parts, n, "model"), *f = multipart_find(parts, n, "file");
    assert_non_null(m);
    assert_non_null(f);
    assert_int_equal(m->len, 11);
    assert_memory_equal(m->data, "loom-shapes", 11);
    assert_string_equal(f->filename, "q a.wav");
    assert_string_equal(f->content_type, "audio/wav");
    assert_int_equal(f->len, strlen("RIFF\r\n--XY not the boundary\r\n"));
    assert_null(multipart_find(parts, n, "nope"));
    /* quoted boundary parameter */
    char b[80];
    assert_int_equal(multipart_boundary("multipart/form-data; charset=x; boundary=\"a b\"", b, sizeof b, &err), 0);
    assert_string_equal(b, "a b");
}

static void test_multipart_refusals(void **state) {
    (void)state;
    multipart_part parts[2];
    int32_t n = 0;
    loom_error err = {{0}};
    char b[80];
    const struct {
        const char *ctype, *body, *why;
    } rows[] = {
        {"application/json", "{}", "want Content-Type multipart/form-data"},
        {"multipart/form-data", "--x\r\n", "needs a boundary"},
        {"multipart/form-data; boundary=", "--\r\n", "needs a boundary"},
        {"multipart/form-data-ish; boundary=x", "--x\r\n", "want Content-Type multipart/form-data"},
        {CT, "no delimiter at all", "without its boundary"},
        {CT, "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue without an end", "ends inside a part"},
        {CT, "--XyZ\r\nContent-Disposition: form-data; name=\"a\"", "without the end of its headers"},
        {CT, "--XyZ\r\nX-Other: 1\r\n\r\nv\r\n--XyZ--", "without Content-Disposition"},
        {CT, "--XyZ\r\nContent-Disposition: form-data\r\n\r\nv\r\n--XyZ--", "bad or missing name"},
        {CT, "--XyZ\r\nContent-Disposition: form-data; name=\"unterminated\r\n\r\nv\r\n--XyZ--", "bad or missing name"},
        {CT, "--XyZjunk\r\n", "malformed multipart delimiter"},
        {CT,
         "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ\r\nContent-Disposition: form-data; "
         "name=\"b\"\r\n\r\n2\r\n--XyZ\r\nContent-Disposition: form-data; name=\"c\"\r\n\r\n3\r\n--XyZ--",
         "more than 2 multipart parts"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        memset(&err, 0, sizeof err);
        const int rc = multipart_parse(rows[i].ctype, (const uint8_t *)rows[i].body, strlen(rows[i].body), parts, 2,
                                       &n, &err);
        if (rc != -1 || !strstr(err.msg, rows[i].why)) {
            print_error("row %zu: rc %d, message \"%s\", want \"%s\"\n", i, rc, err.msg, rows[i].why);
            fail();
        }
    }
    assert_int_equal(multipart_boundary(NULL, b, sizeof b, &err), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_vectors),
        cmocka_unit_test(test_b64_lenient_and_strict),
        cmocka_unit_test(test_multipart),
        cmocka_unit_test(test_multipart_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
