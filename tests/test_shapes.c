/* test_shapes.c: Shapes World scenes, images and strings (src/data/shapes.h).
 *
 *   stream         shapes_scene_sample's stream is pinned (the shipped corpus
 *                  and `loom data shapes-text`): first captions for seeds 1, 7.
 *   determinism    the same (split, seed) gives the same scenes, geometry,
 *                  pixels, captions and questions; another seed differs.
 *   captions       exact strings for 1, 2, 3, 4 objects (incl. "in the
 *                  center"); random captions split back into n objects.
 *   answers        hand-built scenes with known answers for every question
 *                  type, incl. "nothing", "zero", "four", "crosses", "in the
 *                  center"; unaskable questions (color of a shape that is
 *                  there twice, where/size of a repeated combination) refused.
 *   sampled qs     over many scenes and every type: prompt and answer equal an
 *                  independent oracle's; unaskable types are refused; the mix
 *                  is balanced (yes ~1/2, nothing ~1/3, answers spread).
 *   splits         5000 train / test scenes: no held-out combination, in the
 *                  scenes or the questions; 5000 combos scenes: always one;
 *                  streams of distinct (split, seed) are distinct.
 *   rendering      every canvas size (48..96 squared and not): the pixel at
 *                  each object's center is its color (palette +-8); pixels
 *                  outside objects, and all of every empty cell, are black;
 *                  objects stay inside their cells; the colored area matches
 *                  the shape's area; point-in-shape tests for each shape.
 *   extents        small/large extents within their bands, with a margin.
 *   errors         invalid scenes, canvas sizes, unlaid-out scenes: -1, reason.
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

#include "core/error.h"
#include "core/rng.h"
#include "data/shapes.h"

enum { CIRCLE, SQUARE, TRIANGLE, DIAMOND, CROSS };
enum { RED, GREEN, BLUE, YELLOW, MAGENTA, CYAN, WHITE, ORANGE };
enum { SMALL, LARGE };
static const int32_t k_sides[4] = {48, 64, 80, 96};

/* A scene from {shape, color, size, cell} quadruples (cells increasing). */
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

/* ---- stream ------------------------------------------------------------------ */

static void test_stream_pinned(void **state) {
    (void)state;
    static const char *const seed1[3] = {
        "a small green diamond at the top left, a large white square in the center and a large "
        "orange cross at the right",
        "a small red triangle at the top right, a large yellow triangle at the right and a small "
        "yellow square at the bottom right",
        "a large red cross at the top left and a large yellow triangle at the bottom"};
    static const char *const seed7 =
        "a small white cross at the top right, a small yellow circle at the bottom and a large "
        "cyan triangle at the bottom right";
    char cap[SHAPES_CAPTION_MAX];
    loom_rng rng;
    shapes_scene s;
    rng_seed(&rng, 1);
    for (int i = 0; i < 3; i++) {
        shapes_scene_sample(&rng, &s);
        assert_true(shapes_caption(&s, cap, sizeof cap) > 0);
        assert_string_equal(cap, seed1[i]);
    }
    rng_seed(&rng, 7);
    shapes_scene_sample(&rng, &s);
    assert_true(shapes_caption(&s, cap, sizeof cap) > 0);
    assert_string_equal(cap, seed7);
}

/* ---- determinism --------------------------------------------------------------- */

typedef struct one_sample {
    shapes_scene s;
    uint8_t rgb[96 * 96 * 3];
    char caption[SHAPES_CAPTION_MAX];
    shapes_question q[4];
} one_sample;

static void sample_run(enum shapes_split split, uint64_t seed, one_sample *out, int n) {
    loom_rng rng;
    loom_error err;
    shapes_split_rng(&rng, split, seed);
    for (int i = 0; i < n; i++) {
        one_sample *o = &out[i];
        memset(o, 0, sizeof *o);
        int32_t W = k_sides[rng_below(&rng, 4)], H = k_sides[rng_below(&rng, 4)];
        shapes_scene_sample_split(&o->s, split, &rng);
        assert_int_equal(shapes_scene_layout(&o->s, W, H, &rng, &err), 0);
        assert_int_equal(shapes_render(&o->s, o->rgb, &rng, &err), 0);
        assert_true(shapes_caption(&o->s, o->caption, sizeof o->caption) > 0);
        for (int k = 0; k < 4; k++) assert_int_equal(shapes_question_sample_mix(&o->s, &rng, &o->q[k]), 0);
    }
}

static void test_determinism(void **state) {
    (void)state;
    enum { N = 20 };
    one_sample *a = malloc(sizeof(one_sample) * N), *b = malloc(sizeof(one_sample) * N),
               *c = malloc(sizeof(one_sample) * N);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    for (int split = 0; split < SHAPES_N_SPLITS; split++) {
        sample_run((enum shapes_split)split, 42, a, N);
        sample_run((enum shapes_split)split, 42, b, N);
        sample_run((enum shapes_split)split, 43, c, N);
        int differs = 0;
        for (int i = 0; i < N; i++) {
            assert_memory_equal(&a[i].s, &b[i].s, sizeof a[i].s); /* memset first: no padding noise */
            assert_memory_equal(a[i].rgb, b[i].rgb, sizeof a[i].rgb);
            assert_string_equal(a[i].caption, b[i].caption);
            for (int k = 0; k < 4; k++) {
                assert_string_equal(a[i].q[k].prompt, b[i].q[k].prompt);
                assert_string_equal(a[i].q[k].answer, b[i].q[k].answer);
            }
            differs += strcmp(a[i].caption, c[i].caption) != 0 ||
                       memcmp(a[i].rgb, c[i].rgb, sizeof a[i].rgb) != 0;
        }
        assert_true(differs > N / 2);
    }
    free(a);
    free(b);
    free(c);
}

/* ---- captions ------------------------------------------------------------------ */

static void test_caption_grammar(void **state) {
    (void)state;
    static const int8_t o[4][4] = {{CIRCLE, RED, LARGE, 0},
                                   {SQUARE, BLUE, SMALL, 4},
                                   {TRIANGLE, ORANGE, SMALL, 5},
                                   {CROSS, WHITE, SMALL, 8}};
    static const char *const want[4] = {
        "a large red circle at the top left",
        "a large red circle at the top left and a small blue square in the center",
        "a large red circle at the top left, a small blue square in the center and a small orange "
        "triangle at the right",
        "a large red circle at the top left, a small blue square in the center, a small orange "
        "triangle at the right and a small white cross at the bottom right"};
    char cap[SHAPES_CAPTION_MAX];
    for (int n = 1; n <= 4; n++) {
        shapes_scene s = make_scene(n, o);
        assert_int_equal(shapes_caption(&s, cap, sizeof cap), (int)strlen(want[n - 1]));
        assert_string_equal(cap, want[n - 1]);
    }
    /* the center object alone, and the design's example */
    static const int8_t c1[1][4] = {{DIAMOND, GREEN, SMALL, 4}};
    shapes_scene s = make_scene(1, c1);
    shapes_caption(&s, cap, sizeof cap);
    assert_string_equal(cap, "a small green diamond in the center");
    static const int8_t ex[3][4] = {{CIRCLE, RED, LARGE, 0}, {SQUARE, BLUE, SMALL, 4}, {CROSS, WHITE, SMALL, 8}};
    s = make_scene(3, ex);
    shapes_caption(&s, cap, sizeof cap);
    assert_string_equal(cap, "a large red circle at the top left, a small blue square in the center "
                             "and a small white cross at the bottom right");
    /* too small a buffer: -1 */
    assert_int_equal(shapes_caption(&s, cap, 20), -1);

    /* random scenes: "X", "X and Y", "X, Y and Z", "W, X, Y and Z" */
    loom_rng rng;
    rng_seed(&rng, 3);
    int seen[5] = {0};
    for (int t = 0; t < 2000; t++) {
        shapes_scene_sample(&rng, &s);
        seen[s.n]++;
        int len = shapes_caption(&s, cap, sizeof cap);
        assert_true(len > 0 && len < SHAPES_CAPTION_MAX);
        int commas = 0, ands = 0, as = 0;
        for (const char *p = cap; (p = strstr(p, ", ")); p++) commas++;
        for (const char *p = cap; (p = strstr(p, " and ")); p++) ands++;
        for (const char *p = cap; (p = strstr(p, "a ")); p++) as += p == cap || p[-1] == ' ';
        assert_int_equal(ands, s.n > 1);
        assert_int_equal(commas, s.n > 2 ? s.n - 2 : 0);
        assert_int_equal(as, s.n);
        assert_true(cap[len - 1] != '.');
    }
    for (int n = 1; n <= 4; n++) assert_true(seen[n] > 300);
}

/* ---- answers to hand-built scenes ------------------------------------------------ */

static void expect_q(const shapes_scene *s, shapes_qtype type, int shape, int color, int cell,
                     const char *prompt, const char *answer) {
    shapes_question q;
    memset(&q, 0, sizeof q);
    q.type = type;
    q.shape = (int8_t)shape;
    q.color = (int8_t)color;
    q.cell = (int8_t)cell;
    int rc = shapes_question_make(s, &q);
    if (!prompt) {
        if (rc != -1) fail_msg("expected unaskable, got \"%s\" -> \"%s\"", q.prompt, q.answer);
        return;
    }
    if (rc != 0) fail_msg("expected \"%s\" -> \"%s\", got unaskable", prompt, answer);
    assert_string_equal(q.prompt, prompt);
    assert_string_equal(q.answer, answer);
}

static void test_answers_hand_built(void **state) {
    (void)state;
    /* a large red circle at the top left, a small blue square in the center
     * and a small white cross at the bottom right */
    static const int8_t a[3][4] = {{CIRCLE, RED, LARGE, 0}, {SQUARE, BLUE, SMALL, 4}, {CROSS, WHITE, SMALL, 8}};
    shapes_scene s = make_scene(3, a);
    expect_q(&s, SHAPES_Q_COLOR, CIRCLE, -1, -1, "what color is the circle?", "red");
    expect_q(&s, SHAPES_Q_COLOR, CROSS, -1, -1, "what color is the cross?", "white");
    expect_q(&s, SHAPES_Q_COLOR, TRIANGLE, -1, -1, NULL, NULL); /* no triangle */
    expect_q(&s, SHAPES_Q_SHAPE_AT, -1, -1, 0, "what shape is at the top left?", "circle");
    expect_q(&s, SHAPES_Q_SHAPE_AT, -1, -1, 4, "what shape is in the center?", "square");
    expect_q(&s, SHAPES_Q_SHAPE_AT, -1, -1, 8, "what shape is at the bottom right?", "cross");
    expect_q(&s, SHAPES_Q_SHAPE_AT, -1, -1, 1, "what shape is at the top?", "nothing");
    expect_q(&s, SHAPES_Q_SHAPE_AT, -1, -1, 6, "what shape is at the bottom left?", "nothing");
    expect_q(&s, SHAPES_Q_COUNT_ALL, -1, -1, -1, "how many objects are there?", "three");
    expect_q(&s, SHAPES_Q_COUNT_SHAPE, CROSS, -1, -1, "how many crosses are there?", "one");
    expect_q(&s, SHAPES_Q_COUNT_SHAPE, TRIANGLE, -1, -1, "how many triangles are there?", "zero");
    expect_q(&s, SHAPES_Q_COUNT_SHAPE, DIAMOND, -1, -1, "how many diamonds are there?", "zero");
    expect_q(&s, SHAPES_Q_COUNT_COLOR, -1, -1, -1, NULL, NULL); /* no color given */
    expect_q(&s, SHAPES_Q_COUNT_COLOR, -1, RED, -1, "how many red objects are there?", "one");
    expect_q(&s, SHAPES_Q_COUNT_COLOR, -1, GREEN, -1, "how many green objects are there?", "zero");
    expect_q(&s, SHAPES_Q_EXISTS, CIRCLE, RED, -1, "is there a red circle?", "yes");
    expect_q(&s, SHAPES_Q_EXISTS, CIRCLE, BLUE, -1, "is there a blue circle?", "no");
    expect_q(&s, SHAPES_Q_EXISTS, CROSS, WHITE, -1, "is there a white cross?", "yes");
    expect_q(&s, SHAPES_Q_WHERE, CROSS, WHITE, -1, "where is the white cross?", "bottom right");
    expect_q(&s, SHAPES_Q_WHERE, SQUARE, BLUE, -1, "where is the blue square?", "center");
    expect_q(&s, SHAPES_Q_WHERE, CIRCLE, RED, -1, "where is the red circle?", "top left");
    expect_q(&s, SHAPES_Q_WHERE, CIRCLE, BLUE, -1, NULL, NULL); /* not there */
    expect_q(&s, SHAPES_Q_SIZE, SQUARE, BLUE, -1, "what size is the blue square?", "small");
    expect_q(&s, SHAPES_Q_SIZE, CIRCLE, RED, -1, "what size is the red circle?", "large");
    expect_q(&s, SHAPES_Q_SIZE, SQUARE, RED, -1, NULL, NULL);
    expect_q(&s, SHAPES_Q_SHAPE_AT, -1, -1, 9, NULL, NULL); /* out of range */
    expect_q(&s, SHAPES_Q_COLOR, 5, -1, -1, NULL, NULL);

    /* two red circles, a green triangle, a red square */
    static const int8_t b[4][4] = {{CIRCLE, RED, SMALL, 1}, {TRIANGLE, GREEN, LARGE, 3},
                                   {CIRCLE, RED, LARGE, 5}, {SQUARE, RED, SMALL, 7}};
    s = make_scene(4, b);
    expect_q(&s, SHAPES_Q_COLOR, CIRCLE, -1, -1, NULL, NULL); /* two circles */
    expect_q(&s, SHAPES_Q_COLOR, TRIANGLE, -1, -1, "what color is the triangle?", "green");
    expect_q(&s, SHAPES_Q_COLOR, SQUARE, -1, -1, "what color is the square?", "red");
    expect_q(&s, SHAPES_Q_WHERE, CIRCLE, RED, -1, NULL, NULL);  /* two red circles */
    expect_q(&s, SHAPES_Q_SIZE, CIRCLE, RED, -1, NULL, NULL);
    expect_q(&s, SHAPES_Q_WHERE, SQUARE, RED, -1, "where is the red square?", "bottom");
    expect_q(&s, SHAPES_Q_WHERE, TRIANGLE, GREEN, -1, "where is the green triangle?", "left");
    expect_q(&s, SHAPES_Q_SIZE, TRIANGLE, GREEN, -1, "what size is the green triangle?", "large");
    expect_q(&s, SHAPES_Q_COUNT_ALL, -1, -1, -1, "how many objects are there?", "four");
    expect_q(&s, SHAPES_Q_COUNT_SHAPE, CIRCLE, -1, -1, "how many circles are there?", "two");
    expect_q(&s, SHAPES_Q_COUNT_SHAPE, SQUARE, -1, -1, "how many squares are there?", "one");
    expect_q(&s, SHAPES_Q_COUNT_COLOR, -1, RED, -1, "how many red objects are there?", "three");
    expect_q(&s, SHAPES_Q_EXISTS, CIRCLE, RED, -1, "is there a red circle?", "yes");
    expect_q(&s, SHAPES_Q_EXISTS, TRIANGLE, RED, -1, "is there a red triangle?", "no");
    expect_q(&s, SHAPES_Q_SHAPE_AT, -1, -1, 4, "what shape is in the center?", "nothing");
    expect_q(&s, SHAPES_Q_SHAPE_AT, -1, -1, 5, "what shape is at the right?", "circle");
    assert_int_equal(shapes_question_askable(&s, SHAPES_Q_COLOR), 1);
    assert_int_equal(shapes_question_askable(&s, SHAPES_Q_WHERE), 1);

    /* four yellow crosses: every shape and combination repeated */
    static const int8_t c[4][4] = {{CROSS, YELLOW, SMALL, 0}, {CROSS, YELLOW, LARGE, 2},
                                   {CROSS, YELLOW, SMALL, 6}, {CROSS, YELLOW, LARGE, 8}};
    s = make_scene(4, c);
    expect_q(&s, SHAPES_Q_COUNT_SHAPE, CROSS, -1, -1, "how many crosses are there?", "four");
    expect_q(&s, SHAPES_Q_COUNT_COLOR, -1, YELLOW, -1, "how many yellow objects are there?", "four");
    expect_q(&s, SHAPES_Q_COUNT_COLOR, -1, ORANGE, -1, "how many orange objects are there?", "zero");
    expect_q(&s, SHAPES_Q_EXISTS, CROSS, ORANGE, -1, "is there a orange cross?", "no");
    expect_q(&s, SHAPES_Q_COLOR, CROSS, -1, -1, NULL, NULL);
    for (int t = 0; t < SHAPES_N_QTYPES; t++) {
        int want = t != SHAPES_Q_COLOR && t != SHAPES_Q_WHERE && t != SHAPES_Q_SIZE;
        assert_int_equal(shapes_question_askable(&s, (shapes_qtype)t), want);
        loom_rng rng;
        rng_seed(&rng, (uint64_t)t);
        shapes_question q;
        memset(&q, 0x5a, sizeof q);
        for (int k = 0; k < 50; k++) assert_int_equal(shapes_question_sample(&s, (shapes_qtype)t, &rng, &q) == 0, want);
        if (!want) assert_int_equal(q.prompt[0], 0x5a); /* untouched */
    }

    /* two circles and two squares: no color question */
    static const int8_t d[4][4] = {{CIRCLE, RED, SMALL, 0}, {SQUARE, RED, SMALL, 1},
                                   {CIRCLE, BLUE, SMALL, 2}, {SQUARE, BLUE, SMALL, 3}};
    s = make_scene(4, d);
    assert_int_equal(shapes_question_askable(&s, SHAPES_Q_COLOR), 0);
    assert_int_equal(shapes_question_askable(&s, SHAPES_Q_WHERE), 1);

    /* names */
    static const char *const qn[SHAPES_N_QTYPES] = {"color", "shape_at", "count_all", "count_shape",
                                                    "count_color", "exists", "where", "size"};
    for (int t = 0; t < SHAPES_N_QTYPES; t++) {
        assert_string_equal(shapes_qtype_names[t], qn[t]);
        assert_int_equal(shapes_qtype_from_name(qn[t]), t);
    }
    assert_int_equal(shapes_qtype_from_name("colour"), -1);
}

/* ---- sampled questions against an independent oracle ----------------------------- */

static const char *const k_plural[5] = {"circles", "squares", "triangles", "diamonds", "crosses"};
static const char *const k_numbers[5] = {"zero", "one", "two", "three", "four"};

/* Recomputes prompt and answer from the scene; returns 0 if the question
 * should not have been asked. */
static int oracle(const shapes_scene *s, const shapes_question *q, char *prompt, char *answer) {
    const char *sh = q->shape >= 0 ? shapes_shape_names[q->shape] : "?";
    const char *co = q->color >= 0 ? shapes_color_names[q->color] : "?";
    int n_shape = 0, n_color = 0, n_combo = 0, at = -1, combo = -1, with_shape = -1;
    for (int i = 0; i < s->n; i++) {
        const shapes_object *o = &s->obj[i];
        if (o->shape == q->shape) n_shape++, with_shape = i;
        if (o->color == q->color) n_color++;
        if (o->shape == q->shape && o->color == q->color) n_combo++, combo = i;
        if (o->cell == q->cell) at = i;
    }
    switch (q->type) {
    case SHAPES_Q_COLOR:
        if (n_shape != 1) return 0;
        sprintf(prompt, "what color is the %s?", sh);
        strcpy(answer, shapes_color_names[s->obj[with_shape].color]);
        return 1;
    case SHAPES_Q_SHAPE_AT:
        if (q->cell == 4) strcpy(prompt, "what shape is in the center?");
        else sprintf(prompt, "what shape is at the %s?", shapes_cell_names[q->cell]);
        strcpy(answer, at < 0 ? "nothing" : shapes_shape_names[s->obj[at].shape]);
        return 1;
    case SHAPES_Q_COUNT_ALL:
        strcpy(prompt, "how many objects are there?");
        strcpy(answer, k_numbers[s->n]);
        return 1;
    case SHAPES_Q_COUNT_SHAPE:
        sprintf(prompt, "how many %s are there?", k_plural[q->shape]);
        strcpy(answer, k_numbers[n_shape]);
        return 1;
    case SHAPES_Q_COUNT_COLOR:
        sprintf(prompt, "how many %s objects are there?", co);
        strcpy(answer, k_numbers[n_color]);
        return 1;
    case SHAPES_Q_EXISTS:
        sprintf(prompt, "is there a %s %s?", co, sh);
        strcpy(answer, n_combo ? "yes" : "no");
        return 1;
    case SHAPES_Q_WHERE:
        if (n_combo != 1) return 0;
        sprintf(prompt, "where is the %s %s?", co, sh);
        strcpy(answer, shapes_cell_names[s->obj[combo].cell]);
        return 1;
    case SHAPES_Q_SIZE:
        if (n_combo != 1) return 0;
        sprintf(prompt, "what size is the %s %s?", co, sh);
        strcpy(answer, s->obj[combo].size ? "large" : "small");
        return 1;
    default: return 0;
    }
}

static void test_sampled_questions(void **state) {
    (void)state;
    loom_rng rng;
    shapes_split_rng(&rng, SHAPES_SPLIT_TRAIN, 9);
    char prompt[128], answer[64];
    int refused[SHAPES_N_QTYPES] = {0};
    for (int t = 0; t < 3000; t++) {
        shapes_scene s;
        shapes_scene_sample_split(&s, (enum shapes_split)(t % 3), &rng);
        for (int type = 0; type < SHAPES_N_QTYPES; type++) {
            shapes_question q;
            if (shapes_question_sample(&s, (shapes_qtype)type, &rng, &q)) {
                refused[type]++;
                /* refused only when no parameter would do */
                shapes_question p;
                memset(&p, 0, sizeof p);
                p.type = (shapes_qtype)type;
                for (p.shape = 0; p.shape < SHAPES_N_SHAPES; p.shape++)
                    for (p.color = 0; p.color < SHAPES_N_COLORS; p.color++)
                        for (p.cell = 0; p.cell < SHAPES_N_CELLS; p.cell++)
                            assert_int_equal(shapes_question_make(&s, &p), -1);
                assert_int_equal(shapes_question_askable(&s, (shapes_qtype)type), 0);
                continue;
            }
            assert_int_equal(q.type, type);
            if (!oracle(&s, &q, prompt, answer))
                fail_msg("asked the unaskable: \"%s\" -> \"%s\"", q.prompt, q.answer);
            assert_string_equal(q.prompt, prompt);
            assert_string_equal(q.answer, answer);
        }
    }
    /* only color, where and size can be refused, and they sometimes are */
    for (int type = 0; type < SHAPES_N_QTYPES; type++)
        if (type != SHAPES_Q_COLOR && type != SHAPES_Q_WHERE && type != SHAPES_Q_SIZE)
            assert_int_equal(refused[type], 0);
    assert_true(refused[SHAPES_Q_COLOR] > 0);
    assert_true(refused[SHAPES_Q_WHERE] > 0);
}

static void test_question_balance(void **state) {
    (void)state;
    enum { N = 40000 };
    loom_rng rng;
    shapes_split_rng(&rng, SHAPES_SPLIT_TRAIN, 11);
    int by_type[SHAPES_N_QTYPES] = {0}, yes = 0, nothing = 0;
    int count_answers[3][5] = {{0}}; /* count_all, count_shape, count_color x zero..four */
    char prompt[128], answer[64];
    for (int t = 0; t < N; t++) {
        shapes_scene s;
        shapes_question q;
        shapes_scene_sample_split(&s, SHAPES_SPLIT_TRAIN, &rng);
        assert_int_equal(shapes_question_sample_mix(&s, &rng, &q), 0);
        assert_true(oracle(&s, &q, prompt, answer));
        assert_string_equal(q.answer, answer);
        by_type[q.type]++;
        if (q.type == SHAPES_Q_EXISTS) yes += !strcmp(q.answer, "yes");
        if (q.type == SHAPES_Q_SHAPE_AT) nothing += !strcmp(q.answer, "nothing");
        if (q.type >= SHAPES_Q_COUNT_ALL && q.type <= SHAPES_Q_COUNT_COLOR)
            for (int k = 0; k < 5; k++) count_answers[q.type - SHAPES_Q_COUNT_ALL][k] += !strcmp(q.answer, k_numbers[k]);
    }
    for (int t = 0; t < SHAPES_N_QTYPES; t++) {
        print_message("  %-12s %5.1f%%\n", shapes_qtype_names[t], 100.0 * by_type[t] / N);
        assert_true(by_type[t] > N / 16); /* every type well represented (uniform: 1/8) */
    }
    double fy = (double)yes / by_type[SHAPES_Q_EXISTS], fn = (double)nothing / by_type[SHAPES_Q_SHAPE_AT];
    print_message("  exists yes %.3f, shape_at nothing %.3f\n", fy, fn);
    assert_true(fy > 0.45 && fy < 0.55);
    assert_true(fn > 0.28 && fn < 0.39);
    assert_int_equal(count_answers[0][0], 0); /* a scene has 1..4 objects */
    for (int c = 0; c < 3; c++) {
        int total = 0;
        for (int k = 0; k < 5; k++) total += count_answers[c][k];
        print_message("  %-12s zero..four %d %d %d %d %d\n", shapes_qtype_names[SHAPES_Q_COUNT_ALL + c],
                      count_answers[c][0], count_answers[c][1], count_answers[c][2], count_answers[c][3],
                      count_answers[c][4]);
        /* no answer dominates; one and two are common everywhere */
        for (int k = 0; k < 5; k++) assert_true(count_answers[c][k] < total * 6 / 10);
        assert_true(count_answers[c][1] > total / 5);
        assert_true(count_answers[c][2] > total / 10);
        if (c > 0) assert_true(count_answers[c][0] > total / 10 && count_answers[c][3] > 0);
    }
}

/* ---- splits ----------------------------------------------------------------------- */

static void test_splits(void **state) {
    (void)state;
    static const char *const heldout_text[5] = {"orange circle", "cyan square", "magenta triangle",
                                                "white diamond", "yellow cross"};
    for (int h = 0; h < SHAPES_N_HELDOUT; h++) {
        char t[64];
        snprintf(t, sizeof t, "%s %s", shapes_color_names[shapes_heldout[h][1]],
                 shapes_shape_names[shapes_heldout[h][0]]);
        assert_string_equal(t, heldout_text[h]);
        assert_int_equal(shapes_heldout[h][0], h); /* one per shape */
    }
    assert_int_equal(shapes_combo_is_heldout(CIRCLE, ORANGE), 1);
    assert_int_equal(shapes_combo_is_heldout(CIRCLE, RED), 0);

    for (int split = 0; split < SHAPES_N_SPLITS; split++) {
        loom_rng rng;
        shapes_split_rng(&rng, (enum shapes_split)split, 5);
        int combos[SHAPES_N_SHAPES][SHAPES_N_COLORS] = {{0}}, n_count[5] = {0};
        for (int t = 0; t < 5000; t++) {
            shapes_scene s;
            shapes_scene_sample_split(&s, (enum shapes_split)split, &rng);
            assert_int_equal(shapes_scene_validate(&s, NULL), 0);
            n_count[s.n]++;
            for (int i = 0; i < s.n; i++) combos[s.obj[i].shape][s.obj[i].color]++;
            int has = shapes_scene_has_heldout(&s);
            assert_int_equal(has, split == SHAPES_SPLIT_COMBOS);
            if (split == SHAPES_SPLIT_COMBOS) continue;
            /* no held-out combination in any string about a train/test scene */
            char text[SHAPES_CAPTION_MAX];
            shapes_caption(&s, text, sizeof text);
            for (int h = 0; h < 5; h++) assert_null(strstr(text, heldout_text[h]));
            for (int type = 0; type < SHAPES_N_QTYPES; type++) {
                shapes_question q;
                if (shapes_question_sample(&s, (shapes_qtype)type, &rng, &q)) continue;
                for (int h = 0; h < 5; h++) assert_null(strstr(q.prompt, heldout_text[h]));
            }
        }
        /* object counts stay uniform; every allowed combination occurs */
        for (int n = 1; n <= 4; n++) assert_true(n_count[n] > 1000 && n_count[n] < 1500);
        for (int sh = 0; sh < SHAPES_N_SHAPES; sh++)
            for (int c = 0; c < SHAPES_N_COLORS; c++) {
                if (shapes_combo_is_heldout(sh, c)) assert_true((combos[sh][c] > 100) == (split == SHAPES_SPLIT_COMBOS));
                else assert_true(combos[sh][c] > 100);
            }
    }

    /* streams: distinct (split, seed) give distinct states; train never
     * shares a stream with test or combos, even for huge seeds */
    enum { NS = 300 };
    loom_rng *st = malloc(sizeof(loom_rng) * NS * SHAPES_N_SPLITS);
    assert_non_null(st);
    for (int split = 0; split < SHAPES_N_SPLITS; split++)
        for (int seed = 0; seed < NS; seed++) shapes_split_rng(&st[split * NS + seed], (enum shapes_split)split, (uint64_t)seed);
    for (int i = 0; i < NS * SHAPES_N_SPLITS; i++)
        for (int j = i + 1; j < NS * SHAPES_N_SPLITS; j++) assert_memory_not_equal(&st[i], &st[j], sizeof(loom_rng));
    free(st);
    loom_rng a, b;
    shapes_split_rng(&a, SHAPES_SPLIT_TRAIN, UINT64_MAX);
    shapes_split_rng(&b, SHAPES_SPLIT_TEST, UINT64_MAX >> 2);
    assert_memory_not_equal(&a, &b, sizeof a);
    /* and the train stream is not plain rng_seed(seed) (shapes-text's) */
    shapes_split_rng(&a, SHAPES_SPLIT_TRAIN, 1);
    rng_seed(&b, 1);
    assert_memory_not_equal(&a, &b, sizeof a);
}

/* ---- rendering ---------------------------------------------------------------------- */

static void test_shape_geometry(void **state) {
    (void)state;
    shapes_object o;
    memset(&o, 0, sizeof o);
    o.cx = 0;
    o.cy = 0;
    o.extent = 10; /* r = 5 */
    o.shape = CIRCLE;
    assert_true(shapes_object_contains(&o, 4.9f, 0) && shapes_object_contains(&o, 3.5f, 3.5f));
    assert_false(shapes_object_contains(&o, 3.6f, 3.6f) || shapes_object_contains(&o, 5.1f, 0));
    o.shape = SQUARE;
    assert_true(shapes_object_contains(&o, 4.9f, 4.9f) && shapes_object_contains(&o, -4.9f, -4.9f));
    assert_false(shapes_object_contains(&o, 5.1f, 0) || shapes_object_contains(&o, 0, -5.1f));
    o.shape = TRIANGLE; /* apex up (y down), base at the bottom */
    assert_true(shapes_object_contains(&o, 0, -4.8f));                                   /* apex */
    assert_true(shapes_object_contains(&o, -4.8f, 4.9f) && shapes_object_contains(&o, 4.8f, 4.9f)); /* base */
    assert_false(shapes_object_contains(&o, -4.8f, -4.8f) || shapes_object_contains(&o, 4.8f, -4.8f));
    assert_false(shapes_object_contains(&o, 0, 5.1f) || shapes_object_contains(&o, 3, 0));
    assert_true(shapes_object_contains(&o, 2.4f, 0));
    o.shape = DIAMOND; /* a square on a corner */
    assert_true(shapes_object_contains(&o, 4.9f, 0) && shapes_object_contains(&o, 0, -4.9f));
    assert_true(shapes_object_contains(&o, 2.4f, 2.4f));
    assert_false(shapes_object_contains(&o, 2.6f, 2.6f) || shapes_object_contains(&o, 4.5f, 4.5f));
    o.shape = CROSS; /* arms extent/3 = 3.33 wide */
    assert_true(shapes_object_contains(&o, 4.9f, 1.6f) && shapes_object_contains(&o, -1.6f, -4.9f));
    assert_false(shapes_object_contains(&o, 4.9f, 1.8f) || shapes_object_contains(&o, 1.8f, 4.9f));
    assert_false(shapes_object_contains(&o, 3, 3) || shapes_object_contains(&o, 5.1f, 0));
}

static double shape_area(int shape, double e) {
    switch (shape) {
    case CIRCLE: return 3.14159265358979 * e * e / 4;
    case SQUARE: return e * e;
    case TRIANGLE: return e * e / 2;
    case DIAMOND: return e * e / 2;
    default: return e * e * 5 / 9; /* two arms e x e/3, the middle counted once */
    }
}

/* Checks one rendered scene; `exact` when rendered without rng (gamma 1). */
static void check_render(const shapes_scene *s, const uint8_t *rgb, int exact) {
    const int32_t W = s->width, H = s->height;
    const double cw = W / 3.0, ch = H / 3.0;
    int owner_cell[SHAPES_N_CELLS];
    for (int c = 0; c < SHAPES_N_CELLS; c++) owner_cell[c] = -1;
    for (int i = 0; i < s->n; i++) owner_cell[s->obj[i].cell] = i;
    for (int i = 0; i < s->n; i++) {
        const shapes_object *o = &s->obj[i];
        /* the object lies inside its cell */
        double r = o->extent / 2, x0 = (o->cell % 3) * cw, y0 = (o->cell / 3) * ch;
        assert_true(o->cx - r >= x0 && o->cx + r <= x0 + cw && o->cy - r >= y0 && o->cy + r <= y0 + ch);
        /* its color is the palette within the jitter, and the center pixel has it */
        const uint8_t *p = rgb + ((size_t)(int)o->cy * W + (size_t)(int)o->cx) * 3;
        for (int c = 0; c < 3; c++) {
            assert_true(abs((int)o->rgb[c] - (int)shapes_color_rgb[o->color][c]) <= SHAPES_COLOR_JITTER);
            if (p[c] != o->rgb[c])
                fail_msg("%dx%d %s at (%.1f, %.1f) extent %.1f: center pixel channel %d is %d, want %d", W, H,
                         shapes_shape_names[o->shape], o->cx, o->cy, o->extent, c, p[c], o->rgb[c]);
        }
        /* the colored area (coverage summed over the box) is the shape's area */
        if (exact) {
            double cov = 0;
            int m = o->rgb[0] > o->rgb[1] ? 0 : 1;
            m = o->rgb[2] > o->rgb[m] ? 2 : m;
            for (int y = (int)(o->cy - r) - 1; y <= (int)(o->cy + r) + 1; y++)
                for (int x = (int)(o->cx - r) - 1; x <= (int)(o->cx + r) + 1; x++)
                    if (x >= 0 && y >= 0 && x < W && y < H) cov += rgb[((size_t)y * W + x) * 3 + m] / (double)o->rgb[m];
            double want = shape_area(o->shape, o->extent);
            if (fabs(cov - want) > 0.04 * want + 2.0)
                fail_msg("%s extent %.2f: area %.1f px, want %.1f", shapes_shape_names[o->shape], o->extent, cov, want);
        }
    }
    /* black wherever no object's box reaches, and all over every empty cell */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const uint8_t *p = rgb + ((size_t)y * W + x) * 3;
            int near = 0;
            for (int i = 0; i < s->n; i++) {
                const shapes_object *o = &s->obj[i];
                double r = o->extent / 2;
                near |= x + 1 > o->cx - r && x < o->cx + r && y + 1 > o->cy - r && y < o->cy + r;
            }
            int col = (int)(x / cw), row = (int)(y / ch);
            int inside_cell = (x + 1) <= (col + 1) * cw && (y + 1) <= (row + 1) * ch; /* wholly */
            if (!near || (inside_cell && owner_cell[row * 3 + col] < 0))
                if (p[0] || p[1] || p[2])
                    fail_msg("%dx%d: pixel (%d, %d) is %d,%d,%d, want black", W, H, x, y, p[0], p[1], p[2]);
        }
}

static void test_render(void **state) {
    (void)state;
    uint8_t *rgb = malloc(96 * 96 * 3);
    assert_non_null(rgb);
    loom_rng rng;
    loom_error err;
    shapes_split_rng(&rng, SHAPES_SPLIT_TEST, 77);
    int rendered[SHAPES_N_SHAPES][SHAPES_N_SIZES] = {{0}};
    for (int wi = 0; wi < 4; wi++)
        for (int hi = 0; hi < 4; hi++)
            for (int t = 0; t < 60; t++) {
                shapes_scene s;
                shapes_scene_sample_split(&s, (enum shapes_split)(t % 3), &rng);
                int exact = t % 2;
                assert_int_equal(shapes_scene_layout(&s, k_sides[wi], k_sides[hi], exact ? NULL : &rng, &err), 0);
                assert_int_equal(s.width, k_sides[wi]);
                assert_int_equal(s.height, k_sides[hi]);
                memset(rgb, 0x77, 96 * 96 * 3);
                assert_int_equal(shapes_render(&s, rgb, exact ? NULL : &rng, &err), 0);
                check_render(&s, rgb, exact);
                for (int i = 0; i < s.n; i++) rendered[s.obj[i].shape][s.obj[i].size]++;
            }
    for (int sh = 0; sh < SHAPES_N_SHAPES; sh++)
        for (int z = 0; z < SHAPES_N_SIZES; z++) assert_true(rendered[sh][z] > 20);

    /* without rng: centered in the cell, nominal extent, exact palette */
    static const int8_t a[1][4] = {{SQUARE, CYAN, LARGE, 4}};
    shapes_scene s = make_scene(1, a);
    assert_int_equal(shapes_scene_layout(&s, 96, 48, NULL, &err), 0);
    assert_true(fabsf(s.obj[0].cx - 48) < 1e-4f && fabsf(s.obj[0].cy - 24) < 1e-4f);
    assert_true(fabsf(s.obj[0].extent - 0.85f * 16) < 1e-4f);
    assert_memory_equal(s.obj[0].rgb, shapes_color_rgb[CYAN], 3);
    /* rendering variations differ in pixels, not in what is drawn */
    uint8_t *b = malloc(96 * 96 * 3);
    assert_non_null(b);
    static const int8_t c[2][4] = {{CIRCLE, RED, LARGE, 0}, {TRIANGLE, GREEN, SMALL, 5}};
    s = make_scene(2, c);
    assert_int_equal(shapes_scene_layout(&s, 64, 64, NULL, &err), 0);
    int differ = 0;
    assert_int_equal(shapes_render(&s, rgb, NULL, &err), 0);
    for (int k = 0; k < 10; k++) {
        assert_int_equal(shapes_render(&s, b, &rng, &err), 0);
        check_render(&s, b, 0);
        differ += memcmp(rgb, b, 64 * 64 * 3) != 0;
    }
    assert_true(differ >= 5);
    free(b);
    free(rgb);
}

static void test_extents(void **state) {
    (void)state;
    loom_rng rng;
    loom_error err;
    shapes_split_rng(&rng, SHAPES_SPLIT_TRAIN, 123);
    float lo[2] = {1e9f, 1e9f}, hi[2] = {0, 0};
    int jittered = 0;
    for (int t = 0; t < 4000; t++) {
        shapes_scene s;
        shapes_scene_sample_split(&s, SHAPES_SPLIT_TRAIN, &rng);
        int32_t W = k_sides[t % 4], H = k_sides[(t / 4) % 4];
        assert_int_equal(shapes_scene_layout(&s, W, H, &rng, &err), 0);
        float side = (W < H ? W : H) / 3.0f;
        for (int i = 0; i < s.n; i++) {
            float f = s.obj[i].extent / side;
            int z = s.obj[i].size;
            lo[z] = f < lo[z] ? f : lo[z];
            hi[z] = f > hi[z] ? f : hi[z];
            jittered += memcmp(s.obj[i].rgb, shapes_color_rgb[s.obj[i].color], 3) != 0;
        }
    }
    print_message("  small %.3f..%.3f, large %.3f..%.3f of the cell's shorter side\n", lo[0], hi[0], lo[1], hi[1]);
    assert_true(lo[0] >= 0.45f * 0.94f - 1e-4f && hi[0] <= 0.45f * 1.06f + 1e-4f);
    assert_true(lo[1] >= 0.85f * 0.94f - 1e-4f && hi[1] <= 0.85f * 1.06f + 1e-4f);
    assert_true(hi[0] - lo[0] > 0.03f && hi[1] - lo[1] > 0.06f); /* sizes do vary */
    assert_true(lo[1] > 1.5f * hi[0]);                            /* a wide margin between them */
    assert_true(jittered > 1000);                                 /* colors do vary */
}

/* ---- errors ---------------------------------------------------------------------------- */

static void test_errors(void **state) {
    (void)state;
    loom_error err;
    uint8_t rgb[64 * 64 * 3];
    static const int8_t a[2][4] = {{CIRCLE, RED, LARGE, 4}, {SQUARE, RED, LARGE, 4}};
    shapes_scene s = make_scene(2, a); /* two objects in one cell */
    err.msg[0] = 0;
    assert_int_equal(shapes_scene_validate(&s, &err), -1);
    assert_non_null(strstr(err.msg, "cells"));
    assert_int_equal(shapes_scene_layout(&s, 64, 64, NULL, &err), -1);
    shapes_question q = {.type = SHAPES_Q_COUNT_ALL, .shape = -1, .color = -1, .cell = -1};
    assert_int_equal(shapes_question_make(&s, &q), -1);
    loom_rng rng;
    rng_seed(&rng, 1);
    assert_int_equal(shapes_question_sample_mix(&s, &rng, &q), -1);

    s.n = 0;
    assert_int_equal(shapes_scene_validate(&s, &err), -1);
    s.n = 5;
    assert_int_equal(shapes_scene_validate(&s, NULL), -1);
    static const int8_t b[1][4] = {{CIRCLE, 8, LARGE, 4}}; /* color 8 */
    s = make_scene(1, b);
    assert_int_equal(shapes_scene_validate(&s, &err), -1);

    static const int8_t c[1][4] = {{CIRCLE, RED, LARGE, 4}};
    s = make_scene(1, c);
    err.msg[0] = 0;
    assert_int_equal(shapes_render(&s, rgb, NULL, &err), -1); /* not laid out */
    assert_non_null(strstr(err.msg, "laid out"));
    assert_int_equal(shapes_scene_layout(&s, 8, 64, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "8x64"));
    assert_int_equal(shapes_scene_layout(&s, 64, 100000, NULL, &err), -1);
    assert_int_equal(shapes_scene_layout(&s, 64, 64, NULL, &err), 0);
    assert_int_equal(shapes_render(&s, rgb, NULL, &err), 0);
}

/* --question-weights: types in proportion to their weights among the
 * askable ones; NULL draws exactly what shapes_question_sample_mix draws; a
 * type of weight 0 never comes, and nothing askable with weight is -1. */
static void test_question_weights(void **state) {
    (void)state;
    enum { N = 20000 };
    loom_rng a, b;
    shapes_split_rng(&a, SHAPES_SPLIT_TRAIN, 12);
    shapes_split_rng(&b, SHAPES_SPLIT_TRAIN, 12);
    float w[SHAPES_N_QTYPES];
    for (int t = 0; t < SHAPES_N_QTYPES; t++) w[t] = 1.0f;
    w[SHAPES_Q_COUNT_SHAPE] = 3.0f;
    w[SHAPES_Q_SIZE] = 0.0f;
    int uniform[SHAPES_N_QTYPES] = {0}, weighted[SHAPES_N_QTYPES] = {0};
    for (int i = 0; i < N; i++) {
        shapes_scene s;
        shapes_question q, r;
        shapes_scene_sample_split(&s, SHAPES_SPLIT_TRAIN, &a);
        shapes_scene_sample_split(&s, SHAPES_SPLIT_TRAIN, &b);
        assert_int_equal(shapes_question_sample_mix(&s, &a, &q), 0);
        assert_int_equal(shapes_question_sample_weighted(&s, NULL, &b, &r), 0);
        assert_string_equal(q.prompt, r.prompt);
        uniform[q.type]++;
        assert_int_equal(shapes_question_sample_weighted(&s, w, &b, &r), 0);
        weighted[r.type]++;
        shapes_question_sample_weighted(&s, w, &a, &r); /* keep the streams together */
    }
    const double ratio = (double)weighted[SHAPES_Q_COUNT_SHAPE] / uniform[SHAPES_Q_COUNT_SHAPE];
    print_message("count_shape %d -> %d (x%.2f), size %d -> %d\n", uniform[SHAPES_Q_COUNT_SHAPE],
                  weighted[SHAPES_Q_COUNT_SHAPE], ratio, uniform[SHAPES_Q_SIZE], weighted[SHAPES_Q_SIZE]);
    assert_int_equal(weighted[SHAPES_Q_SIZE], 0);
    /* 3 of about 6.5 askable weights instead of 1 of 7.5: about 2.6x */
    assert_true(ratio > 2.2 && ratio < 3.0);
    for (int t = 0; t < SHAPES_N_QTYPES; t++) w[t] = 0.0f;
    shapes_scene s;
    shapes_question q;
    shapes_scene_sample_split(&s, SHAPES_SPLIT_TRAIN, &a);
    assert_int_equal(shapes_question_sample_weighted(&s, w, &a, &q), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_pinned),     cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_caption_grammar),   cmocka_unit_test(test_answers_hand_built),
        cmocka_unit_test(test_sampled_questions), cmocka_unit_test(test_question_balance),
        cmocka_unit_test(test_splits),            cmocka_unit_test(test_shape_geometry),
        cmocka_unit_test(test_render),            cmocka_unit_test(test_extents),
        cmocka_unit_test(test_errors),            cmocka_unit_test(test_question_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
