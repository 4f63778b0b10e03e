/* shapes_prompt.h: Shapes World generation prompts (../shared/DESIGN.md,
 * "Prompts for generation"): the caption grammar, where an object's size,
 * color and position may each be left out. A generated image answers a prompt
 * when it contains exactly the stated objects, each with every stated
 * attribute (shapes_prompt_matches; the image's scene comes from
 * shapes_analyze in shapes_analyze.h).
 *
 * One object: `a [<size>] [<color>] <shape>[ at the <position> | in the center]`
 * (the shape is always stated), objects joined as in shapes_caption: "X",
 * "X and Y", "X, Y and Z", "W, X, Y and Z". A prompt with nothing left out is
 * its scene's caption, byte for byte. The article is always "a" (as in the
 * captions: "a orange circle").
 *
 * Usage:
 *
 *     shapes_prompt p;
 *     shapes_prompt_from_scene(&scene, &rng, 0.3f, &p);  // drop ~30% of the attributes
 *     char text[SHAPES_CAPTION_MAX];
 *     shapes_prompt_format(&p, text, sizeof text);   // "a red circle at the top left and a square"
 *     shapes_prompt q;
 *     if (shapes_prompt_parse(text, &q, &err)) ...   // the exact inverse of format
 *     ... generate an image, shapes_analyze it into `seen` ...
 *     int ok = shapes_prompt_matches(&q, &seen);     // 1: the image answers the prompt
 */
#ifndef LOOM_DATA_SHAPES_PROMPT_H
#define LOOM_DATA_SHAPES_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/rng.h"
#include "data/shapes.h"

/* A prompt: n objects, in the order they are written (a scene's prompt keeps
 * the scene's reading order). shape is always stated (0..4); color (0..7),
 * size (0..1) and cell (0..8) are -1 when not stated. Stated cells are
 * distinct. Its text never exceeds SHAPES_CAPTION_MAX - 1 bytes (the longest
 * prompt is a full caption). */
typedef struct shapes_prompt {
    int32_t n; /* 1..SHAPES_MAX_OBJECTS */
    struct {
        int8_t shape, color, size, cell;
    } obj[SHAPES_MAX_OBJECTS];
} shapes_prompt;

/* 0 if p is well-formed (1..4 objects, shapes in range, other attributes in
 * range or -1, stated cells distinct), else -1 with the reason in err. */
int shapes_prompt_validate(const shapes_prompt *p, loom_error *err);

/* The prompt of a scene: its objects in its order, each of size, color and
 * cell independently left out with probability p_drop (the shape never is).
 * Draws three rng_uniform per object (size, color, cell), whatever p_drop;
 * rng may be NULL only when p_drop is 0. p_drop 0 gives the full caption.
 * Returns -1 if s is not a valid scene, p_drop is outside [0, 1], or rng is
 * NULL with p_drop > 0 (out is then untouched). */
int shapes_prompt_from_scene(const shapes_scene *s, loom_rng *rng, float p_drop, shapes_prompt *out);

/* Writes p's text (NUL-terminated) into out. Returns its length (excluding
 * the NUL), or -1 if cap is too small or p is not valid. */
int shapes_prompt_format(const shapes_prompt *p, char *out, size_t cap);

/* Parses text written by shapes_prompt_format, strictly: exactly the grammar
 * above, single spaces, lower case, no final period, the joins that the
 * object count calls for, at most SHAPES_MAX_OBJECTS objects, no cell stated
 * twice. Returns 0, or -1 with the reason (and where) in err; out is written
 * only on success. */
int shapes_prompt_parse(const char *text, shapes_prompt *out, loom_error *err);

/* 1 if the scene answers the prompt: s has exactly p->n objects, its cells
 * are distinct, and some one-to-one assignment of prompt objects to scene
 * objects gives every prompt object a scene object with its shape and every
 * stated attribute; else 0 (also for an invalid prompt or scene). The scene's
 * object order does not matter. */
int shapes_prompt_matches(const shapes_prompt *p, const shapes_scene *s);

/* The scene a caption describes (a prompt with every attribute stated),
 * objects sorted by cell, not laid out. -1 with the reason in err if text is
 * not such a caption. */
int shapes_scene_from_caption(const char *text, shapes_scene *out, loom_error *err);

#endif
