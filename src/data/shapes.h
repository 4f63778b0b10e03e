/* shapes.h: Shapes World v1 scenes and their exact strings
 * (../shared/DESIGN.md): 1 to 4 objects on a 3 x 3 grid, 5 shapes, 8 colors,
 * 2 sizes, 9 positions; captions list objects in reading order. Deterministic
 * from a seed. (Rendering comes with the image encoder.) */
#ifndef LOOM_DATA_SHAPES_H
#define LOOM_DATA_SHAPES_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"

enum { SHAPES_N_SHAPES = 5, SHAPES_N_COLORS = 8, SHAPES_N_SIZES = 2, SHAPES_N_CELLS = 9,
       SHAPES_MAX_OBJECTS = 4 };

extern const char *const shapes_shape_names[SHAPES_N_SHAPES];  /* circle square ... */
extern const char *const shapes_color_names[SHAPES_N_COLORS];  /* red green ... */
extern const char *const shapes_size_names[SHAPES_N_SIZES];    /* small large */
extern const char *const shapes_cell_names[SHAPES_N_CELLS];    /* top left ... bottom right */
extern const uint8_t shapes_color_rgb[SHAPES_N_COLORS][3];

typedef struct shapes_object {
    int8_t shape, color, size, cell;  /* cell = row * 3 + column */
} shapes_object;

typedef struct shapes_scene {
    int32_t n;                                  /* 1..4 objects, sorted by cell */
    shapes_object obj[SHAPES_MAX_OBJECTS];
} shapes_scene;

/* A random scene: uniform object count, distinct cells, uniform attributes. */
void shapes_scene_sample(loom_rng *rng, shapes_scene *s);
/* "a <size> <color> <shape> at the <position>" ("in the center"), joined
 * "X", "X and Y", "X, Y and Z". Returns the length (excluding NUL), or -1 if
 * cap is too small. */
int shapes_caption(const shapes_scene *s, char *out, size_t cap);

#endif
