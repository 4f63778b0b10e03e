/* multipart.h: multipart/form-data bodies (RFC 7578), as OpenAI clients send
 * /v1/audio/transcriptions: parts separated by "--boundary", each with
 * headers (Content-Disposition: form-data; name="..."; filename="...") and a
 * body. The parser only indexes the body in place: parts point into it.
 *
 *     multipart_part parts[16]; int32_t n;
 *     if (multipart_parse(ctype, body, len, parts, 16, &n, &err)) -> 400
 *     const multipart_part *f = multipart_find(parts, n, "file");
 */
#ifndef LOOM_SERVER_MULTIPART_H
#define LOOM_SERVER_MULTIPART_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define MULTIPART_NAME_MAX 128

typedef struct multipart_part {
    char name[MULTIPART_NAME_MAX];      /* form field name */
    char filename[MULTIPART_NAME_MAX];  /* "" when not a file */
    char content_type[MULTIPART_NAME_MAX];
    const uint8_t *data;                /* into the body */
    size_t len;
} multipart_part;

/* The boundary parameter of a multipart/form-data Content-Type, into out.
 * 0, or -1 (not multipart/form-data, no or bad boundary). */
int multipart_boundary(const char *content_type, char *out, size_t cap, loom_error *err);
/* Splits body into at most cap parts. 0, or -1 with the reason. */
int multipart_parse(const char *content_type, const uint8_t *body, size_t len, multipart_part *parts,
                    int32_t cap, int32_t *n, loom_error *err);
const multipart_part *multipart_find(const multipart_part *parts, int32_t n, const char *name);

#endif
