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
const uint8_t shapes_color_rgb[SHAPES_N_COLORS][3] = {
    {220, 40, 40}, {40, 180, 60}, {50, 90, 230},  {235, 215, 40},
    {210, 60, 210}, {60, 210, 220}, {235, 235, 235}, {245, 140, 30},
};

void shapes_scene_sample(loom_rng *rng, shapes_scene *s) {
    memset(s, 0, sizeof *s);
    s->n = 1 + (int32_t)rng_below(rng, SHAPES_MAX_OBJECTS);
    /* choose n distinct cells: partial Fisher-Yates, then sort */
    int8_t cells[SHAPES_N_CELLS];
    for (int i = 0; i < SHAPES_N_CELLS; i++) cells[i] = (int8_t)i;
    for (int i = 0; i < s->n; i++) {
        int j = i + (int)rng_below(rng, (uint32_t)(SHAPES_N_CELLS - i));
        int8_t t = cells[i];
        cells[i] = cells[j];
        cells[j] = t;
    }
    for (int i = 1; i < s->n; i++)
        for (int j = i; j > 0 && cells[j - 1] > cells[j]; j--) {
            int8_t t = cells[j];
            cells[j] = cells[j - 1];
            cells[j - 1] = t;
        }
    for (int i = 0; i < s->n; i++) {
        s->obj[i].cell = cells[i];
        s->obj[i].shape = (int8_t)rng_below(rng, SHAPES_N_SHAPES);
        s->obj[i].color = (int8_t)rng_below(rng, SHAPES_N_COLORS);
        s->obj[i].size = (int8_t)rng_below(rng, SHAPES_N_SIZES);
    }
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
