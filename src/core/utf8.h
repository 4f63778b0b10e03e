/* utf8.h: strict UTF-8 validation (no overlong forms, no surrogates, nothing
 * past U+10FFFF), for text that users send: prompts, speech text. */
#ifndef LOOM_CORE_UTF8_H
#define LOOM_CORE_UTF8_H

#include <stddef.h>

/* The offset of the first byte of s[0 .. n) that does not start a valid
 * UTF-8 sequence, or n if all of it is valid. */
size_t utf8_invalid_at(const char *s, size_t n);

#endif
