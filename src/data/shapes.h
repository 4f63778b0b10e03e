/* shapes.h: Shapes World v1 (../shared/DESIGN.md): scenes, their images, and
 * their exact strings. Everything is deterministic from a loom_rng.
 *
 * A scene is 1 to 4 objects on a 3 x 3 grid (at most one per cell); each has a
 * shape (5), a color (8), a size (2) and a cell (9). Its strings: a caption
 * (objects in reading order) and questions with answers computed from the
 * scene. Its image: a W x H canvas (W, H each 48, 64, 80 or 96), black, each
 * object jittered inside its cell, anti-aliased by supersampling.
 *
 * Usage:
 *
 *     loom_rng rng;
 *     shapes_split_rng(&rng, SHAPES_SPLIT_TRAIN, seed);   // one stream per (split, seed)
 *     shapes_scene s;
 *     shapes_scene_sample_split(&s, SHAPES_SPLIT_TRAIN, &rng);
 *     if (shapes_scene_layout(&s, 64, 64, &rng, &err)) ...  // geometry + jittered colors
 *     uint8_t rgb[64 * 64 * 3];
 *     if (shapes_render(&s, rgb, &rng, &err)) ...           // (H, W, 3), row-major
 *     char cap[SHAPES_CAPTION_MAX];
 *     shapes_caption(&s, cap, sizeof cap);
 *     shapes_question q;
 *     shapes_question_sample_mix(&s, &rng, &q);              // q.prompt, q.answer
 *
 * Files: shapes.c (names, sampling, splits, layout), shapes_render.c
 * (rasterizer), shapes_qa.c (questions).
 */
#ifndef LOOM_DATA_SHAPES_H
#define LOOM_DATA_SHAPES_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/rng.h"

enum { SHAPES_N_SHAPES = 5, SHAPES_N_COLORS = 8, SHAPES_N_SIZES = 2, SHAPES_N_CELLS = 9,
       SHAPES_MAX_OBJECTS = 4 };

/* Index order of every name table below is the enum order used in shapes_object. */
extern const char *const shapes_shape_names[SHAPES_N_SHAPES];  /* circle square triangle diamond cross */
extern const char *const shapes_color_names[SHAPES_N_COLORS];  /* red green blue yellow magenta cyan white orange */
extern const char *const shapes_size_names[SHAPES_N_SIZES];    /* small large */
extern const char *const shapes_cell_names[SHAPES_N_CELLS];    /* top left ... center ... bottom right */
extern const char *const shapes_number_names[SHAPES_MAX_OBJECTS + 1]; /* zero one two three four */
extern const uint8_t shapes_color_rgb[SHAPES_N_COLORS][3];     /* sRGB palette */

/* ---- scenes ---------------------------------------------------------------- */

/* Canvas limits accepted by shapes_scene_layout (the design's sizes are 48..96). */
enum { SHAPES_MIN_SIDE = 16, SHAPES_MAX_SIDE = 4096 };
/* Layout constants: extent as a fraction of the cell's shorter side, and the
 * relative jitter of extents; sizes can never overlap: small <= 0.45 * 1.06,
 * large >= 0.85 * 0.94. Colors are jittered by up to +-SHAPES_COLOR_JITTER. */
#define SHAPES_SMALL_FRAC 0.45f
#define SHAPES_LARGE_FRAC 0.85f
#define SHAPES_EXTENT_JITTER 0.06f
enum { SHAPES_COLOR_JITTER = 8 };

typedef struct shapes_object {
    int8_t shape, color, size, cell;  /* cell = row * 3 + column */
    /* geometry, set by shapes_scene_layout (0 before): pixels, x right, y down,
     * (0, 0) the top left corner of the canvas */
    float cx, cy;                     /* center */
    float extent;                     /* side of the bounding box (circle: diameter,
                                         diamond: diagonal, cross: arm to arm) */
    uint8_t rgb[3];                   /* palette color with jitter, clamped */
} shapes_object;

typedef struct shapes_scene {
    int32_t n;                        /* 1..4 objects, sorted by cell */
    shapes_object obj[SHAPES_MAX_OBJECTS];
    int32_t width, height;            /* canvas, set by shapes_scene_layout (0 before) */
} shapes_scene;

/* A random scene: uniform object count, distinct cells, uniform attributes.
 * The stream of scenes for a seed is fixed (it is the shipped model's corpus
 * and `loom data shapes-text`): never change what this consumes or produces. */
void shapes_scene_sample(loom_rng *rng, shapes_scene *s);
/* 0 if s is a well-formed scene (1..4 objects, attributes in range, cells
 * distinct and increasing), else -1 with the reason in err. */
int shapes_scene_validate(const shapes_scene *s, loom_error *err);
/* Places the objects on a W x H canvas: centers jittered inside their cells
 * (never touching the cell's border), extents SHAPES_SMALL_FRAC /
 * SHAPES_LARGE_FRAC of the cell's shorter side with +-SHAPES_EXTENT_JITTER
 * relative jitter, colors the palette +-SHAPES_COLOR_JITTER per channel. With
 * rng NULL: no jitter (centered, nominal extents, exact palette). Returns -1
 * if s is not valid or W, H are outside [SHAPES_MIN_SIDE, SHAPES_MAX_SIDE]. */
int shapes_scene_layout(shapes_scene *s, int32_t W, int32_t H, loom_rng *rng, loom_error *err);

/* "a <size> <color> <shape> at the <position>" ("in the center"), joined
 * "X", "X and Y", "X, Y and Z". Returns the length (excluding NUL), or -1 if
 * cap is too small. SHAPES_CAPTION_MAX always suffices. */
enum { SHAPES_CAPTION_MAX = 256 };
int shapes_caption(const shapes_scene *s, char *out, size_t cap);

/* ---- held-out combinations and splits --------------------------------------- */

/* The (shape, color) combinations no TRAIN or TEST scene contains, one per
 * shape: orange circle, cyan square, magenta triangle, white diamond, yellow
 * cross. */
enum { SHAPES_N_HELDOUT = 5 };
extern const int8_t shapes_heldout[SHAPES_N_HELDOUT][2]; /* {shape, color} */
int shapes_combo_is_heldout(int shape, int color);       /* 1 or 0 */
int shapes_scene_has_heldout(const shapes_scene *s);     /* 1 if any object is held out */

enum shapes_split {
    SHAPES_SPLIT_TRAIN,  /* never a held-out combination */
    SHAPES_SPLIT_TEST,   /* the train distribution, from streams train never uses */
    SHAPES_SPLIT_COMBOS, /* at least one held-out combination per scene */
    SHAPES_N_SPLITS
};
extern const char *const shapes_split_names[SHAPES_N_SPLITS]; /* train test combos */
/* Seeds rng with the stream of (split, seed). Distinct (split, seed) pairs give
 * distinct streams; a TRAIN stream is never a TEST or COMBOS stream whatever
 * the seeds (the split is in the low bits of the key; seeds >= 2^62 wrap onto
 * smaller seeds of the same split). */
void shapes_split_rng(loom_rng *rng, enum shapes_split split, uint64_t seed);
/* A random scene of the split: object count uniform in 1..4, distinct cells.
 * TRAIN/TEST: (shape, color) uniform over the 35 allowed combinations, size
 * uniform. COMBOS: as TRAIN but unrestricted, then one uniformly chosen object
 * becomes a uniformly chosen held-out combination. */
void shapes_scene_sample_split(shapes_scene *s, enum shapes_split split, loom_rng *rng);

/* ---- rendering -------------------------------------------------------------- */

/* Draws a laid-out scene into rgb, (H, W, 3) bytes, row-major, H = s->height,
 * W = s->width: black, each object's coverage (ss x ss samples per pixel)
 * blended with its color. With rng: ss in {3, 4, 5}, a random sub-sample grid
 * offset and an edge gamma in [0.7, 1.4] (coverage^gamma), so a model does
 * not learn one rasterizer; with rng NULL: ss 4, centered grid, gamma 1.
 * Fully covered pixels have exactly the object's rgb; pixels outside every
 * object are exactly 0. Returns -1 if s is invalid or not laid out. */
int shapes_render(const shapes_scene *s, uint8_t *rgb, loom_rng *rng, loom_error *err);
/* 1 if the point (x, y) (pixels) is inside object o's shape, else 0. */
int shapes_object_contains(const shapes_object *o, float x, float y);

/* ---- questions -------------------------------------------------------------- */

typedef enum shapes_qtype {
    SHAPES_Q_COLOR,       /* what color is the <shape>?        -> color (shape unique)   */
    SHAPES_Q_SHAPE_AT,    /* what shape is at the <position>?  -> shape or "nothing"     */
    SHAPES_Q_COUNT_ALL,   /* how many objects are there?       -> "one".."four"          */
    SHAPES_Q_COUNT_SHAPE, /* how many <shape>s are there?      -> "zero".."four"         */
    SHAPES_Q_COUNT_COLOR, /* how many <color> objects are there? -> "zero".."four"       */
    SHAPES_Q_EXISTS,      /* is there a <color> <shape>?       -> "yes" / "no"           */
    SHAPES_Q_WHERE,       /* where is the <color> <shape>?     -> position (combo unique) */
    SHAPES_Q_SIZE,        /* what size is the <color> <shape>? -> "small" / "large" (unique) */
    SHAPES_N_QTYPES
} shapes_qtype;
/* color shape_at count_all count_shape count_color exists where size */
extern const char *const shapes_qtype_names[SHAPES_N_QTYPES];
int shapes_qtype_from_name(const char *name); /* the type, or -1 */

enum { SHAPES_PROMPT_MAX = 64, SHAPES_ANSWER_MAX = 16 };

typedef struct shapes_question {
    shapes_qtype type;
    int8_t shape, color, cell;         /* what is asked about; -1 where the type has none */
    char prompt[SHAPES_PROMPT_MAX];    /* exact text, e.g. "what color is the circle?" */
    char answer[SHAPES_ANSWER_MAX];    /* exact text, e.g. "red" */
} shapes_question;

/* Fills q->prompt and q->answer from q->type and its parameters (shape for
 * COLOR and COUNT_SHAPE; cell for SHAPE_AT; color for COUNT_COLOR; color and
 * shape for EXISTS, WHERE, SIZE), the answer computed from the scene. Returns
 * 0, or -1 if the question is not askable (COLOR when the shape is not on
 * exactly one object; WHERE and SIZE when the color-shape combination is not
 * on exactly one object) or a parameter is out of range. */
int shapes_question_make(const shapes_scene *s, shapes_question *q);
/* 1 if some question of this type is askable about s (COUNT_ALL, COUNT_*,
 * SHAPE_AT, EXISTS always are), else 0. */
int shapes_question_askable(const shapes_scene *s, shapes_qtype type);
/* A random question of the given type, balanced where the scene allows:
 * SHAPE_AT asks about an empty cell 1/3 of the time ("nothing"); EXISTS is
 * "yes" half the time, its "no" half naming a combination that shares a color
 * or shape with the scene half the time, and never a held-out combination
 * unless the scene has one; COUNT_SHAPE / COUNT_COLOR first choose an answer
 * among those the scene offers, weighted zero 1, one 1, two 3, three 8,
 * four 8 (unweighted, zero and one would be ~85% of answers), then a shape /
 * color with that count uniformly; the others choose uniformly among askable
 * parameters. Returns 0, or -1 if the
 * type is not askable about s (q is then untouched). */
int shapes_question_sample(const shapes_scene *s, shapes_qtype type, loom_rng *rng,
                           shapes_question *q);
/* A question of a type chosen uniformly among the types askable about s
 * (COUNT_ALL always is), then shapes_question_sample. Returns 0, or -1 only
 * for an invalid scene (nothing is askable about one). */
int shapes_question_sample_mix(const shapes_scene *s, loom_rng *rng, shapes_question *q);
/* As shapes_question_sample_mix, the type chosen among the askable ones in
 * proportion to weight[type] (each >= 0); weight NULL: uniformly, the same
 * draws as shapes_question_sample_mix. -1 when no askable type has weight. */
int shapes_question_sample_weighted(const shapes_scene *s, const float *weight, loom_rng *rng,
                                    shapes_question *q);

#endif
