/* error.h: errors that carry a message.
 *
 * Library code never exits. A function that can fail takes a `loom_error *err`
 * (which may be NULL), returns -1 / NULL on failure and leaves the reason in
 * err->msg. Callers print it: "loom: <what>: <why>".
 */
#ifndef LOOM_CORE_ERROR_H
#define LOOM_CORE_ERROR_H

#include <stddef.h>

typedef struct loom_error {
    char msg[512];
} loom_error;

/* Formats the message into err (if non-NULL). Always returns -1, so that
 * `return loom_error_set(err, "...")` reads naturally. */
int loom_error_set(loom_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Prefixes the existing message: "<prefix>: <old message>". Returns -1. */
int loom_error_wrap(loom_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Overflow-checked size arithmetic: return 0 on success, -1 on overflow. */
int loom_mul_size(size_t a, size_t b, size_t *out);
int loom_add_size(size_t a, size_t b, size_t *out);

#endif
