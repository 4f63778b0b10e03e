#include "server/http.h"

#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

struct http_server {
    struct MHD_Daemon *d;
    api_server *api;
    http_params p;
    int32_t port;
};

http_params http_default_params(void) {
    return (http_params){.host = "127.0.0.1", .port = 8080, .max_body = 32 << 20, .max_connections = 256,
                         .timeout_s = 60};
}

/* One request's body as it arrives. */
typedef struct http_req {
    uint8_t *body;
    size_t len, cap;
    int too_big;
} http_req;

static enum MHD_Result send_response(struct MHD_Connection *c, api_response *r) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
    if (!resp) return MHD_NO;
    r->body = NULL;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type ? r->content_type : "text/plain");
    if (r->allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    const enum MHD_Result ok = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    const size_t n = api_stream_read(cls, buf, max);
    return n ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void stream_free(void *cls) { api_stream_free(cls); }

static enum MHD_Result queue(struct MHD_Connection *c, api_response *r) {
    if (!r->stream) return send_response(c, r);
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader,
                                                                  r->stream, stream_free);
    if (!resp) return MHD_NO;
    r->stream = NULL; /* the response's now: MHD frees it when done or when the client leaves */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    const enum MHD_Result ok = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static enum MHD_Result too_big(struct MHD_Connection *c, const http_server *h) {
    char msg[160];
    snprintf(msg, sizeof msg, "the body is larger than the server's limit of %lld bytes (--max-body)",
             (long long)h->p.max_body);
    api_response r;
    api_error_response(&r, 413, msg);
    const enum MHD_Result ok = send_response(c, &r);
    api_response_free(&r);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **state) {
    (void)version;
    http_server *h = cls;
    http_req *q = *state;
    if (!q) {
        if (!(q = calloc(1, sizeof *q))) return MHD_NO;
        *state = q;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end = NULL;
            const unsigned long long n = strtoull(cl, &end, 10);
            /* refused before a byte of it is read; MHD closes the connection after */
            if (end != cl && n > (unsigned long long)h->p.max_body) {
                q->too_big = 1;
                return too_big(c, h);
            }
        }
        return MHD_YES;
    }
    if (*upload_size) {
        const size_t n = *upload_size;
        *upload_size = 0;
        if (q->too_big) return MHD_YES;
        if (q->len + n > (size_t)h->p.max_body) { /* chunked bodies find out as they come */
            q->too_big = 1;
            free(q->body);
            q->body = NULL;
            q->len = q->cap = 0;
            return MHD_YES;
        }
        if (q->len + n + 1 > q->cap) {
            size_t cap = q->cap ? q->cap : 64 * 1024;
            while (cap < q->len + n + 1) cap *= 2;
            uint8_t *b = realloc(q->body, cap);
            if (!b) return MHD_NO;
            q->body = b;
            q->cap = cap;
        }
        memcpy(q->body + q->len, upload, n);
        q->len += n;
        q->body[q->len] = '\0';
        return MHD_YES;
    }
    if (q->too_big) return too_big(c, h);
    api_request rq = {.method = method, .path = url,
                      .content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
                      .body = q->body ? q->body : (const uint8_t *)"", .len = q->len};
    api_response r;
    api_handle(h->api, &rq, &r);
    const enum MHD_Result ok = queue(c, &r);
    api_response_free(&r);
    return ok;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode why) {
    (void)cls, (void)c, (void)why;
    http_req *q = *state;
    if (q) {
        free(q->body);
        free(q);
    }
    *state = NULL;
}

http_server *http_start(api_server *api, const http_params *p, loom_error *err) {
    if (p->port < 0 || p->port > 65535) return loom_error_set(err, "port %d is not 0 to 65535", p->port), NULL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_PASSIVE}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", p->port);
    const int gai = getaddrinfo(p->host, port, &hints, &ai);
    if (gai) return loom_error_set(err, "host %s: %s (want a numeric address)", p->host, gai_strerror(gai)), NULL;
    http_server *h = calloc(1, sizeof *h);
    if (!h) {
        freeaddrinfo(ai);
        return loom_error_set(err, "out of memory"), NULL;
    }
    h->api = api;
    h->p = *p;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    h->d = MHD_start_daemon(flags, (uint16_t)p->port, NULL, NULL, on_request, h,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)p->max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)p->timeout_s,
                            MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->d) {
        free(h);
        return loom_error_set(err, "cannot listen on %s port %d (in use, or not an address of this machine)",
                              p->host, p->port), NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : p->port;
    return h;
}

int32_t http_port(const http_server *h) { return h->port; }

void http_stop(http_server *h) {
    if (!h) return;
    MHD_stop_daemon(h->d);
    free(h);
}
