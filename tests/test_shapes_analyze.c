/* test_shapes_analyze.c: Shapes World generation prompts (src/data/shapes_prompt.h)
 * and the scene analyzer that judges generated images (src/data/shapes_analyze.h).
 *
 *   full prompts    p_drop 0 on 4000 scenes (every split): the text is
 *                   shapes_caption's byte for byte, parses back, matches.
 *   format          hand-built prompts with attributes left out, every join;
 *                   too small a buffer, invalid prompts: -1.
 *   dropping        rates of left-out attributes ~p_drop, never the shape;
 *                   p_drop 1 leaves shapes alone; a fixed rng stream whatever
 *                   p_drop; bad arguments refused.
 *   round trip      20000 random prompts (any order, any attribute left out):
 *                   parse(format(p)) == p and format(parse(t)) == t.
 *   strict parse    malformed texts (missing "a", unknown words, wrong joins,
 *                   trailing text, 5 objects, a position twice, ...): -1, a
 *                   message saying why, out untouched; 20000 randomly mutated
 *                   prompts: whatever is accepted formats back to itself.
 *   matches         hand-built cases (order, counts, attributes, an assignment
 *                   that needs backtracking, invalid scenes); random prompts
 *                   against random scenes equal an independent oracle.
 *   analyzer        jittered renders of every split at every canvas size
 *                   (48..96, square and not): the exact scene >= 99.5%
 *                   overall and at 64 x 64; 64 x 64 with noise (sigma 6) and
 *                   a 3 x 3 box blur: >= 97%; every (shape, color, size, cell)
 *                   unjittered: exact; measured geometry near the truth;
 *                   figures and time per image printed.
 *   odd images      black, specks and strokes, 5 objects, two in one cell,
 *                   garbage of any size (what is read is well-formed), the
 *                   narrowest and longest canvases; invalid arguments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <math.h>
#include <time.h>

#include "core/error.h"
#include "core/rng.h"
#include "data/shapes.h"
#include "data/shapes_analyze.h"
#include "data/shapes_prompt.h"

enum { CIRCLE, SQUARE, TRIANGLE, DIAMOND, CROSS };
enum { RED, GREEN, BLUE, YELLOW, MAGENTA, CYAN, WHITE, ORANGE };
enum { SMALL, LARGE };
enum { NA = -1 }; /* not stated */
static const int32_t k_sides[4] = {48, 64, 80, 96};

/* A scene from {shape, color, size, cell} quadruples. */
static shapes_scene make_scene(int n, const int8_t (*o)[4]) {
    shapes_scene s;
    memset(&s, 0, sizeof s);
    s.n = n;
    for (int i = 0; i < n; i++) {
        s.obj[i].shape = o[i][0];
        s.obj[i].color = o[i][1];
        s.obj[i].size = o[i][2];
        s.obj[i].cell = o[i][3];
    }
    return s;
}

/* A prompt from {shape, color, size, cell} quadruples (NA: not stated). */
static shapes_prompt make_prompt(int n, const int8_t (*o)[4]) {
    shapes_prompt p;
    memset(&p, 0, sizeof p);
    p.n = n;
    for (int i = 0; i < n; i++) {
        p.obj[i].shape = o[i][0];
        p.obj[i].color = o[i][1];
        p.obj[i].size = o[i][2];
        p.obj[i].cell = o[i][3];
    }
    return p;
}

static shapes_prompt parse_ok(const char *text) {
    shapes_prompt p;
    loom_error err = {{0}};
    if (shapes_prompt_parse(text, &p, &err)) fail_msg("cannot parse \"%s\": %s", text, err.msg);
    return p;
}

/* ---- full prompts are captions ------------------------------------------------------ */

static void test_full_prompt_is_caption(void **state) {
    (void)state;
    loom_rng rng, drop_rng;
    shapes_split_rng(&rng, SHAPES_SPLIT_TEST, 21);
    rng_seed(&drop_rng, 22);
    char cap[SHAPES_CAPTION_MAX], text[SHAPES_CAPTION_MAX];
    int seen_n[SHAPES_MAX_OBJECTS + 1] = {0}, center = 0;
    for (int t = 0; t < 4000; t++) {
        shapes_scene s;
        if (t % 4 == 3) shapes_scene_sample(&rng, &s);
        else shapes_scene_sample_split(&s, (enum shapes_split)(t % 4), &rng);
        seen_n[s.n]++;
        int len = shapes_caption(&s, cap, sizeof cap);
        assert_true(len > 0);
        center += strstr(cap, "in the center") != NULL;
        shapes_prompt p;
        /* with an rng and p_drop 0, and with no rng */
        assert_int_equal(shapes_prompt_from_scene(&s, t % 2 ? &drop_rng : NULL, 0.0f, &p), 0);
        assert_int_equal(shapes_prompt_format(&p, text, sizeof text), len);
        if (strcmp(text, cap)) fail_msg("prompt \"%s\" != caption \"%s\"", text, cap);
        assert_memory_equal(text, cap, (size_t)len + 1);
        shapes_prompt q = parse_ok(cap);
        assert_memory_equal(&p, &q, sizeof p);
        assert_int_equal(shapes_prompt_matches(&q, &s), 1);
    }
    for (int n = 1; n <= SHAPES_MAX_OBJECTS; n++) assert_true(seen_n[n] > 800);
    assert_true(center > 500);
    print_message("  4000 full prompts equal their captions byte for byte\n");
}

/* ---- format ------------------------------------------------------------------------- */

static void expect_format(int n, const int8_t (*o)[4], const char *want) {
    shapes_prompt p = make_prompt(n, o);
    char text[SHAPES_CAPTION_MAX];
    int len = shapes_prompt_format(&p, text, sizeof text);
    if (len < 0) fail_msg("cannot format \"%s\"", want);
    assert_string_equal(text, want);
    assert_int_equal(len, (int)strlen(want));
    /* the exact cap works, one byte less does not */
    assert_int_equal(shapes_prompt_format(&p, text, strlen(want) + 1), len);
    assert_int_equal(shapes_prompt_format(&p, text, strlen(want)), -1);
    shapes_prompt q = parse_ok(want);
    assert_memory_equal(&p, &q, sizeof p);
}

static void test_prompt_format(void **state) {
    (void)state;
    /* the design's examples */
    static const int8_t a[1][4] = {{CIRCLE, RED, NA, NA}};
    expect_format(1, a, "a red circle");
    static const int8_t b[1][4] = {{CIRCLE, NA, NA, 0}};
    expect_format(1, b, "a circle at the top left");
    static const int8_t c[1][4] = {{CROSS, NA, NA, NA}};
    expect_format(1, c, "a cross");
    static const int8_t d[1][4] = {{DIAMOND, NA, SMALL, 4}};
    expect_format(1, d, "a small diamond in the center");
    static const int8_t e[1][4] = {{SQUARE, ORANGE, LARGE, 8}};
    expect_format(1, e, "a large orange square at the bottom right");
    /* the joins: X and Y, X, Y and Z, W, X, Y and Z */
    static const int8_t f[2][4] = {{TRIANGLE, NA, LARGE, NA}, {SQUARE, WHITE, NA, 1}};
    expect_format(2, f, "a large triangle and a white square at the top");
    static const int8_t g[3][4] = {{CIRCLE, NA, NA, 4}, {CIRCLE, NA, NA, NA}, {CROSS, CYAN, SMALL, 6}};
    expect_format(3, g, "a circle in the center, a circle and a small cyan cross at the bottom left");
    static const int8_t h[4][4] = {
        {SQUARE, NA, NA, NA}, {DIAMOND, GREEN, NA, 2}, {TRIANGLE, NA, SMALL, NA}, {CROSS, MAGENTA, LARGE, 3}};
    expect_format(4, h,
                  "a square, a green diamond at the top right, a small triangle and a large magenta cross at the left");
    /* order is kept as given (a scene's prompt is in reading order) */
    static const int8_t k[2][4] = {{CIRCLE, NA, NA, 8}, {SQUARE, NA, NA, 0}};
    expect_format(2, k, "a circle at the bottom right and a square at the top left");

    /* invalid prompts and buffers */
    char text[SHAPES_CAPTION_MAX];
    shapes_prompt p = make_prompt(1, a);
    assert_int_equal(shapes_prompt_format(&p, text, 0), -1);
    assert_int_equal(shapes_prompt_format(&p, NULL, 10), -1);
    p.n = 0;
    assert_int_equal(shapes_prompt_format(&p, text, sizeof text), -1);
    p.n = 5;
    assert_int_equal(shapes_prompt_format(&p, text, sizeof text), -1);
    static const int8_t bad[5][4] = {{NA, RED, NA, NA},     /* no shape */
                                     {5, RED, NA, NA},      /* shape out of range */
                                     {CIRCLE, 8, NA, NA},   /* color */
                                     {CIRCLE, NA, 2, NA},   /* size */
                                     {CIRCLE, NA, NA, 9}};  /* cell */
    for (int i = 0; i < 5; i++) {
        p = make_prompt(1, &bad[i]);
        assert_int_equal(shapes_prompt_format(&p, text, sizeof text), -1);
        assert_int_equal(shapes_prompt_validate(&p, NULL), -1);
    }
    static const int8_t twice[2][4] = {{CIRCLE, NA, NA, 3}, {SQUARE, NA, NA, 3}};
    p = make_prompt(2, twice);
    loom_error err = {{0}};
    assert_int_equal(shapes_prompt_validate(&p, &err), -1);
    assert_non_null(strstr(err.msg, "\"left\" twice"));
    assert_int_equal(shapes_prompt_format(&p, text, sizeof text), -1);
}

/* ---- dropping attributes -------------------------------------------------------------- */

static void test_prompt_drop(void **state) {
    (void)state;
    loom_rng rng, scenes;
    rng_seed(&rng, 5);
    shapes_split_rng(&scenes, SHAPES_SPLIT_TRAIN, 6);
    const float p_drop = 0.3f;
    int n_obj = 0, dropped[3] = {0}, all_kept = 0, none_kept = 0;
    for (int t = 0; t < 5000; t++) {
        shapes_scene s;
        shapes_prompt p;
        shapes_scene_sample_split(&s, SHAPES_SPLIT_TRAIN, &scenes);
        assert_int_equal(shapes_prompt_from_scene(&s, &rng, p_drop, &p), 0);
        assert_int_equal(p.n, s.n);
        for (int i = 0; i < s.n; i++) {
            assert_int_equal(p.obj[i].shape, s.obj[i].shape);
            assert_true(p.obj[i].color == NA || p.obj[i].color == s.obj[i].color);
            assert_true(p.obj[i].size == NA || p.obj[i].size == s.obj[i].size);
            assert_true(p.obj[i].cell == NA || p.obj[i].cell == s.obj[i].cell);
            dropped[0] += p.obj[i].size == NA;
            dropped[1] += p.obj[i].color == NA;
            dropped[2] += p.obj[i].cell == NA;
            int k = (p.obj[i].size != NA) + (p.obj[i].color != NA) + (p.obj[i].cell != NA);
            all_kept += k == 3;
            none_kept += k == 0;
            n_obj++;
        }
        assert_int_equal(shapes_prompt_matches(&p, &s), 1); /* a scene answers its own prompt */
    }
    print_message("  p_drop %.2f: size %.3f color %.3f cell %.3f left out (%d objects)\n", (double)p_drop,
                  (double)dropped[0] / n_obj, (double)dropped[1] / n_obj, (double)dropped[2] / n_obj, n_obj);
    for (int k = 0; k < 3; k++) assert_true(fabs((double)dropped[k] / n_obj - p_drop) < 0.02);
    assert_true(all_kept > 0 && none_kept > 0); /* independent draws: both extremes occur */

    /* p_drop 1: shapes alone; the stream advances by 3 draws per object whatever p_drop */
    static const int8_t o[3][4] = {{CIRCLE, RED, LARGE, 0}, {SQUARE, BLUE, SMALL, 4}, {CROSS, WHITE, SMALL, 8}};
    shapes_scene s = make_scene(3, o);
    shapes_prompt p;
    char text[SHAPES_CAPTION_MAX];
    loom_rng r0, r1, r2;
    rng_seed(&r0, 9);
    rng_seed(&r1, 9);
    rng_seed(&r2, 9);
    assert_int_equal(shapes_prompt_from_scene(&s, &r0, 1.0f, &p), 0);
    shapes_prompt_format(&p, text, sizeof text);
    assert_string_equal(text, "a circle, a square and a cross");
    assert_int_equal(shapes_prompt_from_scene(&s, &r1, 0.0f, &p), 0);
    for (int i = 0; i < 9; i++) rng_uniform(&r2);
    uint64_t x0 = rng_u64(&r0), x1 = rng_u64(&r1), x2 = rng_u64(&r2);
    assert_true(x0 == x2 && x1 == x2);
    /* the same rng state gives the same prompt */
    shapes_prompt q;
    rng_seed(&r0, 10);
    rng_seed(&r1, 10);
    assert_int_equal(shapes_prompt_from_scene(&s, &r0, 0.5f, &p), 0);
    assert_int_equal(shapes_prompt_from_scene(&s, &r1, 0.5f, &q), 0);
    assert_memory_equal(&p, &q, sizeof p);

    /* refused: no rng with p_drop > 0, p_drop outside [0, 1] or NaN, an invalid scene */
    memset(&q, 0x5a, sizeof q);
    assert_int_equal(shapes_prompt_from_scene(&s, NULL, 0.1f, &q), -1);
    assert_int_equal(shapes_prompt_from_scene(&s, &r0, -0.1f, &q), -1);
    assert_int_equal(shapes_prompt_from_scene(&s, &r0, 1.5f, &q), -1);
    assert_int_equal(shapes_prompt_from_scene(&s, &r0, NAN, &q), -1);
    assert_int_equal(shapes_prompt_from_scene(NULL, &r0, 0.0f, &q), -1);
    assert_int_equal(shapes_prompt_from_scene(&s, &r0, 0.0f, NULL), -1);
    static const int8_t twice[2][4] = {{CIRCLE, RED, LARGE, 4}, {SQUARE, RED, LARGE, 4}};
    s = make_scene(2, twice);
    assert_int_equal(shapes_prompt_from_scene(&s, &r0, 0.0f, &q), -1);
    assert_int_equal(q.n, 0x5a5a5a5a); /* untouched */
}

/* ---- round trip ------------------------------------------------------------------------ */

static void test_prompt_round_trip(void **state) {
    (void)state;
    loom_rng rng;
    rng_seed(&rng, 77);
    char text[SHAPES_CAPTION_MAX], again[SHAPES_CAPTION_MAX];
    int seen_n[SHAPES_MAX_OBJECTS + 1] = {0}, seen_cell[SHAPES_N_CELLS] = {0}, seen_shape[SHAPES_N_SHAPES] = {0};
    int seen_color[SHAPES_N_COLORS] = {0}, seen_size[SHAPES_N_SIZES] = {0}, unstated[3] = {0}, longest = 0;
    for (int t = 0; t < 20000; t++) {
        /* any order of distinct cells, any attribute left out */
        shapes_prompt p;
        memset(&p, 0, sizeof p);
        p.n = 1 + (int32_t)rng_below(&rng, SHAPES_MAX_OBJECTS);
        int8_t cells[SHAPES_N_CELLS];
        for (int i = 0; i < SHAPES_N_CELLS; i++) cells[i] = (int8_t)i;
        for (int i = 0; i < SHAPES_N_CELLS - 1; i++) {
            int j = i + (int)rng_below(&rng, (uint32_t)(SHAPES_N_CELLS - i));
            int8_t tmp = cells[i];
            cells[i] = cells[j];
            cells[j] = tmp;
        }
        for (int i = 0; i < p.n; i++) {
            p.obj[i].shape = (int8_t)rng_below(&rng, SHAPES_N_SHAPES);
            p.obj[i].color = rng_below(&rng, 3) ? (int8_t)rng_below(&rng, SHAPES_N_COLORS) : (int8_t)NA;
            p.obj[i].size = rng_below(&rng, 3) ? (int8_t)rng_below(&rng, SHAPES_N_SIZES) : (int8_t)NA;
            p.obj[i].cell = rng_below(&rng, 3) ? cells[i] : (int8_t)NA;
            seen_shape[p.obj[i].shape]++;
            if (p.obj[i].color >= 0) seen_color[p.obj[i].color]++;
            else unstated[0]++;
            if (p.obj[i].size >= 0) seen_size[p.obj[i].size]++;
            else unstated[1]++;
            if (p.obj[i].cell >= 0) seen_cell[p.obj[i].cell]++;
            else unstated[2]++;
        }
        seen_n[p.n]++;
        int len = shapes_prompt_format(&p, text, sizeof text);
        assert_true(len > 0);
        longest = len > longest ? len : longest;
        shapes_prompt q;
        memset(&q, 0x5a, sizeof q);
        loom_error err = {{0}};
        if (shapes_prompt_parse(text, &q, &err)) fail_msg("cannot parse \"%s\": %s", text, err.msg);
        assert_memory_equal(&p, &q, sizeof p);
        assert_int_equal(shapes_prompt_format(&q, again, sizeof again), len);
        assert_string_equal(again, text);
    }
    for (int n = 1; n <= 4; n++) assert_true(seen_n[n] > 4000);
    for (int i = 0; i < SHAPES_N_CELLS; i++) assert_true(seen_cell[i] > 1000);
    for (int i = 0; i < SHAPES_N_SHAPES; i++) assert_true(seen_shape[i] > 1000);
    for (int i = 0; i < SHAPES_N_COLORS; i++) assert_true(seen_color[i] > 1000);
    for (int i = 0; i < SHAPES_N_SIZES; i++) assert_true(seen_size[i] > 1000);
    for (int i = 0; i < 3; i++) assert_true(unstated[i] > 5000);
    assert_true(longest < SHAPES_CAPTION_MAX);
    print_message("  20000 random prompts round-trip; longest %d bytes\n", longest);
}

/* ---- strict parse ----------------------------------------------------------------------- */

static void expect_reject(const char *text, const char *why) {
    shapes_prompt p;
    memset(&p, 0x5a, sizeof p);
    loom_error err;
    memset(&err, 0, sizeof err);
    int rc = shapes_prompt_parse(text, &p, &err);
    if (rc != -1) fail_msg("accepted \"%s\"", text ? text : "(null)");
    if (!strstr(err.msg, why)) fail_msg("\"%s\": message \"%s\" does not say \"%s\"", text, err.msg, why);
    assert_int_equal(p.n, 0x5a5a5a5a); /* untouched */
}

static void test_prompt_parse_strict(void **state) {
    (void)state;
    expect_reject(NULL, "NULL");
    expect_reject("", "expected \"a \"");
    expect_reject("red circle", "expected \"a \"");                        /* no article */
    expect_reject("A red circle", "expected \"a \"");                      /* case */
    expect_reject("an orange circle", "expected \"a \"");                  /* the grammar's article is "a" */
    expect_reject(" a red circle", "expected \"a \"");
    expect_reject("a", "expected \"a \"");
    expect_reject("a ", "expected a size, color or shape");
    expect_reject("a purple circle", "expected a size, color or shape"); /* unknown color */
    expect_reject("a red blob", "expected a shape");                      /* unknown shape */
    expect_reject("a red", "expected a shape");
    expect_reject("a small", "expected a color or shape");
    expect_reject("a huge circle", "\"huge circle\"");                     /* says where */
    expect_reject("a red small circle", "expected a shape");              /* order: size before color */
    expect_reject("a red red circle", "expected a shape");
    expect_reject("a small large circle", "expected a color or shape");
    expect_reject("a circles", "expected a size, color or shape");
    expect_reject("a  circle", "expected a size, color or shape");        /* two spaces */
    expect_reject("a red circle.", "expected \", \", \" and \" or the end"); /* final period */
    expect_reject("a red circle ", "expected \", \", \" and \" or the end");
    expect_reject("a red circle at the top left junk", "expected \", \", \" and \" or the end");
    expect_reject("a red circle at the top lefty", "expected \", \", \" and \" or the end");
    expect_reject("a circle at the top left at the top", "expected \", \", \" and \" or the end");
    expect_reject("a circle at the middle", "expected a position");
    expect_reject("a circle at the", "expected \", \", \" and \" or the end"); /* "at the" needs its space */
    expect_reject("a circle at the ", "expected a position");
    expect_reject("a circle at the center", "in the center");
    expect_reject("a circle in the top left", "expected \"center\"");
    expect_reject("a circle in the centre", "expected \"center\"");
    expect_reject("a circle,a square", "expected \", \", \" and \" or the end");
    expect_reject("a circle and ", "expected \"a \"");
    expect_reject("a circle, ", "expected \"a \"");
    expect_reject("a circle and and a square", "expected \"a \"");
    expect_reject("a circle, a square", "joined by \", \", want \" and \"");
    expect_reject("a circle and a square and a cross", "joined by \" and \", want \", \"");
    expect_reject("a circle, a square, a cross", "joined by \", \", want \" and \"");
    expect_reject("a circle and a square, a cross", "joined by");
    expect_reject("a circle, a square, a cross, a diamond and a circle", "more than 4 objects");
    expect_reject("a circle, a square, a cross and a diamond and a circle", "more than 4 objects");
    expect_reject("a circle at the top and a square at the top", "\"top\" twice");
    expect_reject("a circle in the center, a square and a small cross in the center", "\"center\" twice");
    expect_reject("a large red circle at the top left.", "expected \", \", \" and \" or the end");

    /* mutated prompts (a byte changed, dropped, doubled; words swapped in):
     * whatever is accepted formats back to the very same text */
    static const char *const words[] = {"a ", "an ", " and ", ", ", "at the ", "in the ", "center", "top", "left",
                                        "red", "small", "circle", "crosses", ".", "  "};
    loom_rng rng;
    rng_seed(&rng, 8);
    int accepted = 0, rejected = 0;
    for (int t = 0; t < 20000; t++) {
        shapes_scene s;
        shapes_prompt q;
        char text[2 * SHAPES_CAPTION_MAX], again[SHAPES_CAPTION_MAX];
        shapes_scene_sample(&rng, &s);
        assert_int_equal(shapes_prompt_from_scene(&s, &rng, 0.3f, &q), 0);
        int len = shapes_prompt_format(&q, text, sizeof text);
        for (int k = 1 + (int)rng_below(&rng, 2); k > 0; k--) {
            int at = (int)rng_below(&rng, (uint32_t)len + 1);
            switch (rng_below(&rng, 4)) {
            case 0: if (at < len) text[at] = (char)(' ' + rng_below(&rng, 95)); break; /* replace */
            case 1: if (at < len) memmove(text + at, text + at + 1, (size_t)(len-- - at)); break; /* drop */
            case 2: memmove(text + at + 1, text + at, (size_t)(len++ - at + 1)); break; /* double */
            default: {                                                                /* insert a word */
                const char *w = words[rng_below(&rng, sizeof words / sizeof words[0])];
                size_t wl = strlen(w);
                memmove(text + at + wl, text + at, (size_t)(len - at + 1));
                memcpy(text + at, w, wl);
                len += (int)wl;
            }
            }
            text[len] = '\0';
        }
        loom_error err = {{0}};
        if (shapes_prompt_parse(text, &q, &err)) {
            assert_true(strncmp(err.msg, "prompt: ", 8) == 0);
            rejected++;
            continue;
        }
        accepted++;
        assert_true(shapes_prompt_format(&q, again, sizeof again) >= 0);
        if (strcmp(again, text)) fail_msg("accepted \"%s\", which formats as \"%s\"", text, again);
    }
    print_message("  20000 mutated prompts: %d rejected, %d accepted (each formats back to itself)\n", rejected,
                  accepted);
    assert_true(accepted > 100 && rejected > 10000);

    /* the longest forms are accepted */
    shapes_prompt p = parse_ok("a large magenta triangle at the bottom right, a small orange diamond at the bottom "
                               "left, a large white cross in the center and a small yellow square at the top right");
    assert_int_equal(p.n, 4);
    assert_int_equal(p.obj[0].cell, 8);
    assert_int_equal(p.obj[1].cell, 6);
    assert_int_equal(p.obj[2].cell, 4);
    assert_int_equal(p.obj[3].cell, 2);
    p = parse_ok("a circle at the top, a circle at the top left, a circle at the left and a circle");
    assert_int_equal(p.obj[0].cell, 1);
    assert_int_equal(p.obj[1].cell, 0);
    assert_int_equal(p.obj[2].cell, 3);
    assert_int_equal(p.obj[3].cell, NA);
}

/* ---- matches ------------------------------------------------------------------------------ */

static int matches_text(const char *text, const shapes_scene *s) {
    shapes_prompt p = parse_ok(text);
    return shapes_prompt_matches(&p, s);
}

/* An independent judge: every map of prompt objects to scene objects (n^n),
 * kept if one-to-one and every stated attribute agrees. */
static int oracle_matches(const shapes_prompt *p, const shapes_scene *s) {
    if (p->n != s->n) return 0;
    int total = 1;
    for (int i = 0; i < p->n; i++) total *= p->n;
    for (int code = 0; code < total; code++) {
        int map[SHAPES_MAX_OBJECTS], c = code, used = 0, ok = 1;
        for (int i = 0; i < p->n; i++, c /= p->n) map[i] = c % p->n;
        for (int i = 0; i < p->n && ok; i++) {
            const shapes_object *o = &s->obj[map[i]];
            ok = !(used & (1 << map[i])) && o->shape == p->obj[i].shape &&
                 (p->obj[i].color < 0 || p->obj[i].color == o->color) &&
                 (p->obj[i].size < 0 || p->obj[i].size == o->size) &&
                 (p->obj[i].cell < 0 || p->obj[i].cell == o->cell);
            used |= 1 << map[i];
        }
        if (ok) return 1;
    }
    return 0;
}

static void test_prompt_matches(void **state) {
    (void)state;
    static const int8_t a[3][4] = {{CIRCLE, RED, LARGE, 0}, {SQUARE, BLUE, SMALL, 4}, {CROSS, WHITE, SMALL, 8}};
    shapes_scene s = make_scene(3, a);
    assert_int_equal(matches_text("a large red circle at the top left, a small blue square in the center and a small "
                                  "white cross at the bottom right", &s), 1);
    assert_int_equal(matches_text("a circle, a square and a cross", &s), 1);
    assert_int_equal(matches_text("a cross, a circle and a square", &s), 1);    /* any order */
    assert_int_equal(matches_text("a white cross at the bottom right, a red circle and a square in the center", &s), 1);
    assert_int_equal(matches_text("a circle and a square", &s), 0);             /* one object too few */
    assert_int_equal(matches_text("a circle, a square, a cross and a circle", &s), 0); /* one too many */
    assert_int_equal(matches_text("a blue circle, a square and a cross", &s), 0);
    assert_int_equal(matches_text("a small circle, a square and a cross", &s), 0);
    assert_int_equal(matches_text("a circle at the top, a square and a cross", &s), 0);
    assert_int_equal(matches_text("a circle, a square at the top left and a cross", &s), 0);
    assert_int_equal(matches_text("a circle, a triangle and a cross", &s), 0);
    assert_int_equal(matches_text("a circle, a circle and a cross", &s), 0);    /* one-to-one */

    /* greedy would fail: "a circle" must leave the red circle to "a red circle" */
    static const int8_t b[2][4] = {{CIRCLE, RED, SMALL, 1}, {CIRCLE, BLUE, LARGE, 5}};
    s = make_scene(2, b);
    assert_int_equal(matches_text("a circle and a red circle", &s), 1);
    assert_int_equal(matches_text("a small circle and a red circle", &s), 0);
    assert_int_equal(matches_text("a circle at the right and a small circle", &s), 1);
    assert_int_equal(matches_text("a circle at the right and a large circle", &s), 0);

    /* the scene's order does not matter; two objects in one cell never match */
    static const int8_t c[2][4] = {{CIRCLE, BLUE, LARGE, 5}, {CIRCLE, RED, SMALL, 1}};
    s = make_scene(2, c);
    assert_int_equal(matches_text("a circle and a red circle", &s), 1);
    static const int8_t d[2][4] = {{CIRCLE, BLUE, LARGE, 5}, {CIRCLE, RED, SMALL, 5}};
    s = make_scene(2, d);
    assert_int_equal(matches_text("a circle and a circle", &s), 0);
    static const int8_t e[1][4] = {{CIRCLE, 9, SMALL, 5}}; /* a color out of range */
    s = make_scene(1, e);
    assert_int_equal(matches_text("a circle", &s), 0);
    s.n = 0;
    assert_int_equal(matches_text("a circle", &s), 0);
    shapes_prompt bad;
    memset(&bad, 0, sizeof bad);
    s = make_scene(1, e);
    assert_int_equal(shapes_prompt_matches(&bad, &s), 0);
    assert_int_equal(shapes_prompt_matches(NULL, &s), 0);

    /* random prompts against random scenes: the oracle's answer */
    loom_rng rng;
    rng_seed(&rng, 31);
    int yes = 0, no = 0;
    for (int t = 0; t < 20000; t++) {
        shapes_scene sc, other;
        shapes_scene_sample(&rng, &sc);
        /* a prompt from this scene, an attribute changed, or from another scene of the same count */
        shapes_prompt p;
        do shapes_scene_sample(&rng, &other);
        while (other.n != sc.n);
        assert_int_equal(shapes_prompt_from_scene(rng_below(&rng, 4) ? &sc : &other, &rng, 0.5f, &p), 0);
        if (rng_below(&rng, 2)) {
            int i = (int)rng_below(&rng, (uint32_t)p.n);
            switch (rng_below(&rng, 3)) {
            case 0: p.obj[i].shape = (int8_t)rng_below(&rng, SHAPES_N_SHAPES); break;
            case 1: p.obj[i].color = (int8_t)rng_below(&rng, SHAPES_N_COLORS); break;
            default: p.obj[i].size = (int8_t)rng_below(&rng, SHAPES_N_SIZES); break;
            }
        }
        /* shuffle the scene: order does not matter */
        for (int i = sc.n - 1; i > 0; i--) {
            int j = (int)rng_below(&rng, (uint32_t)(i + 1));
            shapes_object tmp = sc.obj[i];
            sc.obj[i] = sc.obj[j];
            sc.obj[j] = tmp;
        }
        int want = oracle_matches(&p, &sc);
        assert_int_equal(shapes_prompt_matches(&p, &sc), want);
        yes += want;
        no += !want;
    }
    print_message("  20000 random judgements agree with the oracle (%d match, %d do not)\n", yes, no);
    assert_true(yes > 5000 && no > 5000);
}

/* ---- the analyzer on renders ------------------------------------------------------------------ */

/* 3 x 3 box blur (each channel; at the border, the mean of the pixels inside). */
static void box_blur(uint8_t *rgb, int32_t W, int32_t H) {
    uint8_t *src = malloc((size_t)W * H * 3);
    assert_non_null(src);
    memcpy(src, rgb, (size_t)W * H * 3);
    for (int32_t y = 0; y < H; y++)
        for (int32_t x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) {
                int sum = 0, n = 0;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++) {
                        int32_t xx = x + dx, yy = y + dy;
                        if (xx < 0 || yy < 0 || xx >= W || yy >= H) continue;
                        sum += src[((size_t)yy * W + xx) * 3 + c];
                        n++;
                    }
                rgb[((size_t)y * W + x) * 3 + c] = (uint8_t)((sum + n / 2) / n);
            }
    free(src);
}

/* Gaussian noise of sigma (in 0..255 units) on every channel, rounded, clamped. */
static void add_noise(uint8_t *rgb, int32_t W, int32_t H, float sigma, loom_rng *rng) {
    for (size_t i = 0; i < (size_t)W * H * 3; i++) {
        float v = (float)rgb[i] + sigma * rng_normal(rng);
        rgb[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lrintf(v));
    }
}

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum { DEGRADE_NONE, DEGRADE_NOISE, DEGRADE_BLUR, DEGRADE_BOTH };
static const char *const k_degrade_names[4] = {"clean", "noise 6", "blur 3x3", "blur 3x3 + noise 6"};

typedef struct analyze_tally {
    int scenes, exact, count, cell, shape, color, size, judged;
    int confusion[SHAPES_N_SHAPES][SHAPES_N_SHAPES]; /* [true][read] */
    double max_center, max_extent, seconds;         /* geometry errors: px, relative */
} analyze_tally;

/* Renders n jittered scenes (splits in turn) at W x H, degrades them,
 * analyzes them and tallies how often the scene is read back exactly. */
static void analyze_run(int32_t W, int32_t H, int n, int degrade, uint64_t seed, analyze_tally *t) {
    loom_rng rng;
    loom_error err;
    shapes_split_rng(&rng, SHAPES_SPLIT_TEST, seed);
    uint8_t *rgb = malloc((size_t)W * H * 3);
    assert_non_null(rgb);
    for (int k = 0; k < n; k++) {
        shapes_scene s, seen;
        shapes_scene_sample_split(&s, (enum shapes_split)(k % SHAPES_N_SPLITS), &rng);
        assert_int_equal(shapes_scene_layout(&s, W, H, &rng, &err), 0);
        assert_int_equal(shapes_render(&s, rgb, &rng, &err), 0);
        if (degrade == DEGRADE_BLUR || degrade == DEGRADE_BOTH) box_blur(rgb, W, H);
        if (degrade == DEGRADE_NOISE || degrade == DEGRADE_BOTH) add_noise(rgb, W, H, 6.0f, &rng);
        double t0 = cpu_seconds();
        int found = shapes_analyze(rgb, W, H, &seen, &err);
        t->seconds += cpu_seconds() - t0;
        if (found < 0) fail_msg("analyze %dx%d: %s", W, H, err.msg);
        assert_int_equal(seen.width, W);
        assert_int_equal(seen.height, H);
        t->scenes++;
        int exact = found == s.n && seen.n == s.n;
        if (!exact) t->count++;
        for (int i = 0; exact && i < s.n; i++) {
            const shapes_object *a = &s.obj[i], *b = &seen.obj[i];
            if (a->cell != b->cell) {
                t->cell++;
                exact = 0;
                break;
            }
            t->confusion[a->shape][b->shape]++;
            t->shape += a->shape != b->shape;
            t->color += a->color != b->color;
            t->size += a->size != b->size;
            exact &= a->shape == b->shape && a->color == b->color && a->size == b->size;
            double dc = hypot(a->cx - b->cx, a->cy - b->cy), de = fabs(b->extent / a->extent - 1.0);
            t->max_center = dc > t->max_center ? dc : t->max_center;
            t->max_extent = de > t->max_extent ? de : t->max_extent;
        }
        t->exact += exact;
        /* the judge agrees: the scene's full prompt, and a prompt with
         * attributes left out, match the analyzed image iff it was read exactly
         * (the full prompt), or at least when it was (a partial one) */
        shapes_prompt full, part;
        assert_int_equal(shapes_prompt_from_scene(&s, NULL, 0.0f, &full), 0);
        assert_int_equal(shapes_prompt_from_scene(&s, &rng, 0.4f, &part), 0);
        int judged = found == seen.n && shapes_prompt_matches(&full, &seen);
        assert_int_equal(judged, exact);
        if (exact) assert_int_equal(shapes_prompt_matches(&part, &seen), 1);
        t->judged += judged;
    }
    free(rgb);
}

static void print_tally(const char *what, const analyze_tally *t) {
    print_message("  %-28s %5d scenes: exact %6.2f%%  (errors: count %d, cell %d, shape %d, color %d, size %d)"
                  "  max center err %.2f px, extent %.1f%%  %.0f us/image\n",
                  what, t->scenes, 100.0 * t->exact / t->scenes, t->count, t->cell, t->shape, t->color, t->size,
                  t->max_center, 100.0 * t->max_extent, 1e6 * t->seconds / t->scenes);
}

static void print_confusion(const analyze_tally *t) {
    print_message("  shape confusion (rows: true, columns: read)   circle square triangle diamond cross\n");
    for (int a = 0; a < SHAPES_N_SHAPES; a++)
        print_message("  %46s %6d %6d %8d %7d %5d\n", shapes_shape_names[a], t->confusion[a][0], t->confusion[a][1],
                      t->confusion[a][2], t->confusion[a][3], t->confusion[a][4]);
}

static void test_analyze_renders(void **state) {
    (void)state;
    /* every canvas size, square and not: 16 x 150 scenes, splits in turn */
    analyze_tally all;
    memset(&all, 0, sizeof all);
    for (int wi = 0; wi < 4; wi++)
        for (int hi = 0; hi < 4; hi++) {
            analyze_tally t;
            memset(&t, 0, sizeof t);
            analyze_run(k_sides[wi], k_sides[hi], 150, DEGRADE_NONE, (uint64_t)(100 + wi * 4 + hi), &t);
            char what[64];
            snprintf(what, sizeof what, "%dx%d", (int)k_sides[wi], (int)k_sides[hi]);
            print_tally(what, &t);
            all.scenes += t.scenes;
            all.exact += t.exact;
            all.count += t.count;
            all.cell += t.cell;
            all.shape += t.shape;
            all.color += t.color;
            all.size += t.size;
            all.seconds += t.seconds;
            all.max_center = t.max_center > all.max_center ? t.max_center : all.max_center;
            all.max_extent = t.max_extent > all.max_extent ? t.max_extent : all.max_extent;
            for (int a = 0; a < SHAPES_N_SHAPES; a++)
                for (int b = 0; b < SHAPES_N_SHAPES; b++) all.confusion[a][b] += t.confusion[a][b];
        }
    print_tally("all sizes", &all);
    print_confusion(&all);
    assert_true(all.exact >= 0.995 * all.scenes);
    assert_true(all.max_center < 1.0);  /* the fitted geometry is the drawn one */
    assert_true(all.max_extent < 0.15);

    /* the generation target, 64 x 64 */
    analyze_tally t;
    memset(&t, 0, sizeof t);
    analyze_run(64, 64, 2000, DEGRADE_NONE, 200, &t);
    print_tally("64x64", &t);
    assert_true(t.exact >= 0.995 * t.scenes);
    /* < 1 ms per image is the aim; the bound here only catches a blow-up on a busy machine */
    assert_true(t.seconds / t.scenes < 0.01);
}

static void test_analyze_degraded(void **state) {
    (void)state;
    for (int d = DEGRADE_NOISE; d <= DEGRADE_BOTH; d++) {
        analyze_tally t;
        memset(&t, 0, sizeof t);
        analyze_run(64, 64, 2000, d, (uint64_t)(300 + d), &t);
        char what[64];
        snprintf(what, sizeof what, "64x64 %s", k_degrade_names[d]);
        print_tally(what, &t);
        if (d == DEGRADE_BOTH) print_confusion(&t);
        assert_true(t.exact >= 0.97 * t.scenes);
    }
}

/* Every (shape, color, size, cell) alone, unjittered, at every square size. */
static void test_analyze_every_object(void **state) {
    (void)state;
    uint8_t *rgb = malloc(96 * 96 * 3);
    assert_non_null(rgb);
    loom_error err;
    int checked = 0;
    for (int wi = 0; wi < 4; wi++)
        for (int shape = 0; shape < SHAPES_N_SHAPES; shape++)
            for (int color = 0; color < SHAPES_N_COLORS; color++)
                for (int size = 0; size < SHAPES_N_SIZES; size++)
                    for (int cell = 0; cell < SHAPES_N_CELLS; cell++) {
                        const int8_t o[1][4] = {{(int8_t)shape, (int8_t)color, (int8_t)size, (int8_t)cell}};
                        shapes_scene s = make_scene(1, o), seen;
                        assert_int_equal(shapes_scene_layout(&s, k_sides[wi], k_sides[wi], NULL, &err), 0);
                        assert_int_equal(shapes_render(&s, rgb, NULL, &err), 0);
                        assert_int_equal(shapes_analyze(rgb, k_sides[wi], k_sides[wi], &seen, &err), 1);
                        assert_int_equal(seen.n, 1);
                        const shapes_object *b = &seen.obj[0];
                        if (b->shape != shape || b->color != color || b->size != size || b->cell != cell)
                            fail_msg("%dx%d: a %s %s %s in cell %d read as a %s %s %s in cell %d", (int)k_sides[wi],
                                     (int)k_sides[wi], shapes_size_names[size], shapes_color_names[color],
                                     shapes_shape_names[shape], cell, shapes_size_names[b->size],
                                     shapes_color_names[b->color], shapes_shape_names[b->shape], b->cell);
                        /* the exact palette comes back within the core's anti-aliasing */
                        for (int c = 0; c < 3; c++) assert_true(abs((int)b->rgb[c] - (int)s.obj[0].rgb[c]) <= 24);
                        checked++;
                    }
    print_message("  %d single objects read exactly\n", checked);
    free(rgb);
}

/* ---- odd images and arguments ------------------------------------------------------------------ */

static void put_pixel(uint8_t *rgb, int32_t W, int32_t x, int32_t y, uint8_t r, uint8_t g, uint8_t b) {
    uint8_t *p = rgb + ((size_t)y * W + x) * 3;
    p[0] = r;
    p[1] = g;
    p[2] = b;
}

static void test_analyze_odd_images(void **state) {
    (void)state;
    enum { W = 64, H = 64 };
    uint8_t rgb[W * H * 3], other[W * H * 3];
    loom_error err;
    shapes_scene seen;

    /* black: nothing, but a laid-out empty scene */
    memset(rgb, 0, sizeof rgb);
    assert_int_equal(shapes_analyze(rgb, W, H, &seen, &err), 0);
    assert_int_equal(seen.n, 0);
    assert_int_equal(seen.width, W);
    assert_int_equal(seen.height, H);

    /* specks and a one-pixel stroke in empty cells are not objects */
    static const int8_t a[2][4] = {{CIRCLE, RED, LARGE, 0}, {TRIANGLE, GREEN, SMALL, 8}};
    shapes_scene s = make_scene(2, a);
    assert_int_equal(shapes_scene_layout(&s, W, H, NULL, &err), 0);
    assert_int_equal(shapes_render(&s, rgb, NULL, &err), 0);
    put_pixel(rgb, W, 30, 5, 255, 255, 255);                                /* cell 1 */
    put_pixel(rgb, W, 31, 5, 255, 255, 255);
    put_pixel(rgb, W, 50, 30, 200, 40, 40);                                 /* cell 5 */
    for (int32_t y = 25; y < 40; y++) put_pixel(rgb, W, 10, y, 235, 215, 40); /* cell 3: a stroke */
    assert_int_equal(shapes_analyze(rgb, W, H, &seen, &err), 2);
    shapes_prompt p = parse_ok("a large red circle at the top left and a small green triangle at the bottom right");
    assert_int_equal(shapes_prompt_matches(&p, &seen), 1);

    /* five objects: all counted, the four largest kept */
    static const int8_t b[4][4] = {{SQUARE, BLUE, LARGE, 0}, {CROSS, WHITE, LARGE, 1}, {DIAMOND, CYAN, LARGE, 2},
                                   {CIRCLE, ORANGE, LARGE, 3}};
    static const int8_t c[1][4] = {{TRIANGLE, MAGENTA, SMALL, 8}};
    s = make_scene(4, b);
    shapes_scene s2 = make_scene(1, c);
    assert_int_equal(shapes_scene_layout(&s, W, H, NULL, &err), 0);
    assert_int_equal(shapes_scene_layout(&s2, W, H, NULL, &err), 0);
    assert_int_equal(shapes_render(&s, rgb, NULL, &err), 0);
    assert_int_equal(shapes_render(&s2, other, NULL, &err), 0);
    for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = rgb[i] > other[i] ? rgb[i] : other[i];
    assert_int_equal(shapes_analyze(rgb, W, H, &seen, &err), 5);
    assert_int_equal(seen.n, 4);
    char cap[SHAPES_CAPTION_MAX], want[SHAPES_CAPTION_MAX];
    shapes_caption(&s, want, sizeof want);
    shapes_caption(&seen, cap, sizeof cap);
    assert_string_equal(cap, want);

    /* two objects in one cell: both reported there; not a valid scene, never a match */
    static const int8_t d[2][4] = {{CIRCLE, RED, SMALL, 0}, {SQUARE, BLUE, SMALL, 1}};
    s = make_scene(2, d);
    assert_int_equal(shapes_scene_layout(&s, 96, 96, NULL, &err), 0);
    s.obj[0].cx = 40; /* both in the top cell, (32..64, 0..32); extents 14.4 */
    s.obj[0].cy = 10;
    s.obj[1].cx = 56;
    s.obj[1].cy = 23;
    uint8_t *big = malloc(96 * 96 * 3);
    assert_non_null(big);
    assert_int_equal(shapes_render(&s, big, NULL, &err), 0);
    assert_int_equal(shapes_analyze(big, 96, 96, &seen, &err), 2);
    assert_int_equal(seen.n, 2);
    assert_int_equal(seen.obj[0].cell, 1);
    assert_int_equal(seen.obj[1].cell, 1);
    assert_int_equal(seen.obj[0].shape, CIRCLE); /* top first */
    assert_int_equal(seen.obj[1].shape, SQUARE);
    assert_int_equal(shapes_scene_validate(&seen, NULL), -1);
    p = parse_ok("a circle and a square");
    assert_int_equal(shapes_prompt_matches(&p, &seen), 0);
    free(big);

    /* garbage (noise, blocks of color, any size): whatever is read is well-formed */
    loom_rng rng;
    rng_seed(&rng, 4);
    uint8_t *junk = malloc(160 * 160 * 3);
    assert_non_null(junk);
    for (int t = 0; t < 300; t++) {
        int32_t w = 16 + (int32_t)rng_below(&rng, 145), h = 16 + (int32_t)rng_below(&rng, 145);
        uint32_t density = rng_below(&rng, 256);
        for (size_t i = 0; i < (size_t)w * h * 3; i++)
            junk[i] = rng_below(&rng, 256) < density ? (uint8_t)rng_u64(&rng) : 0;
        for (int r = (int)rng_below(&rng, 12); r > 0; r--) { /* rectangles */
            int32_t x0 = (int32_t)rng_below(&rng, (uint32_t)w), y0 = (int32_t)rng_below(&rng, (uint32_t)h);
            int32_t x1 = x0 + (int32_t)rng_below(&rng, (uint32_t)(w - x0));
            int32_t y1 = y0 + (int32_t)rng_below(&rng, (uint32_t)(h - y0));
            uint8_t col[3] = {(uint8_t)rng_u64(&rng), (uint8_t)rng_u64(&rng), (uint8_t)rng_u64(&rng)};
            for (int32_t y = y0; y <= y1; y++)
                for (int32_t x = x0; x <= x1; x++) put_pixel(junk, w, x, y, col[0], col[1], col[2]);
        }
        int found = shapes_analyze(junk, w, h, &seen, &err);
        assert_true(found >= seen.n && seen.n >= 0 && seen.n <= SHAPES_MAX_OBJECTS);
        assert_true(found > 0 || seen.n == 0);
        for (int i = 0; i < seen.n; i++) {
            const shapes_object *o = &seen.obj[i];
            assert_true(o->shape >= 0 && o->shape < SHAPES_N_SHAPES && o->color >= 0 && o->color < SHAPES_N_COLORS);
            assert_true(o->size >= 0 && o->size < SHAPES_N_SIZES && o->cell >= 0 && o->cell < SHAPES_N_CELLS);
            assert_true(i == 0 || o->cell >= seen.obj[i - 1].cell);
            assert_true(isfinite(o->cx) && isfinite(o->cy) && isfinite(o->extent) && o->extent > 0);
        }
    }
    free(junk);

    /* the extreme canvases: accepted (a large object on a 16 x 4096 strip is a few pixels wide) */
    uint8_t *strip = calloc((size_t)16 * 4096 * 3, 1);
    assert_non_null(strip);
    assert_int_equal(shapes_analyze(strip, 16, 4096, &seen, &err), 0);
    assert_int_equal(shapes_analyze(strip, 4096, 16, &seen, &err), 0);
    static const int8_t e[1][4] = {{SQUARE, WHITE, LARGE, 4}};
    s = make_scene(1, e);
    assert_int_equal(shapes_scene_layout(&s, 4096, 16, NULL, &err), 0);
    assert_int_equal(shapes_render(&s, strip, NULL, &err), 0);
    assert_int_equal(shapes_analyze(strip, 4096, 16, &seen, &err), 1);
    assert_int_equal(seen.obj[0].cell, 4);
    assert_int_equal(seen.obj[0].color, WHITE);
    free(strip);
}

static void test_analyze_errors(void **state) {
    (void)state;
    uint8_t rgb[64 * 64 * 3] = {0};
    shapes_scene seen;
    loom_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(shapes_analyze(NULL, 64, 64, &seen, &err), -1);
    assert_non_null(strstr(err.msg, "NULL"));
    assert_int_equal(shapes_analyze(rgb, 64, 64, NULL, &err), -1);
    memset(&err, 0, sizeof err);
    assert_int_equal(shapes_analyze(rgb, 15, 64, &seen, &err), -1);
    assert_non_null(strstr(err.msg, "15x64"));
    assert_int_equal(shapes_analyze(rgb, 64, 4097, &seen, &err), -1);
    assert_int_equal(shapes_analyze(rgb, -64, 64, &seen, &err), -1);
    assert_int_equal(shapes_analyze(rgb, 64, 64, &seen, NULL), 0); /* err may be NULL */
    assert_int_equal(shapes_analyze(NULL, 64, 64, &seen, NULL), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_prompt_is_caption), cmocka_unit_test(test_prompt_format),
        cmocka_unit_test(test_prompt_drop),            cmocka_unit_test(test_prompt_round_trip),
        cmocka_unit_test(test_prompt_parse_strict),    cmocka_unit_test(test_prompt_matches),
        cmocka_unit_test(test_analyze_renders),        cmocka_unit_test(test_analyze_degraded),
        cmocka_unit_test(test_analyze_every_object),   cmocka_unit_test(test_analyze_odd_images),
        cmocka_unit_test(test_analyze_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
