/* shapes.c: Shapes World names, scene sampling, splits and layout (shapes.h). */
#include "data/shapes.h"

#include <stdio.h>
#include <string.h>

const char *const shapes_shape_names[SHAPES_N_SHAPES] = {"circle", "square", "triangle", "diamond",
                                                         "cross"};
const char *const shapes_color_names[SHAPES_N_COLORS] = {"red",     "green", "blue",  "yellow",
                                                         "magenta", "cyan",  "white", "orange"};
const char *const shapes_size_names[SHAPES_N_SIZES] = {"small", "large"};
const char *const shapes_cell_names[SHAPES_N_CELLS] = {"top left", "top",         "top right",
                                                       "left",     "center",      "right",
                                                       "bottom left", "bottom",   "bottom right"};
const char *const shapes_number_names[SHAPES_MAX_OBJECTS + 1] = {"zero", "one", "two", "three",
                                                                 "four"};
const uint8_t shapes_color_rgb[SHAPES_N_COLORS][3] = {
    {220, 40, 40}, {40, 180, 60}, {50, 90, 230},  {235, 215, 40},
    {210, 60, 210}, {60, 210, 220}, {235, 235, 235}, {245, 140, 30},
};

/* {shape, color}: circle 0, square 1, triangle 2, diamond 3, cross 4;
 * yellow 3, magenta 4, cyan 5, white 6, orange 7. */
const int8_t shapes_heldout[SHAPES_N_HELDOUT][2] = {{0, 7}, {1, 5}, {2, 4}, {3, 6}, {4, 3}};
const char *const shapes_split_names[SHAPES_N_SPLITS] = {"train", "test", "combos"};

/* ---- scenes ---------------------------------------------------------------- */

/* n distinct cells, increasing: partial Fisher-Yates, then insertion sort.
 * (The draws are part of shapes_scene_sample's fixed stream.) */
static void sample_cells(loom_rng *rng, int32_t n, shapes_object *obj) {
    int8_t cells[SHAPES_N_CELLS];
    for (int i = 0; i < SHAPES_N_CELLS; i++) cells[i] = (int8_t)i;
    for (int i = 0; i < n; i++) {
        int j = i + (int)rng_below(rng, (uint32_t)(SHAPES_N_CELLS - i));
        int8_t t = cells[i];
        cells[i] = cells[j];
        cells[j] = t;
    }
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && cells[j - 1] > cells[j]; j--) {
            int8_t t = cells[j];
            cells[j] = cells[j - 1];
            cells[j - 1] = t;
        }
    for (int i = 0; i < n; i++) obj[i].cell = cells[i];
}

void shapes_scene_sample(loom_rng *rng, shapes_scene *s) {
    memset(s, 0, sizeof *s);
    s->n = 1 + (int32_t)rng_below(rng, SHAPES_MAX_OBJECTS);
    sample_cells(rng, s->n, s->obj);
    for (int i = 0; i < s->n; i++) {
        s->obj[i].shape = (int8_t)rng_below(rng, SHAPES_N_SHAPES);
        s->obj[i].color = (int8_t)rng_below(rng, SHAPES_N_COLORS);
        s->obj[i].size = (int8_t)rng_below(rng, SHAPES_N_SIZES);
    }
}

int shapes_scene_validate(const shapes_scene *s, loom_error *err) {
    if (s->n < 1 || s->n > SHAPES_MAX_OBJECTS)
        return loom_error_set(err, "scene has %d objects (1..%d)", (int)s->n, SHAPES_MAX_OBJECTS);
    for (int i = 0; i < s->n; i++) {
        const shapes_object *o = &s->obj[i];
        if (o->shape < 0 || o->shape >= SHAPES_N_SHAPES || o->color < 0 ||
            o->color >= SHAPES_N_COLORS || o->size < 0 || o->size >= SHAPES_N_SIZES ||
            o->cell < 0 || o->cell >= SHAPES_N_CELLS)
            return loom_error_set(err, "scene object %d has an attribute out of range", i);
        if (i > 0 && o->cell <= s->obj[i - 1].cell)
            return loom_error_set(err, "scene cells are not distinct and increasing");
    }
    return 0;
}

static float uniform_pm(loom_rng *rng, float a) { /* uniform in [-a, a) */
    return a * (2.0f * rng_uniform(rng) - 1.0f);
}

int shapes_scene_layout(shapes_scene *s, int32_t W, int32_t H, loom_rng *rng, loom_error *err) {
    if (shapes_scene_validate(s, err)) return -1;
    if (W < SHAPES_MIN_SIDE || W > SHAPES_MAX_SIDE || H < SHAPES_MIN_SIDE || H > SHAPES_MAX_SIDE)
        return loom_error_set(err, "canvas %dx%d: sides must be in [%d, %d]", (int)W, (int)H,
                              SHAPES_MIN_SIDE, SHAPES_MAX_SIDE);
    s->width = W;
    s->height = H;
    const float cw = (float)W / 3.0f, ch = (float)H / 3.0f, side = cw < ch ? cw : ch;
    for (int i = 0; i < s->n; i++) {
        shapes_object *o = &s->obj[i];
        float frac = o->size ? SHAPES_LARGE_FRAC : SHAPES_SMALL_FRAC;
        if (rng) frac *= 1.0f + uniform_pm(rng, SHAPES_EXTENT_JITTER);
        o->extent = frac * side;
        /* the center moves at most so far that the shape keeps half a pixel
         * from its cell's border: pixels wholly inside another cell stay black */
        float sx = 0.5f * (cw - o->extent) - 0.5f, sy = 0.5f * (ch - o->extent) - 0.5f;
        if (sx < 0) sx = 0;
        if (sy < 0) sy = 0;
        o->cx = cw * (float)(o->cell % 3) + 0.5f * cw;
        o->cy = ch * (float)(o->cell / 3) + 0.5f * ch;
        if (rng) {
            o->cx += uniform_pm(rng, sx);
            o->cy += uniform_pm(rng, sy);
        }
        for (int c = 0; c < 3; c++) {
            int v = shapes_color_rgb[o->color][c];
            if (rng) v += (int)rng_below(rng, 2 * SHAPES_COLOR_JITTER + 1) - SHAPES_COLOR_JITTER;
            o->rgb[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    return 0;
}

int shapes_caption(const shapes_scene *s, char *out, size_t cap) {
    size_t len = 0;
    for (int i = 0; i < s->n; i++) {
        const shapes_object *o = &s->obj[i];
        const char *sep = i == 0 ? "" : (i == s->n - 1 ? " and " : ", ");
        int w = snprintf(out + len, cap - len, "%sa %s %s %s %s the %s", sep,
                         shapes_size_names[o->size], shapes_color_names[o->color],
                         shapes_shape_names[o->shape], o->cell == 4 ? "in" : "at",
                         shapes_cell_names[o->cell]);
        if (w < 0 || (size_t)w >= cap - len) return -1;
        len += (size_t)w;
    }
    return (int)len;
}

/* ---- held-out combinations and splits --------------------------------------- */

int shapes_combo_is_heldout(int shape, int color) {
    for (int h = 0; h < SHAPES_N_HELDOUT; h++)
        if (shapes_heldout[h][0] == shape && shapes_heldout[h][1] == color) return 1;
    return 0;
}

int shapes_scene_has_heldout(const shapes_scene *s) {
    for (int i = 0; i < s->n; i++)
        if (shapes_combo_is_heldout(s->obj[i].shape, s->obj[i].color)) return 1;
    return 0;
}

void shapes_split_rng(loom_rng *rng, enum shapes_split split, uint64_t seed) {
    /* key = seed * 4 + split: injective in the split for any seeds; the
     * constant ("SHAPES" in ASCII) keeps these streams apart from plain
     * rng_seed(seed) streams such as shapes-text's. */
    uint64_t key = (seed << 2) | ((uint64_t)split & 3u);
    rng_seed(rng, key ^ UINT64_C(0x5348415045530000));
}

void shapes_scene_sample_split(shapes_scene *s, enum shapes_split split, loom_rng *rng) {
    memset(s, 0, sizeof *s);
    s->n = 1 + (int32_t)rng_below(rng, SHAPES_MAX_OBJECTS);
    sample_cells(rng, s->n, s->obj);
    for (int i = 0; i < s->n; i++) {
        shapes_object *o = &s->obj[i];
        do {
            o->shape = (int8_t)rng_below(rng, SHAPES_N_SHAPES);
            o->color = (int8_t)rng_below(rng, SHAPES_N_COLORS);
        } while (split != SHAPES_SPLIT_COMBOS && shapes_combo_is_heldout(o->shape, o->color));
        o->size = (int8_t)rng_below(rng, SHAPES_N_SIZES);
    }
    if (split == SHAPES_SPLIT_COMBOS) {
        int i = (int)rng_below(rng, (uint32_t)s->n), h = (int)rng_below(rng, SHAPES_N_HELDOUT);
        s->obj[i].shape = shapes_heldout[h][0];
        s->obj[i].color = shapes_heldout[h][1];
    }
}
