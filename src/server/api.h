/* api.h: what `loom serve` answers, independent of the HTTP library: one
 * request (method, path, content type, body) in, one response out. The HTTP
 * layer (server/http.c, libmicrohttpd) only moves bytes; everything a
 * stranger's request can reach is here, so it can be tested and fuzzed
 * without sockets.
 *
 *   GET  /                          the demo page (web/index.html)
 *   GET  /health                    {"status":"ok", ...}; never waits for a model slot
 *   GET  /v1/models                 the served model, OpenAI's list shape
 *   POST /v1/chat/completions       OpenAI chat: text, image_url (data: URLs) and
 *                                   input_audio parts; "stream": true answers as
 *                                   server-sent events
 *   POST /v1/images/generations     {"prompt": ...} -> b64_json PNGs
 *   POST /v1/audio/transcriptions   multipart/form-data with "file"
 *
 * Requests use the CLI's preprocessing and prompt template (model/infer.h):
 * the same image and question give the same answer as `loom ask`, the same
 * prompt and seed the same PNG bytes as `loom imagine`. The model is
 * single-turn: a chat answers its last user message. Text answers are
 * greedy; "temperature" applies to images only.
 *
 * Errors are OpenAI's shape, {"error": {"message", "type", "param", "code"}},
 * with a 4xx for anything the client can fix and 5xx only for the server's
 * own failures. A model slot (an inference context) serves one request at a
 * time; requests beyond the slots wait for one. The slots' text answers decode
 * together: each decoding step runs the next token of every answering slot at
 * once, on one thread (server/stepper.h), so concurrent requests share each
 * pass over the weights.
 *
 *     api_server *s = api_server_new(model, &params, &err);
 *     api_response r;
 *     api_handle(s, &(api_request){"POST", "/v1/chat/completions", "application/json", body, n}, &r);
 *     ... send r.status, r.content_type, r.body (or api_stream_read until 0) ...
 *     api_response_free(&r);
 */
#ifndef LOOM_SERVER_API_H
#define LOOM_SERVER_API_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "model/model.h"

typedef struct api_server api_server;
typedef struct api_stream api_stream;

enum { API_MAX_IMAGES = 64 }; /* the most max_images may be */

typedef struct api_params {
    const char *model_path;  /* as given to -m: reported in PNG metadata like the CLI */
    const char *model_id;    /* the id clients name; NULL: the file name without extension */
    int32_t slots;           /* concurrent inferences (>= 1) */
    int32_t slot_threads;    /* OpenMP threads each inference's prompt uses (>= 1) */
    int32_t step_threads;    /* OpenMP threads of the decoding step the slots' answers share */
    int32_t max_images;      /* most images one generation request may ask for (its "n",
                              * 1..API_MAX_IMAGES) */
    int32_t max_tries;       /* most draws per image a generation request may ask for (its
                              * "tries", 1..IMAGINE_MAX_TRIES; the default is
                              * IMAGINE_DEFAULT_TRIES or this, whichever is fewer) */
    int spoken_direct;       /* 1: spoken questions as audio positions; 0: transcribed first
                              * (model/infer.h, INFER_SPOKEN_*; the CLI's default) */
} api_params;

api_params api_default_params(void);

typedef struct api_request {
    const char *method;
    const char *path;          /* without the query string */
    const char *content_type;  /* NULL when absent */
    const uint8_t *body;
    size_t len;
} api_request;

typedef struct api_response {
    int status;
    const char *content_type;  /* static string */
    char *body;                /* malloc'd */
    size_t len;
    api_stream *stream;        /* non-NULL: the body comes from api_stream_read */
    const char *allow;         /* for 405: the Allow header */
} api_response;

/* The model stays the caller's and must outlive the server. */
api_server *api_server_new(const loom_model *m, const api_params *p, loom_error *err);
void api_server_free(api_server *s);
const char *api_server_model_id(const api_server *s);

/* Always fills r (an error response when the request is bad). Blocks while
 * every slot is busy. */
void api_handle(api_server *s, const api_request *rq, api_response *r);
void api_response_free(api_response *r);
/* Fills r with an error in OpenAI's shape (for the HTTP layer's own refusals, e.g. 413). */
void api_error_response(api_response *r, int status, const char *message);

/* Up to cap bytes of a streamed body into buf; 0 at its end. A stream holds a
 * model slot until it ends or is freed (a client that goes away frees it). */
size_t api_stream_read(api_stream *st, char *buf, size_t cap);
void api_stream_free(api_stream *st);

/* The demo page (generated from web/index.html at build time). */
extern const unsigned char api_page_html[];
extern const size_t api_page_html_len;

#endif
