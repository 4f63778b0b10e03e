/* shapes_prompt.c: Shapes World generation prompts (shapes_prompt.h): a
 * scene's prompt, its text, the strict parser of that text, and whether a
 * scene answers a prompt. */
#include "data/shapes_prompt.h"

#include <string.h>

int shapes_prompt_validate(const shapes_prompt *p, loom_error *err) {
    if (!p) return loom_error_set(err, "prompt is NULL");
    if (p->n < 1 || p->n > SHAPES_MAX_OBJECTS)
        return loom_error_set(err, "prompt has %d objects (1..%d)", (int)p->n, SHAPES_MAX_OBJECTS);
    for (int i = 0; i < p->n; i++) {
        const int shape = p->obj[i].shape, color = p->obj[i].color, size = p->obj[i].size,
                  cell = p->obj[i].cell;
        if (shape < 0 || shape >= SHAPES_N_SHAPES || color < -1 || color >= SHAPES_N_COLORS ||
            size < -1 || size >= SHAPES_N_SIZES || cell < -1 || cell >= SHAPES_N_CELLS)
            return loom_error_set(err, "prompt object %d has an attribute out of range", i + 1);
        for (int j = 0; j < i; j++)
            if (cell >= 0 && p->obj[j].cell == cell)
                return loom_error_set(err, "prompt states the position \"%s\" twice (objects %d and %d)",
                                      shapes_cell_names[cell], j + 1, i + 1);
    }
    return 0;
}

int shapes_prompt_from_scene(const shapes_scene *s, loom_rng *rng, float p_drop, shapes_prompt *out) {
    if (!s || !out || shapes_scene_validate(s, NULL)) return -1;
    if (!(p_drop >= 0.0f && p_drop <= 1.0f) || (!rng && p_drop > 0.0f)) return -1; /* also NaN */
    shapes_prompt p;
    memset(&p, 0, sizeof p);
    p.n = s->n;
    for (int i = 0; i < s->n; i++) {
        const shapes_object *o = &s->obj[i];
        /* three draws per object whatever p_drop, so that the stream does
         * not depend on it; u < 0 never holds, u < 1 always does */
        const float u_size = rng ? rng_uniform(rng) : 1.0f, u_color = rng ? rng_uniform(rng) : 1.0f,
                    u_cell = rng ? rng_uniform(rng) : 1.0f;
        p.obj[i].shape = o->shape;
        p.obj[i].size = u_size < p_drop ? (int8_t)-1 : o->size;
        p.obj[i].color = u_color < p_drop ? (int8_t)-1 : o->color;
        p.obj[i].cell = u_cell < p_drop ? (int8_t)-1 : o->cell;
    }
    *out = p;
    return 0;
}

/* ---- text ---------------------------------------------------------------------- */

/* Appends src to out (cap bytes, *len used); -1 if it does not fit with its NUL. */
static int append_text(char *out, size_t cap, size_t *len, const char *src) {
    const size_t n = strlen(src);
    if (n >= cap - *len) return -1;
    memcpy(out + *len, src, n + 1);
    *len += n;
    return 0;
}

int shapes_prompt_format(const shapes_prompt *p, char *out, size_t cap) {
    if (!out || cap == 0 || shapes_prompt_validate(p, NULL)) return -1;
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < p->n; i++) {
        const int color = p->obj[i].color, size = p->obj[i].size, cell = p->obj[i].cell;
        /* exactly shapes_caption's joins and words, with the unstated ones left out */
        const char *sep = i == 0 ? "" : (i == p->n - 1 ? " and " : ", ");
        if (append_text(out, cap, &len, sep) || append_text(out, cap, &len, "a ")) return -1;
        if (size >= 0 && (append_text(out, cap, &len, shapes_size_names[size]) ||
                          append_text(out, cap, &len, " ")))
            return -1;
        if (color >= 0 && (append_text(out, cap, &len, shapes_color_names[color]) ||
                           append_text(out, cap, &len, " ")))
            return -1;
        if (append_text(out, cap, &len, shapes_shape_names[p->obj[i].shape])) return -1;
        if (cell >= 0 && (append_text(out, cap, &len, cell == 4 ? " in the " : " at the ") ||
                          append_text(out, cap, &len, shapes_cell_names[cell])))
            return -1;
    }
    return (int)len;
}

/* ---- parsing ------------------------------------------------------------------- */

/* A name is a whole word when no letter follows it ("circle." is the word
 * "circle" and a stray ".", "circles" is no name). */
static int is_word_end(char c) { return !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z'); }

/* Consumes the literal lit if the text continues with it. */
static int take_literal(const char **p, const char *lit) {
    const size_t n = strlen(lit);
    if (strncmp(*p, lit, n)) return 0;
    *p += n;
    return 1;
}

/* Consumes the longest of the n names (which may hold spaces: "top left")
 * that the text continues with as whole words; returns its index, or -1. */
static int take_name(const char **p, const char *const *names, int n) {
    int best = -1;
    size_t best_len = 0;
    for (int i = 0; i < n; i++) {
        const size_t len = strlen(names[i]);
        if (len > best_len && !strncmp(*p, names[i], len) && is_word_end((*p)[len])) {
            best = i;
            best_len = len;
        }
    }
    *p += best_len;
    return best;
}

/* "prompt: <what> at character <k>: "<the text from there>"" */
static int parse_fail(loom_error *err, const char *text, const char *p, const char *what) {
    if (!*p) return loom_error_set(err, "prompt: %s at the end of \"%s\"", what, text);
    return loom_error_set(err, "prompt: %s at character %d: \"%.32s\"", what, (int)(p - text), p);
}

/* One object: a [size] [color] shape[ at the <position> | in the center]. */
static int parse_object(const char *text, const char **pp, shapes_prompt *out, loom_error *err) {
    const char *p = *pp;
    if (!take_literal(&p, "a") || !take_literal(&p, " "))
        return parse_fail(err, text, p, "expected \"a \" to begin an object");
    const int size = take_name(&p, shapes_size_names, SHAPES_N_SIZES);
    if (size >= 0 && !take_literal(&p, " ")) return parse_fail(err, text, p, "expected a color or shape");
    const int color = take_name(&p, shapes_color_names, SHAPES_N_COLORS);
    if (color >= 0 && !take_literal(&p, " ")) return parse_fail(err, text, p, "expected a shape");
    const int shape = take_name(&p, shapes_shape_names, SHAPES_N_SHAPES);
    if (shape < 0)
        return parse_fail(err, text, p,
                          size < 0 && color < 0 ? "expected a size, color or shape"
                          : color < 0           ? "expected a color or shape"
                                                : "expected a shape");
    int cell = -1;
    if (take_literal(&p, " at the ")) {
        const char *at = p;
        cell = take_name(&p, shapes_cell_names, SHAPES_N_CELLS);
        if (cell < 0) return parse_fail(err, text, p, "expected a position after \"at the\"");
        if (cell == 4) return parse_fail(err, text, at, "say \"in the center\", not \"at the center\",");
    } else if (take_literal(&p, " in the ")) {
        const char *in = p;
        if (take_name(&p, shapes_cell_names, SHAPES_N_CELLS) != 4)
            return parse_fail(err, text, in, "expected \"center\" after \"in the\"");
        cell = 4;
    }
    out->obj[out->n].shape = (int8_t)shape;
    out->obj[out->n].color = (int8_t)color;
    out->obj[out->n].size = (int8_t)size;
    out->obj[out->n].cell = (int8_t)cell;
    out->n++;
    *pp = p;
    return 0;
}

int shapes_prompt_parse(const char *text, shapes_prompt *out, loom_error *err) {
    if (!text || !out) return loom_error_set(err, "prompt: NULL argument");
    shapes_prompt q;
    memset(&q, 0, sizeof q);
    const char *p = text;
    int joined_by_and[SHAPES_MAX_OBJECTS] = {0}; /* [i]: object i follows " and " (else ", ") */
    for (;;) {
        if (parse_object(text, &p, &q, err)) return -1;
        if (!*p) break;
        int by_and = 0;
        if (take_literal(&p, " and ")) by_and = 1;
        else if (!take_literal(&p, ", ")) return parse_fail(err, text, p, "expected \", \", \" and \" or the end");
        if (q.n == SHAPES_MAX_OBJECTS) return parse_fail(err, text, p, "more than 4 objects");
        joined_by_and[q.n] = by_and;
    }
    /* "X", "X and Y", "X, Y and Z", "W, X, Y and Z": only the last join is "and" */
    for (int i = 1; i < q.n; i++)
        if (joined_by_and[i] != (i == q.n - 1))
            return loom_error_set(err, "prompt: objects %d and %d are joined by \"%s\", want \"%s\" (in \"%s\")", i,
                                  i + 1, joined_by_and[i] ? " and " : ", ", i == q.n - 1 ? " and " : ", ", text);
    if (shapes_prompt_validate(&q, err)) return -1; /* a position stated twice */
    *out = q;
    return 0;
}

/* ---- judging a scene ------------------------------------------------------------- */

/* 1 if scene object o has prompt object i's shape and every stated attribute. */
static int object_fits(const shapes_prompt *p, int i, const shapes_object *o) {
    return o->shape == p->obj[i].shape && (p->obj[i].color < 0 || o->color == p->obj[i].color) &&
           (p->obj[i].size < 0 || o->size == p->obj[i].size) && (p->obj[i].cell < 0 || o->cell == p->obj[i].cell);
}

/* 1 if prompt objects i.. can be given distinct scene objects not in used
 * (a bit mask): depth-first over the at most 4! assignments. */
static int assign_objects(const shapes_prompt *p, const shapes_scene *s, int i, uint32_t used) {
    if (i == p->n) return 1;
    for (int j = 0; j < s->n; j++)
        if (!(used >> j & 1u) && object_fits(p, i, &s->obj[j]) && assign_objects(p, s, i + 1, used | 1u << j))
            return 1;
    return 0;
}

int shapes_prompt_matches(const shapes_prompt *p, const shapes_scene *s) {
    if (!p || !s || shapes_prompt_validate(p, NULL) || s->n != p->n) return 0;
    /* the scene: attributes in range, at most one object per cell (any order) */
    for (int j = 0; j < s->n; j++) {
        const shapes_object *o = &s->obj[j];
        if (o->shape < 0 || o->shape >= SHAPES_N_SHAPES || o->color < 0 || o->color >= SHAPES_N_COLORS ||
            o->size < 0 || o->size >= SHAPES_N_SIZES || o->cell < 0 || o->cell >= SHAPES_N_CELLS)
            return 0;
        for (int k = 0; k < j; k++)
            if (s->obj[k].cell == o->cell) return 0;
    }
    return assign_objects(p, s, 0, 0);
}

int shapes_scene_from_caption(const char *text, shapes_scene *out, loom_error *err) {
    shapes_prompt p;
    if (shapes_prompt_parse(text, &p, err)) return -1;
    shapes_scene s;
    memset(&s, 0, sizeof s);
    s.n = p.n;
    for (int32_t i = 0; i < p.n; i++) {
        if (p.obj[i].color < 0 || p.obj[i].size < 0 || p.obj[i].cell < 0)
            return loom_error_set(err, "\"%s\": object %d leaves an attribute out", text, i + 1);
        s.obj[i].shape = p.obj[i].shape, s.obj[i].color = p.obj[i].color;
        s.obj[i].size = p.obj[i].size, s.obj[i].cell = p.obj[i].cell;
    }
    /* sorted by cell (a caption already is; the sort makes any order valid) */
    for (int32_t i = 1; i < s.n; i++)
        for (int32_t j = i; j > 0 && s.obj[j - 1].cell > s.obj[j].cell; j--) {
            shapes_object t = s.obj[j];
            s.obj[j] = s.obj[j - 1], s.obj[j - 1] = t;
        }
    if (shapes_scene_validate(&s, err)) return -1;
    *out = s;
    return 0;
}
