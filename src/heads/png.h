/* png.h: writing 8-bit RGB PNGs with text metadata (what `loom imagine`
 * saves: the prompt, seed and model ride along in tEXt chunks).
 *
 * The pixels are compressed by stb_image_write; the tEXt chunks (Latin-1
 * keyword of 1-79 printable characters, any text without NUL) are inserted
 * right after IHDR with their CRC-32. Writing a file goes through a
 * temporary file and rename(), so an interrupted write never leaves half a
 * PNG under the final name.
 *
 *     png_text meta[2] = {{"prompt", "a red circle"}, {"seed", "7"}};
 *     if (png_write_file("out.png", rgb, 64, 64, meta, 2, &err)) ...
 */
#ifndef LOOM_HEADS_PNG_H
#define LOOM_HEADS_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct png_text {
    const char *key;   /* 1..79 bytes of printable Latin-1, no leading/trailing/double spaces */
    const char *value; /* any bytes but NUL */
} png_text;

/* Encodes rgb (H, W, 3) into a malloc'd PNG (*out, *len; free() it). */
int png_encode(const uint8_t *rgb, int32_t W, int32_t H, const png_text *text, int32_t n_text,
               uint8_t **out, size_t *len, loom_error *err);
/* png_encode, then writes path atomically (path.tmp + rename). */
int png_write_file(const char *path, const uint8_t *rgb, int32_t W, int32_t H,
                   const png_text *text, int32_t n_text, loom_error *err);
/* The value of the first tEXt chunk named key in a PNG (a NUL-terminated
 * copy in out), 0 if found, -1 if absent or the PNG is malformed. For tests
 * and tools. */
int png_read_text(const uint8_t *png, size_t len, const char *key, char *out, size_t cap);
/* CRC-32 (ISO 3309, as PNG uses) of n bytes, continuing from crc (0 to start). */
uint32_t png_crc32(uint32_t crc, const uint8_t *p, size_t n);

#endif
