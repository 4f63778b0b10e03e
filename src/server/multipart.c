#include "server/multipart.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* A parameter value of a header (name=value or name="value"), into out. */
static int header_param(const char *h, size_t hlen, const char *key, char *out, size_t cap) {
    const size_t klen = strlen(key);
    for (size_t i = 0; i + klen + 1 <= hlen; i++) {
        /* the key must start a parameter: after ';' or space */
        if ((i == 0 || h[i - 1] == ';' || h[i - 1] == ' ' || h[i - 1] == '\t') &&
            !strncasecmp(h + i, key, klen) && h[i + klen] == '=') {
            size_t p = i + klen + 1, o = 0;
            const int quoted = p < hlen && h[p] == '"';
            if (quoted) p++;
            for (; p < hlen; p++) {
                char c = h[p];
                if (quoted ? c == '"' : (c == ';' || c == ' ' || c == '\t')) break;
                if (quoted && c == '\\' && p + 1 < hlen) c = h[++p];
                if (o + 1 >= cap) return -1;
                out[o++] = c;
            }
            if (quoted && (p >= hlen || h[p] != '"')) return -1;
            out[o] = '\0';
            return 0;
        }
    }
    return 1;
}

int multipart_boundary(const char *content_type, char *out, size_t cap, loom_error *err) {
    static const char want[] = "multipart/form-data";
    if (!content_type || strncasecmp(content_type, want, sizeof want - 1) ||
        (content_type[sizeof want - 1] && content_type[sizeof want - 1] != ';' && content_type[sizeof want - 1] != ' '))
        return loom_error_set(err, "want Content-Type multipart/form-data");
    const int rc = header_param(content_type, strlen(content_type), "boundary", out, cap);
    if (rc || !out[0] || strlen(out) > 70)
        return loom_error_set(err, "multipart/form-data needs a boundary of 1 to 70 characters");
    return 0;
}

static const uint8_t *find(const uint8_t *h, size_t hn, const char *needle, size_t nn) {
    if (nn == 0 || hn < nn) return NULL;
    for (const uint8_t *p = h; (size_t)(h + hn - p) >= nn;) {
        p = memchr(p, needle[0], (size_t)(h + hn - p) - nn + 1);
        if (!p) return NULL;
        if (!memcmp(p, needle, nn)) return p;
        p++;
    }
    return NULL;
}

int multipart_parse(const char *content_type, const uint8_t *body, size_t len, multipart_part *parts,
                    int32_t cap, int32_t *n, loom_error *err) {
    char boundary[128], delim[136];
    *n = 0;
    if (multipart_boundary(content_type, boundary, sizeof boundary, err)) return -1;
    const size_t dlen = (size_t)snprintf(delim, sizeof delim, "\r\n--%s", boundary);
    /* the first delimiter may open the body (no CRLF before it) */
    const uint8_t *p = find(body, len, delim + 2, dlen - 2), *end = body + len;
    if (!p) return loom_error_set(err, "multipart body without its boundary");
    p += dlen - 2;
    for (;;) {
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') return 0; /* the close delimiter */
        /* transport padding, then CRLF */
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') return loom_error_set(err, "malformed multipart delimiter");
        p += 2;
        const uint8_t *hend = find(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!hend) return loom_error_set(err, "multipart part without the end of its headers");
        if (*n >= cap) return loom_error_set(err, "more than %d multipart parts", cap);
        multipart_part *part = &parts[*n];
        memset(part, 0, sizeof *part);
        int disposition = 0;
        for (const uint8_t *line = p; line < hend;) {
            const uint8_t *eol = find(line, (size_t)(hend - line), "\r\n", 2);
            if (!eol) eol = hend;
            const char *h = (const char *)line;
            const size_t hl = (size_t)(eol - line);
            static const char cd[] = "content-disposition:", ct[] = "content-type:";
            if (hl >= sizeof cd - 1 && !strncasecmp(h, cd, sizeof cd - 1)) {
                disposition = 1;
                if (header_param(h, hl, "name", part->name, sizeof part->name) ||
                    header_param(h, hl, "filename", part->filename, sizeof part->filename) < 0)
                    return loom_error_set(err, "multipart part with a bad or missing name");
            } else if (hl >= sizeof ct - 1 && !strncasecmp(h, ct, sizeof ct - 1)) {
                size_t s = sizeof ct - 1;
                while (s < hl && (h[s] == ' ' || h[s] == '\t')) s++;
                if (hl - s >= sizeof part->content_type) return loom_error_set(err, "multipart Content-Type too long");
                memcpy(part->content_type, h + s, hl - s);
                part->content_type[hl - s] = '\0';
            }
            line = eol + 2;
        }
        if (!disposition) return loom_error_set(err, "multipart part without Content-Disposition");
        const uint8_t *data = hend + 4;
        const uint8_t *next = find(data, (size_t)(end - data), delim, dlen);
        if (!next) return loom_error_set(err, "multipart body ends inside a part");
        part->data = data;
        part->len = (size_t)(next - data);
        (*n)++;
        p = next + dlen;
    }
}

const multipart_part *multipart_find(const multipart_part *parts, int32_t n, const char *name) {
    for (int32_t i = 0; i < n; i++)
        if (!strcmp(parts[i].name, name)) return &parts[i];
    return NULL;
}
