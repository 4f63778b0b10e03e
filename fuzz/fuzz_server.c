/* fuzz_server.c: loom serve's request handling (server/api.c) on hostile requests,
 * with the shipped model behind it, no sockets.
 *
 * The first input byte picks what the rest is:
 *   0  a POST /v1/chat/completions body (application/json)
 *   1  a POST /v1/images/generations body (application/json)
 *   2  a POST /v1/audio/transcriptions body (multipart/form-data; boundary=loomfuzz)
 *   3  "METHOD PATH CONTENT-TYPE\n" then a body: any route, any content type
 *   4  base64 text: b64_decode, and decode(encode(x)) == x for the decoded bytes
 *   5  "CONTENT-TYPE\n" then a body for multipart_parse alone
 * Every response must be well formed: a status in 200..599; a JSON body that
 * parses, with error.message on every 4xx/5xx; a stream whose events parse and
 * that ends (bounded) with [DONE]. A crash, sanitizer report or a broken
 * response is a finding. */
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NAME "fuzz_server"
#include "fuzz_common.h"

#include "model/model.h"
#include "server/api.h"
#include "server/b64.h"
#include "server/multipart.h"

#ifndef LOOM_SOURCE_DIR
#define LOOM_SOURCE_DIR "."
#endif

static loom_model *g_model;
static api_server *g_api;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    loom_error err = {{0}};
    const char *path = LOOM_SOURCE_DIR "/models/loom-shapes.safetensors";
    if (!(g_model = model_load(path, &err))) fail(path, err.msg);
    api_params p = api_default_params();
    p.model_path = path;
    /* keep executions quick: an image is 64 guided decoding steps and a read-back
     * caption, about 16 s with the 8-layer model under the sanitizers */
    p.max_images = 1;
    p.max_tries = 1;
    if (!(g_api = api_server_new(g_model, &p, &err))) fail("api_server_new", err.msg);
    return 0;
}

static void check_json(const char *body, size_t len, int status) {
    cJSON *j = cJSON_ParseWithLength(body, len);
    if (!j) fail("response", "a JSON response that does not parse");
    if (status >= 400) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message"))) fail("response", "an error without error.message");
    }
    cJSON_Delete(j);
}

static void check_response(api_response *r) {
    if (r->status < 200 || r->status > 599) fail("response", "status out of range");
    if (r->stream) {
        /* read it all (bounded), then every event must parse and the last be [DONE] */
        size_t cap = 1 << 16, len = 0;
        char *all = malloc(cap);
        if (!all) fail("stream", "out of memory");
        for (int i = 0; i < 10000; i++) {
            if (cap - len < 4096) {
                char *b = realloc(all, cap *= 2);
                if (!b) fail("stream", "out of memory");
                all = b;
            }
            const size_t n = api_stream_read(r->stream, all + len, 4096);
            if (n == 0) break;
            len += n;
        }
        if (len < 14 || memcmp(all + len - 14, "data: [DONE]\n\n", 14)) fail("stream", "does not end with [DONE]");
        for (char *ev = all; ev < all + len - 14;) {
            char *end = strstr(ev, "\n\n");
            if (!end || strncmp(ev, "data: ", 6)) fail("stream", "a malformed event");
            check_json(ev + 6, (size_t)(end - ev - 6), 200);
            ev = end + 2;
        }
        free(all);
    } else if (r->content_type && !strcmp(r->content_type, "application/json")) {
        check_json(r->body, r->len, r->status);
    } else if (r->status >= 400) {
        fail("response", "an error that is not JSON");
    }
}

static void handle(const char *method, const char *path, const char *ctype, const uint8_t *body, size_t n) {
    api_request rq = {.method = method, .path = path, .content_type = ctype, .body = body, .len = n};
    api_response r;
    api_handle(g_api, &rq, &r);
    check_response(&r);
    api_response_free(&r);
}

/* The first line of data (at most cap - 1 bytes, no NULs) into out; the rest in *rest. */
static size_t first_line(const uint8_t *data, size_t size, char *out, size_t cap, const uint8_t **rest) {
    size_t i = 0;
    while (i < size && data[i] != '\n' && i + 1 < cap) {
        out[i] = data[i] ? (char)data[i] : ' ';
        i++;
    }
    out[i] = '\0';
    *rest = data + (i < size ? i + 1 : size);
    return size - (size_t)(*rest - data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t kind = data[0] % 6;
    data++, size--;
    char line[512];
    const uint8_t *rest;
    switch (kind) {
    case 0: handle("POST", "/v1/chat/completions", "application/json", data, size); break;
    case 1: handle("POST", "/v1/images/generations", "application/json; charset=utf-8", data, size); break;
    case 2: handle("POST", "/v1/audio/transcriptions", "multipart/form-data; boundary=loomfuzz", data, size); break;
    case 3: {
        const size_t n = first_line(data, size, line, sizeof line, &rest);
        char *method = strtok(line, " "), *path = method ? strtok(NULL, " ") : NULL;
        char *ctype = path ? strtok(NULL, "") : NULL;
        handle(method ? method : "", path ? path : "", ctype, rest, n);
        break;
    }
    case 4: {
        uint8_t *out = malloc(size / 4 * 3 + 3);
        size_t bad = 0;
        const int64_t k = b64_decode((const char *)data, size, out, &bad);
        if (k < 0 && bad > size) fail("b64_decode", "bad offset past the input");
        if (k >= 0) {
            char *enc = malloc(b64_encoded_len((size_t)k) + 1);
            uint8_t *back = malloc((size_t)k + 3);
            b64_encode(out, (size_t)k, enc);
            const int64_t k2 = b64_decode(enc, strlen(enc), back, NULL);
            if (k2 != k || memcmp(back, out, (size_t)k)) fail("b64", "decode(encode(x)) != x");
            free(enc);
            free(back);
        }
        free(out);
        break;
    }
    default: {
        const size_t n = first_line(data, size, line, sizeof line, &rest);
        multipart_part parts[8];
        int32_t np = 0;
        loom_error err = {{0}};
        if (!multipart_parse(line, rest, n, parts, 8, &np, &err))
            for (int32_t i = 0; i < np; i++)
                if (parts[i].data < rest || parts[i].data + parts[i].len > rest + n) fail("multipart", "a part outside the body");
        break;
    }
    }
    return 0;
}
