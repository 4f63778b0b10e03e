/* shapes_analyze.h: reads a Shapes World scene back from an image, with
 * classical image analysis (no model): the judge of generated images
 * (../shared/DESIGN.md, "Prompts for generation"; shapes_prompt.h).
 *
 * The canvas is split into its 3 x 3 cells (a pixel belongs to the cell that
 * holds its center). In each cell, pixels brighter than a fixed threshold
 * form 8-connected components (never across cells); specks and slivers
 * (little coverage, or too narrow to be an object) are dropped. For each
 * remaining component:
 *   color  the palette color nearest its core (brightest) pixels' mean color,
 *          up to a brightness factor;
 *   cell   the cell holding its center;
 *   shape  the ideal shape (circle, square, triangle, diamond, cross) whose
 *          anti-aliased coverage, placed at the component's centroid and
 *          sized from its second moment, sharp or under one of a few mild
 *          blurs, is nearest the measured coverage (pixel / core color);
 *   size   small or large from that fitted extent relative to the cell's
 *          shorter side (small is 0.42..0.48 of it, large 0.80..0.90).
 *
 * Measured (tests/test_shapes_analyze.c prints the figures): jittered renders
 * at every design canvas size are read back exactly, also at 64 x 64 with
 * Gaussian noise (sigma 6) and a 3 x 3 box blur; about 0.4 ms per 64 x 64
 * image. Limits: sides under 48 px make objects a few pixels wide, which are
 * read less reliably; every component is read as its nearest shape (there is
 * no "none of these"), so a malformed blob still gets a shape; colors are
 * matched up to brightness only, so a strong hue shift (yellow toward orange)
 * changes the color read.
 *
 * Usage:
 *
 *     shapes_scene seen;
 *     int found = shapes_analyze(rgb, 64, 64, &seen, &err);  // (H, W, 3) bytes
 *     if (found < 0) ... err.msg ...
 *     int ok = found == seen.n && shapes_prompt_matches(&prompt, &seen);
 */
#ifndef LOOM_DATA_SHAPES_ANALYZE_H
#define LOOM_DATA_SHAPES_ANALYZE_H

#include <stdint.h>

#include "core/error.h"
#include "data/shapes.h"

/* Analyzes rgb, (H, W, 3) bytes, row-major, W and H in [SHAPES_MIN_SIDE,
 * SHAPES_MAX_SIDE]. Fills out with the objects found, sorted by cell (reading
 * order): shape, color, size, cell, and the measured center (cx, cy), extent
 * (pixels) and mean core color (rgb); out->width, out->height are W, H. When
 * more than SHAPES_MAX_OBJECTS objects are found, out keeps the largest
 * (coverage) ones. Two objects found in one cell are both kept (out is then
 * not a valid scene: shapes_scene_validate refuses it, shapes_prompt_matches
 * never accepts it).
 * Returns the number of objects found (0 for a black image; more than out->n
 * when some were left out), or -1 for invalid arguments (NULL pointers, sides
 * out of range) or when out of memory, with the reason in err. */
int shapes_analyze(const uint8_t *rgb, int32_t W, int32_t H, shapes_scene *out, loom_error *err);

/* 1 if shapes_analyze reads back exactly scene s from rgb (the same number
 * of objects, each with the same shape, color, size and cell), 0 if not, -1
 * on bad arguments (err set). */
int shapes_analyze_reads_back(const uint8_t *rgb, int32_t W, int32_t H, const shapes_scene *s,
                              loom_error *err);

#endif
