/* shapes_qa.c: Shapes World questions and their answers (shapes.h). The
 * samplers choose what to ask; shapes_question_make alone computes every
 * answer from the scene. */
#include <stdio.h>
#include <string.h>

#include "data/shapes.h"

const char *const shapes_qtype_names[SHAPES_N_QTYPES] = {
    "color", "shape_at", "count_all", "count_shape", "count_color", "exists", "where", "size"};

int shapes_qtype_from_name(const char *name) {
    for (int t = 0; t < SHAPES_N_QTYPES; t++)
        if (!strcmp(name, shapes_qtype_names[t])) return t;
    return -1;
}

static const char *const shape_plurals[SHAPES_N_SHAPES] = {"circles", "squares", "triangles",
                                                            "diamonds", "crosses"};

/* ---- scene queries ---------------------------------------------------------- */

static int count_shape(const shapes_scene *s, int shape) {
    int k = 0;
    for (int i = 0; i < s->n; i++) k += s->obj[i].shape == shape;
    return k;
}

static int count_color(const shapes_scene *s, int color) {
    int k = 0;
    for (int i = 0; i < s->n; i++) k += s->obj[i].color == color;
    return k;
}

static int count_combo(const shapes_scene *s, int color, int shape) {
    int k = 0;
    for (int i = 0; i < s->n; i++) k += s->obj[i].color == color && s->obj[i].shape == shape;
    return k;
}

static int object_at(const shapes_scene *s, int cell) { /* index, or -1 */
    for (int i = 0; i < s->n; i++)
        if (s->obj[i].cell == cell) return i;
    return -1;
}

static int find_combo(const shapes_scene *s, int color, int shape) { /* first index, or -1 */
    for (int i = 0; i < s->n; i++)
        if (s->obj[i].color == color && s->obj[i].shape == shape) return i;
    return -1;
}

/* ---- text and answers --------------------------------------------------------- */

static int set_text(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n >= cap) return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

int shapes_question_make(const shapes_scene *s, shapes_question *q) {
    const int shape = q->shape, color = q->color, cell = q->cell;
    const int has_shape = shape >= 0 && shape < SHAPES_N_SHAPES;
    const int has_color = color >= 0 && color < SHAPES_N_COLORS;
    const int has_cell = cell >= 0 && cell < SHAPES_N_CELLS;
    const char *answer = NULL;
    int w = -1;
    if (shapes_scene_validate(s, NULL)) return -1;
    switch (q->type) {
    case SHAPES_Q_COLOR:
        if (!has_shape || count_shape(s, shape) != 1) return -1;
        w = snprintf(q->prompt, sizeof q->prompt, "what color is the %s?", shapes_shape_names[shape]);
        for (int i = 0; i < s->n; i++)
            if (s->obj[i].shape == shape) answer = shapes_color_names[s->obj[i].color];
        break;
    case SHAPES_Q_SHAPE_AT: {
        if (!has_cell) return -1;
        w = snprintf(q->prompt, sizeof q->prompt, "what shape is %s the %s?", cell == 4 ? "in" : "at",
                     shapes_cell_names[cell]);
        int i = object_at(s, cell);
        answer = i < 0 ? "nothing" : shapes_shape_names[s->obj[i].shape];
        break;
    }
    case SHAPES_Q_COUNT_ALL:
        w = snprintf(q->prompt, sizeof q->prompt, "how many objects are there?");
        answer = shapes_number_names[s->n];
        break;
    case SHAPES_Q_COUNT_SHAPE:
        if (!has_shape) return -1;
        w = snprintf(q->prompt, sizeof q->prompt, "how many %s are there?", shape_plurals[shape]);
        answer = shapes_number_names[count_shape(s, shape)];
        break;
    case SHAPES_Q_COUNT_COLOR:
        if (!has_color) return -1;
        w = snprintf(q->prompt, sizeof q->prompt, "how many %s objects are there?", shapes_color_names[color]);
        answer = shapes_number_names[count_color(s, color)];
        break;
    case SHAPES_Q_EXISTS:
        if (!has_color || !has_shape) return -1;
        w = snprintf(q->prompt, sizeof q->prompt, "is there a %s %s?", shapes_color_names[color],
                     shapes_shape_names[shape]);
        answer = count_combo(s, color, shape) ? "yes" : "no";
        break;
    case SHAPES_Q_WHERE:
    case SHAPES_Q_SIZE: {
        if (!has_color || !has_shape || count_combo(s, color, shape) != 1) return -1;
        const shapes_object *o = &s->obj[find_combo(s, color, shape)];
        w = snprintf(q->prompt, sizeof q->prompt, "%s is the %s %s?",
                     q->type == SHAPES_Q_WHERE ? "where" : "what size", shapes_color_names[color],
                     shapes_shape_names[shape]);
        answer = q->type == SHAPES_Q_WHERE ? shapes_cell_names[o->cell] : shapes_size_names[o->size];
        break;
    }
    default: return -1;
    }
    if (w < 0 || (size_t)w >= sizeof q->prompt || !answer) return -1;
    return set_text(q->answer, sizeof q->answer, answer);
}

/* ---- sampling ------------------------------------------------------------------ */

/* Indices of objects whose (color, shape) is on no other object. */
static int unique_combos(const shapes_scene *s, int *idx) {
    int k = 0;
    for (int i = 0; i < s->n; i++)
        if (count_combo(s, s->obj[i].color, s->obj[i].shape) == 1) idx[k++] = i;
    return k;
}

int shapes_question_askable(const shapes_scene *s, shapes_qtype type) {
    int idx[SHAPES_MAX_OBJECTS];
    if (shapes_scene_validate(s, NULL)) return 0;
    switch (type) {
    case SHAPES_Q_COLOR:
        for (int sh = 0; sh < SHAPES_N_SHAPES; sh++)
            if (count_shape(s, sh) == 1) return 1;
        return 0;
    case SHAPES_Q_WHERE:
    case SHAPES_Q_SIZE: return unique_combos(s, idx) > 0;
    case SHAPES_Q_SHAPE_AT:
    case SHAPES_Q_COUNT_ALL:
    case SHAPES_Q_COUNT_SHAPE:
    case SHAPES_Q_COUNT_COLOR:
    case SHAPES_Q_EXISTS: return 1;
    default: return 0;
    }
}

/* Chooses a count among those the n_values attributes take (counts[v] is
 * value v's), weighted toward the rarer high counts so that answers spread
 * (zero and one would otherwise dominate), then an attribute with that count
 * uniformly. */
static int pick_by_count(const int *counts, int n_values, loom_rng *rng) {
    static const uint32_t weight[SHAPES_MAX_OBJECTS + 1] = {1, 1, 3, 8, 8};
    int seen[SHAPES_MAX_OBJECTS + 1] = {0};
    uint32_t total = 0;
    for (int v = 0; v < n_values; v++)
        if (!seen[counts[v]]++) total += weight[counts[v]];
    uint32_t a = rng_below(rng, total);
    int want = 0;
    for (int k = 0; k <= SHAPES_MAX_OBJECTS; k++) {
        if (!seen[k]) continue;
        if (a < weight[k]) {
            want = k;
            break;
        }
        a -= weight[k];
    }
    int m = (int)rng_below(rng, (uint32_t)seen[want]);
    for (int v = 0; v < n_values; v++)
        if (counts[v] == want && m-- == 0) return v;
    return 0; /* unreachable */
}

/* A (color, shape) on no object for "is there ...? no": half the time one
 * sharing a color or a shape with some object (when there is one), never a
 * held-out combination unless the scene has one. Returns color * 5 + shape. */
static int pick_absent_combo(const shapes_scene *s, loom_rng *rng) {
    int all[SHAPES_N_COLORS * SHAPES_N_SHAPES], near[SHAPES_N_COLORS * SHAPES_N_SHAPES];
    int n_all = 0, n_near = 0;
    const int allow_heldout = shapes_scene_has_heldout(s);
    for (int c = 0; c < SHAPES_N_COLORS; c++)
        for (int sh = 0; sh < SHAPES_N_SHAPES; sh++) {
            if (count_combo(s, c, sh) || (!allow_heldout && shapes_combo_is_heldout(sh, c))) continue;
            all[n_all++] = c * SHAPES_N_SHAPES + sh;
            if (count_color(s, c) || count_shape(s, sh)) near[n_near++] = c * SHAPES_N_SHAPES + sh;
        }
    /* n_all >= 40 - 4 - 5 > 0: a scene has at most 4 combinations */
    if (n_near && rng_below(rng, 2)) return near[rng_below(rng, (uint32_t)n_near)];
    return all[rng_below(rng, (uint32_t)n_all)];
}

int shapes_question_sample(const shapes_scene *s, shapes_qtype type, loom_rng *rng,
                           shapes_question *q) {
    if (!shapes_question_askable(s, type)) return -1;
    shapes_question t;
    memset(&t, 0, sizeof t);
    t.type = type;
    t.shape = t.color = t.cell = -1;
    int idx[SHAPES_MAX_OBJECTS], counts[SHAPES_N_COLORS], k = 0;
    switch (type) {
    case SHAPES_Q_COLOR: {
        int shapes[SHAPES_N_SHAPES];
        for (int sh = 0; sh < SHAPES_N_SHAPES; sh++)
            if (count_shape(s, sh) == 1) shapes[k++] = sh;
        t.shape = (int8_t)shapes[rng_below(rng, (uint32_t)k)];
        break;
    }
    case SHAPES_Q_SHAPE_AT:
        if (s->n < SHAPES_N_CELLS && rng_below(rng, 3) == 0) { /* an empty cell: "nothing" */
            int empty[SHAPES_N_CELLS];
            for (int c = 0; c < SHAPES_N_CELLS; c++)
                if (object_at(s, c) < 0) empty[k++] = c;
            t.cell = (int8_t)empty[rng_below(rng, (uint32_t)k)];
        } else {
            t.cell = s->obj[rng_below(rng, (uint32_t)s->n)].cell;
        }
        break;
    case SHAPES_Q_COUNT_ALL: break;
    case SHAPES_Q_COUNT_SHAPE:
        for (int sh = 0; sh < SHAPES_N_SHAPES; sh++) counts[sh] = count_shape(s, sh);
        t.shape = (int8_t)pick_by_count(counts, SHAPES_N_SHAPES, rng);
        break;
    case SHAPES_Q_COUNT_COLOR:
        for (int c = 0; c < SHAPES_N_COLORS; c++) counts[c] = count_color(s, c);
        t.color = (int8_t)pick_by_count(counts, SHAPES_N_COLORS, rng);
        break;
    case SHAPES_Q_EXISTS:
        if (rng_below(rng, 2)) { /* yes: an object's own combination */
            const shapes_object *o = &s->obj[rng_below(rng, (uint32_t)s->n)];
            t.color = o->color;
            t.shape = o->shape;
        } else {
            int cs = pick_absent_combo(s, rng);
            t.color = (int8_t)(cs / SHAPES_N_SHAPES);
            t.shape = (int8_t)(cs % SHAPES_N_SHAPES);
        }
        break;
    case SHAPES_Q_WHERE:
    case SHAPES_Q_SIZE: {
        k = unique_combos(s, idx);
        const shapes_object *o = &s->obj[idx[rng_below(rng, (uint32_t)k)]];
        t.color = o->color;
        t.shape = o->shape;
        break;
    }
    default: return -1;
    }
    if (shapes_question_make(s, &t)) return -1; /* not reached for a valid scene */
    *q = t;
    return 0;
}

int shapes_question_sample_weighted(const shapes_scene *s, const float *weight, loom_rng *rng,
                                    shapes_question *q) {
    int types[SHAPES_N_QTYPES], k = 0;
    float total = 0.0f;
    for (int t = 0; t < SHAPES_N_QTYPES; t++)
        if (shapes_question_askable(s, (shapes_qtype)t) && (!weight || weight[t] > 0.0f)) {
            types[k++] = t;
            total += weight ? weight[t] : 1.0f;
        }
    if (k == 0) return -1; /* an invalid scene, or every askable type weighs 0 */
    if (!weight) return shapes_question_sample(s, (shapes_qtype)types[rng_below(rng, (uint32_t)k)], rng, q);
    float u = rng_uniform(rng) * total;
    int i = 0;
    while (i < k - 1 && u >= weight[types[i]]) u -= weight[types[i++]];
    return shapes_question_sample(s, (shapes_qtype)types[i], rng, q);
}

int shapes_question_sample_mix(const shapes_scene *s, loom_rng *rng, shapes_question *q) {
    return shapes_question_sample_weighted(s, NULL, rng, q);
}
