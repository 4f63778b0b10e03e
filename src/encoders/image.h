/* image.h: decoded images for the patch encoder (8-bit RGB, alpha composited onto black).
 *
 * Images are untrusted input. Before anything is decoded the header is read
 * (stbi_info_from_memory) and the limits below are enforced, so a file whose
 * header claims 100000 x 100000 pixels, or a small PNG that would inflate to
 * gigabytes (a decompression bomb), is rejected before any pixel buffer is
 * allocated. Every failure leaves a message naming the file (or "<memory>")
 * and the reason, including stb_image's failure reason when it was stb that
 * refused.
 *
 * Formats: PNG (8/16-bit, grey, palette, alpha), JPEG (baseline and
 * progressive), BMP, GIF (the first frame), TGA, binary PNM (P5 grey, P6 RGB).
 * PSD, HDR, PIC and ASCII PNM, which stb_image would also try, are refused.
 *
 * Pixel conversion:
 *   grey         -> (v, v, v)
 *   with alpha   -> composited onto black, the world's background:
 *                   out = round(v * a / 255) = (v * a + 127) / 255 in integers
 *   16-bit       -> 8-bit by stb_image (v >> 8)
 *
 * Usage:
 *     loom_image img;
 *     loom_error err;
 *     if (image_load_file("cat.png", &img, &err)) { fprintf(stderr, "loom: %s\n", err.msg); ... }
 *     ... img.rgb[(y * img.width + x) * 3 + c] ...
 *     image_free(&img);
 */
#ifndef LOOM_ENCODERS_IMAGE_H
#define LOOM_ENCODERS_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define IMAGE_MAX_SIDE 8192                          /* width and height, pixels */
#define IMAGE_MAX_PIXELS ((int64_t)16 * 1024 * 1024) /* width * height (16,777,216 = 4096^2) */
#define IMAGE_MAX_FILE_BYTES ((size_t)64 * 1024 * 1024) /* encoded size, file or memory */

typedef struct loom_image {
    int32_t width;   /* W, in [1, IMAGE_MAX_SIDE] */
    int32_t height;  /* H, in [1, IMAGE_MAX_SIDE], W * H <= IMAGE_MAX_PIXELS */
    uint8_t *rgb;    /* (H, W, 3) row-major, top row first; malloc'd, owned by the image */
} loom_image;

/* Reads and decodes a file. On failure returns -1, sets err and leaves *img
 * zeroed (image_free on it is harmless). Refuses directories, non-regular
 * files, empty files and files over IMAGE_MAX_FILE_BYTES before reading them. */
int image_load_file(const char *path, loom_image *img, loom_error *err);

/* Decodes len bytes of an encoded image. name (may be NULL: "<memory>") is
 * only used in error messages. Same limits and errors as image_load_file. */
int image_load_memory(const void *buf, size_t len, const char *name, loom_image *img,
                      loom_error *err);

/* A black W x H image (rgb zeroed). -1 if W, H are outside the limits or out of memory. */
int image_alloc(loom_image *img, int64_t width, int64_t height, loom_error *err);

/* 0 if img has a non-NULL buffer and width/height within the limits, else -1 with err set.
 * Functions that take an image from a caller (patch_image) check it with this. */
int image_check(const loom_image *img, loom_error *err);

/* Frees the pixels and zeroes *img. NULL or an already freed image is fine. */
void image_free(loom_image *img);

#endif
