/* http.h: the HTTP side of `loom serve`, on libmicrohttpd. A thread per
 * connection (so /health answers while every model slot is busy and a slow
 * client holds only its own thread); bodies are collected up to max_body
 * (larger ones get a 413 before they are read, when they say their length),
 * then handed to server/api.h. Streamed answers are sent as they are made. */
#ifndef LOOM_SERVER_HTTP_H
#define LOOM_SERVER_HTTP_H

#include <stdint.h>

#include "core/error.h"
#include "server/api.h"

typedef struct http_params {
    const char *host;          /* address to bind: "127.0.0.1", "::1", "0.0.0.0" */
    int32_t port;              /* 0: any free port (see http_port) */
    int64_t max_body;          /* bytes */
    int32_t max_connections;
    int32_t timeout_s;         /* idle connections are closed after this */
} http_params;

http_params http_default_params(void);

typedef struct http_server http_server;

http_server *http_start(api_server *api, const http_params *p, loom_error *err);
int32_t http_port(const http_server *h);
void http_stop(http_server *h);

#endif
