/* shapes_analyze.c: the Shapes World scene analyzer (shapes_analyze.h).
 *
 * Cell by cell: threshold, 8-connected components, then for each component
 * its core color, its coverage (how much of each pixel it covers, from the
 * pixel's projection on the core color) with that coverage's mass, centroid
 * and second moment, and a template match of the five ideal shapes, fitted
 * to those moments, against the coverage. Everything an object covers lies
 * in its cell (shapes_scene_layout keeps half a pixel from the cell's
 * border), so nothing is merged across cells. */
#include "data/shapes_analyze.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- tuning ------------------------------------------------------------------ */

/* A pixel is lit when its brightest channel exceeds this: the background is
 * 0, noise of sigma 6 stays far below, the dimmest palette color (green,
 * 180 - 8) is 3.5x above. */
enum { ANALYZE_LIT = 48 };
/* Core pixels: brightest channel >= this fraction of the component's brightest. */
#define ANALYZE_CORE_FRAC 0.85f
/* Specks: coverage below this * side^2 (side: the cell's shorter side). The
 * smallest object, a small triangle, covers 0.5 * 0.423^2 = 0.089 side^2. */
#define ANALYZE_SPECK_FRAC 0.03f
/* Slivers: a box narrower than this * side in x or y (an object's box is at
 * least 0.42 side in both): the blurred rim of a neighbor, a stroke. */
#define ANALYZE_SLIVER_FRAC 0.25f
/* Size: extent / side below this is small (<= 0.45 * 1.06), above large
 * (>= 0.85 * 0.94); the geometric middle of the two bands. */
#define ANALYZE_SIZE_SPLIT 0.62f
/* The coverage window reaches this many pixels beyond a component's box. */
enum { ANALYZE_MARGIN = 2 };

/* ---- cells ------------------------------------------------------------------- */

/* First pixel of each of the 3 grid columns (rows) of a side of n pixels, and
 * n: pixel x lies in the column holding its center, floor((x + 0.5) / (n / 3))
 * = floor((6x + 3) / 2n), so column c starts at the first x with
 * 6x + 3 >= 2nc. */
static void cell_bounds(int32_t n, int32_t b[4]) {
    b[0] = 0;
    for (int c = 1; c < 3; c++) b[c] = (2 * n * c - 3 + 5) / 6; /* ceil((2nc - 3) / 6) */
    b[3] = n;
}

/* One cell of the canvas and the scratch buffers for its components. */
typedef struct cell_view {
    const uint8_t *rgb; /* (H, W, 3) the canvas */
    int32_t W;
    int32_t x0, y0, w, h; /* the cell's pixels: [x0, x0 + w) x [y0, y0 + h) */
    int cell;             /* row * 3 + column */
    float side;           /* the cell's shorter side, W / 3 or H / 3 (not rounded) */
    int32_t *label;       /* (h, w): -1 unlit, 0 lit and not yet visited, k > 0 component k */
    int32_t *queue;       /* (h * w) pixel indices (y * w + x), component after component */
    float *cov;           /* (h * w) coverage of the component at hand over its window */
    float *tmpl, *tmp;    /* (h * w) each: an ideal shape's coverage over the window, a blur pass */
    uint8_t *inside;      /* (h + 1) * (w + 1): the template's corner tests */
} cell_view;

static const uint8_t *cell_pixel(const cell_view *v, int32_t x, int32_t y) {
    return v->rgb + ((size_t)(v->y0 + y) * (size_t)v->W + (size_t)(v->x0 + x)) * 3;
}

static int max3(const uint8_t *p) {
    int m = p[0] > p[1] ? p[0] : p[1];
    return m > p[2] ? m : p[2];
}

/* ---- shape templates ------------------------------------------------------------ */

/* Each ideal shape of extent e: its area / e^2 (circle pi/4, square 1,
 * triangle 1/2, diamond 1/2, cross 5/9: two arms e x e/3, the middle counted
 * once) and its second moment about its centroid, E[dx^2 + dy^2] / e^2
 * (circle 1/8, square 1/6, triangle 7/72, diamond 1/12, cross 29/270). */
static const float k_shape_area[SHAPES_N_SHAPES] = {0.78539816f, 1.0f, 0.5f, 0.5f, 5.0f / 9.0f};
static const float k_shape_moment[SHAPES_N_SHAPES] = {1.0f / 8, 1.0f / 6, 7.0f / 72, 1.0f / 12, 29.0f / 270};

/* The blurs an image may have had (a decoder's output is blurry): none, a
 * mild 3 x 3 kernel [1 2 1]/4 (x) [1 2 1]/4, a 3 x 3 box, the box twice (a 5 x 5
 * tent). Each adds its variance per axis to the coverage's second moment. */
enum { ANALYZE_N_BLURS = 4 };
static const float k_blur_variance[ANALYZE_N_BLURS] = {0.0f, 0.5f, 2.0f / 3, 4.0f / 3};
static const float k_kernel_mild[3] = {0.25f, 0.5f, 0.25f}, k_kernel_box[3] = {1.0f / 3, 1.0f / 3, 1.0f / 3};

/* o's ideal coverage of every pixel of a window, (wh, ww) with its top left
 * pixel at canvas (wx, wy). A pixel whose four corners are all inside is
 * covered (no notch of these shapes is narrower than a pixel), one whose
 * corners are all outside is taken as empty (wrong only by a tip poking less
 * than a pixel into it); the others are sampled ss x ss times. inside,
 * (wh + 1, ww + 1), holds the corner tests. */
static void template_fill(const shapes_object *o, int32_t wx, int32_t wy, int32_t ww, int32_t wh, int ss,
                          uint8_t *inside, float *t) {
    const float r = 0.5f * o->extent;
    for (int32_t y = 0; y <= wh; y++)
        for (int32_t x = 0; x <= ww; x++) {
            const float px = (float)(wx + x), py = (float)(wy + y);
            inside[(size_t)y * (size_t)(ww + 1) + (size_t)x] =
                fabsf(px - o->cx) <= r && fabsf(py - o->cy) <= r && shapes_object_contains(o, px, py);
        }
    const float step = 1.0f / (float)ss;
    for (int32_t y = 0; y < wh; y++)
        for (int32_t x = 0; x < ww; x++) {
            const uint8_t *c = inside + (size_t)y * (size_t)(ww + 1) + (size_t)x;
            const int corners = c[0] + c[1] + c[ww + 1] + c[ww + 2];
            float cov = corners == 4 ? 1.0f : 0.0f;
            if (corners > 0 && corners < 4) {
                int n = 0;
                for (int sy = 0; sy < ss; sy++)
                    for (int sx = 0; sx < ss; sx++)
                        n += shapes_object_contains(o, (float)(wx + x) + ((float)sx + 0.5f) * step,
                                                    (float)(wy + y) + ((float)sy + 0.5f) * step);
                cov = (float)n * step * step;
            }
            t[(size_t)y * (size_t)ww + (size_t)x] = cov;
        }
}

/* The same at every stride-th pixel in each direction (the others are left
 * as they are), one sample at the pixel's center: for big objects, whose
 * edges are a small part of them. */
static void template_fill_strided(const shapes_object *o, int32_t wx, int32_t wy, int32_t ww, int32_t wh,
                                  int32_t stride, float *t) {
    for (int32_t y = 0; y < wh; y += stride)
        for (int32_t x = 0; x < ww; x += stride)
            t[(size_t)y * (size_t)ww + (size_t)x] =
                (float)shapes_object_contains(o, (float)(wx + x) + 0.5f, (float)(wy + y) + 0.5f);
}

/* dst = src convolved with the 3 x 3 kernel k (x) k, (wh, ww), zero outside;
 * tmp holds the horizontal pass. dst may be src. */
static void blur_window(const float *src, float *dst, float *tmp, int32_t ww, int32_t wh, const float k[3]) {
    for (int32_t y = 0; y < wh; y++)
        for (int32_t x = 0; x < ww; x++) {
            const float *row = src + (size_t)y * (size_t)ww;
            tmp[(size_t)y * (size_t)ww + (size_t)x] =
                k[1] * row[x] + (x > 0 ? k[0] * row[x - 1] : 0.0f) + (x + 1 < ww ? k[2] * row[x + 1] : 0.0f);
        }
    for (int32_t y = 0; y < wh; y++)
        for (int32_t x = 0; x < ww; x++) {
            const size_t i = (size_t)y * (size_t)ww + (size_t)x;
            dst[i] = k[1] * tmp[i] + (y > 0 ? k[0] * tmp[i - (size_t)ww] : 0.0f) +
                     (y + 1 < wh ? k[2] * tmp[i + (size_t)ww] : 0.0f);
        }
}

/* Sum of squared differences between a and g * b, (wh, ww), over every
 * stride-th pixel in each direction. */
static float window_distance(const float *a, const float *b, float g, int32_t ww, int32_t wh, int32_t stride) {
    float d2 = 0.0f;
    for (int32_t y = 0; y < wh; y += stride)
        for (int32_t x = 0; x < ww; x += stride) {
            const size_t i = (size_t)y * (size_t)ww + (size_t)x;
            d2 += (a[i] - g * b[i]) * (a[i] - g * b[i]);
        }
    return d2;
}

/* ---- colors --------------------------------------------------------------------- */

/* The palette color nearest m up to brightness: min over a in [0.5, 1.3] of
 * |m - a * palette|, so that a dimmed (blurred, faded) orange stays orange
 * rather than the nearer red. */
static int nearest_palette_color(const float m[3]) {
    int best = 0;
    float best_d2 = INFINITY;
    for (int c = 0; c < SHAPES_N_COLORS; c++) {
        const uint8_t *q = shapes_color_rgb[c];
        const float qq = (float)(q[0] * q[0] + q[1] * q[1] + q[2] * q[2]);
        float a = (m[0] * q[0] + m[1] * q[1] + m[2] * q[2]) / qq;
        a = a < 0.5f ? 0.5f : a > 1.3f ? 1.3f : a;
        float d2 = 0.0f;
        for (int k = 0; k < 3; k++) d2 += (m[k] - a * q[k]) * (m[k] - a * q[k]);
        if (d2 < best_d2) {
            best_d2 = d2;
            best = c;
        }
    }
    return best;
}

/* ---- one component --------------------------------------------------------------- */

typedef struct found_object {
    shapes_object o;
    float mass; /* coverage summed over the component, pixels */
} found_object;

/* The measured coverage of a component over its window: mass (pixels), centroid
 * (canvas pixels) and second moment about it, E[dx^2 + dy^2] (pixels^2). */
typedef struct coverage_stats {
    int32_t wx0, wy0, ww, wh; /* the window, cell pixels: [wx0, wx0 + ww) x [wy0, wy0 + wh) */
    double mass, mx, my, moment;
} coverage_stats;

/* Fills v->cov over component k's window (its box plus ANALYZE_MARGIN, inside
 * the cell) with each pixel's coverage: its projection on the core color m,
 * in [0, 1], on the component and the unlit pixels touching it (its faint
 * anti-aliased rim), 0 elsewhere (other components, the background). */
static void component_coverage(const cell_view *v, int32_t k, const float m[3], int32_t bx0, int32_t bx1,
                               int32_t by0, int32_t by1, coverage_stats *st) {
    const float mm = m[0] * m[0] + m[1] * m[1] + m[2] * m[2];
    const int32_t wx0 = bx0 - ANALYZE_MARGIN < 0 ? 0 : bx0 - ANALYZE_MARGIN;
    const int32_t wy0 = by0 - ANALYZE_MARGIN < 0 ? 0 : by0 - ANALYZE_MARGIN;
    const int32_t wx1 = bx1 + ANALYZE_MARGIN >= v->w ? v->w - 1 : bx1 + ANALYZE_MARGIN;
    const int32_t wy1 = by1 + ANALYZE_MARGIN >= v->h ? v->h - 1 : by1 + ANALYZE_MARGIN;
    const int32_t ww = wx1 - wx0 + 1;
    double mass = 0.0, sx = 0.0, sy = 0.0, sxx = 0.0, syy = 0.0;
    for (int32_t y = wy0; y <= wy1; y++)
        for (int32_t x = wx0; x <= wx1; x++) {
            const int32_t l = v->label[(size_t)y * (size_t)v->w + (size_t)x];
            int near = l == k;
            for (int32_t dy = -1; dy <= 1 && !near && l < 0; dy++)
                for (int32_t dx = -1; dx <= 1 && !near; dx++) {
                    const int32_t xx = x + dx, yy = y + dy;
                    near = xx >= 0 && yy >= 0 && xx < v->w && yy < v->h &&
                           v->label[(size_t)yy * (size_t)v->w + (size_t)xx] == k;
                }
            float c = 0.0f;
            if (near) {
                const uint8_t *p = cell_pixel(v, x, y);
                c = (m[0] * p[0] + m[1] * p[1] + m[2] * p[2]) / mm;
                c = c < 0.0f ? 0.0f : c > 1.0f ? 1.0f : c;
            }
            v->cov[(size_t)(y - wy0) * (size_t)ww + (size_t)(x - wx0)] = c;
            /* moments about the window's corner (small numbers), pixel centers */
            const double px = (double)(x - wx0) + 0.5, py = (double)(y - wy0) + 0.5;
            mass += c;
            sx += c * px;
            sy += c * py;
            sxx += c * px * px;
            syy += c * py * py;
        }
    memset(st, 0, sizeof *st);
    st->wx0 = wx0;
    st->wy0 = wy0;
    st->ww = ww;
    st->wh = wy1 - wy0 + 1;
    st->mass = mass;
    if (mass <= 0.0) return; /* a speck, dropped by the caller */
    const double cx = sx / mass, cy = sy / mass;
    st->mx = (double)(v->x0 + wx0) + cx;
    st->my = (double)(v->y0 + wy0) + cy;
    st->moment = (sxx / mass - cx * cx) + (syy / mass - cy * cy);
}

/* The shape whose ideal coverage is nearest the measured one (v->cov over the
 * window of st), with its fitted center and extent in o. Each shape is tried
 * under each blur: the extent from the second moment (less the blur's
 * variance and the pixels' own, 1/12 per axis: blur and a dimmed core color
 * leave it unchanged, unlike the mass), the center from the centroid (a
 * triangle's centroid is extent/6 below its box's center), the gain from the
 * mass; that template, blurred and scaled by the gain, is compared by the sum
 * of squared differences. Big objects (box >= 64 px) are compared sharp on a
 * strided grid: a pixel's blur is nothing to them. */
static void classify_shape(const cell_view *v, const coverage_stats *st, int32_t box, shapes_object *o) {
    const int32_t wx = v->x0 + st->wx0, wy = v->y0 + st->wy0, ww = st->ww, wh = st->wh;
    const int32_t stride = 1 + box / 64;
    const int ss = box < 32 ? 4 : 2;
    const int n_blurs = stride == 1 ? ANALYZE_N_BLURS : 1;
    float best_d2 = INFINITY;
    for (int shape = 0; shape < SHAPES_N_SHAPES; shape++)
        for (int b = 0; b < n_blurs; b++) {
            const double spread = st->moment - 2.0 * (1.0 / 12.0 + (double)k_blur_variance[b]);
            shapes_object t = {0};
            t.shape = (int8_t)shape;
            t.extent = spread > 0.0 ? (float)sqrt(spread / (double)k_shape_moment[shape]) : 0.0f;
            if (t.extent < 1.0f) continue; /* this much blur is more than the object's spread */
            t.cx = (float)st->mx;
            t.cy = (float)st->my - (shape == 2 ? t.extent / 6.0f : 0.0f);
            const float gain = (float)st->mass / (k_shape_area[shape] * t.extent * t.extent);
            if (stride == 1) {
                template_fill(&t, wx, wy, ww, wh, ss, v->inside, v->tmpl);
                if (b == 1) blur_window(v->tmpl, v->tmpl, v->tmp, ww, wh, k_kernel_mild);
                if (b >= 2) blur_window(v->tmpl, v->tmpl, v->tmp, ww, wh, k_kernel_box);
                if (b == 3) blur_window(v->tmpl, v->tmpl, v->tmp, ww, wh, k_kernel_box);
            } else {
                template_fill_strided(&t, wx, wy, ww, wh, stride, v->tmpl);
            }
            const float d2 = window_distance(v->cov, v->tmpl, gain, ww, wh, stride);
            if (d2 < best_d2) {
                best_d2 = d2;
                *o = t;
            }
        }
    if (best_d2 == INFINITY) { /* too small for any spread: a dot, call it a circle */
        memset(o, 0, sizeof *o);
        o->extent = (float)sqrt(st->mass / (double)k_shape_area[0]);
        o->cx = (float)st->mx;
        o->cy = (float)st->my;
    }
}

/* Measures component k of the cell: its n pixels are pix[0..n) (indices into
 * the cell), its box [bx0, bx1] x [by0, by1] (cell pixels, inclusive), its
 * brightest channel vmax. Returns 1 and fills f for an object, 0 for a speck
 * or a sliver. */
static int measure_component(const cell_view *v, int32_t k, const int32_t *pix, int32_t n, int32_t bx0, int32_t bx1,
                             int32_t by0, int32_t by1, int vmax, found_object *f) {
    /* a sliver: too narrow to be an object */
    const float min_width = ANALYZE_SLIVER_FRAC * v->side;
    if ((float)(bx1 - bx0 + 1) < min_width || (float)(by1 - by0 + 1) < min_width) return 0;

    /* the core color: mean of the pixels near the brightest */
    float m[3] = {0, 0, 0};
    int32_t n_core = 0;
    for (int32_t i = 0; i < n; i++) {
        const uint8_t *p = cell_pixel(v, pix[i] % v->w, pix[i] / v->w);
        if ((float)max3(p) < ANALYZE_CORE_FRAC * (float)vmax) continue;
        for (int c = 0; c < 3; c++) m[c] += p[c];
        n_core++;
    }
    for (int c = 0; c < 3; c++) m[c] /= (float)n_core; /* n_core >= 1: the brightest pixel */

    coverage_stats st;
    component_coverage(v, k, m, bx0, bx1, by0, by1, &st);
    /* a speck: too little coverage to be an object */
    if (st.mass < (double)(ANALYZE_SPECK_FRAC * v->side * v->side)) return 0;

    memset(f, 0, sizeof *f);
    const int32_t box = bx1 - bx0 > by1 - by0 ? bx1 - bx0 + 1 : by1 - by0 + 1;
    classify_shape(v, &st, box, &f->o);
    f->o.color = (int8_t)nearest_palette_color(m);
    f->o.size = (int8_t)(f->o.extent >= ANALYZE_SIZE_SPLIT * v->side);
    f->o.cell = (int8_t)v->cell;
    for (int c = 0; c < 3; c++) f->o.rgb[c] = (uint8_t)lrintf(m[c] > 255.0f ? 255.0f : m[c]);
    f->mass = (float)st.mass;
    return 1;
}

/* ---- the canvas ------------------------------------------------------------------- */

/* Keeps the SHAPES_MAX_OBJECTS largest objects seen in kept[0..*n_kept). */
static void keep_largest(found_object *kept, int *n_kept, const found_object *f) {
    if (*n_kept < SHAPES_MAX_OBJECTS) {
        kept[(*n_kept)++] = *f;
        return;
    }
    int smallest = 0;
    for (int i = 1; i < *n_kept; i++)
        if (kept[i].mass < kept[smallest].mass) smallest = i;
    if (f->mass > kept[smallest].mass) kept[smallest] = *f;
}

/* Labels the cell's lit pixels into 8-connected components and measures
 * each; returns the number of objects found, kept in kept (the largest). */
static int analyze_cell(cell_view *v, found_object *kept, int *n_kept) {
    const int32_t w = v->w, h = v->h;
    for (int32_t y = 0; y < h; y++)
        for (int32_t x = 0; x < w; x++)
            v->label[(size_t)y * (size_t)w + (size_t)x] = max3(cell_pixel(v, x, y)) > ANALYZE_LIT ? 0 : -1;
    int found = 0;
    int32_t n_labels = 0, tail = 0;
    for (int32_t start = 0; start < w * h; start++) {
        if (v->label[start] != 0) continue;
        /* breadth-first over the component; its pixels stay in queue[head0, tail) */
        const int32_t k = ++n_labels, head0 = tail;
        int32_t bx0 = w, bx1 = -1, by0 = h, by1 = -1;
        int vmax = 0;
        v->label[start] = k;
        v->queue[tail++] = start;
        for (int32_t head = head0; head < tail; head++) {
            const int32_t x = v->queue[head] % w, y = v->queue[head] / w;
            const int val = max3(cell_pixel(v, x, y));
            vmax = val > vmax ? val : vmax;
            bx0 = x < bx0 ? x : bx0;
            bx1 = x > bx1 ? x : bx1;
            by0 = y < by0 ? y : by0;
            by1 = y > by1 ? y : by1;
            for (int32_t dy = -1; dy <= 1; dy++)
                for (int32_t dx = -1; dx <= 1; dx++) {
                    const int32_t xx = x + dx, yy = y + dy;
                    if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
                    const int32_t j = yy * w + xx;
                    if (v->label[j] != 0) continue;
                    v->label[j] = k;
                    v->queue[tail++] = j;
                }
        }
        found_object f;
        if (measure_component(v, k, v->queue + head0, tail - head0, bx0, bx1, by0, by1, vmax, &f)) {
            keep_largest(kept, n_kept, &f);
            found++;
        }
    }
    return found;
}

/* Reading order: by cell, then (two in one cell) top to bottom, left to right. */
static int compare_found(const void *a, const void *b) {
    const shapes_object *p = &((const found_object *)a)->o, *q = &((const found_object *)b)->o;
    if (p->cell != q->cell) return p->cell < q->cell ? -1 : 1;
    if (p->cy != q->cy) return p->cy < q->cy ? -1 : 1;
    return (p->cx > q->cx) - (p->cx < q->cx);
}

int shapes_analyze(const uint8_t *rgb, int32_t W, int32_t H, shapes_scene *out, loom_error *err) {
    if (!rgb || !out) return loom_error_set(err, "analyze: NULL argument");
    if (W < SHAPES_MIN_SIDE || W > SHAPES_MAX_SIDE || H < SHAPES_MIN_SIDE || H > SHAPES_MAX_SIDE)
        return loom_error_set(err, "analyze: canvas %dx%d: sides must be in [%d, %d]", (int)W, (int)H,
                              SHAPES_MIN_SIDE, SHAPES_MAX_SIDE);
    memset(out, 0, sizeof *out);
    out->width = W;
    out->height = H;

    int32_t bx[4], by[4];
    cell_bounds(W, bx);
    cell_bounds(H, by);
    int32_t max_w = 0, max_h = 0;
    for (int c = 0; c < 3; c++) {
        max_w = bx[c + 1] - bx[c] > max_w ? bx[c + 1] - bx[c] : max_w;
        max_h = by[c + 1] - by[c] > max_h ? by[c + 1] - by[c] : max_h;
    }
    /* scratch for one cell: label and queue (int32_t), coverage, template
     * and a blur pass (float), corner tests (uint8_t); sides <= 4096: at most
     * 1366^2 pixels, 40 MB */
    const size_t cell_px = (size_t)max_w * (size_t)max_h, corners = (size_t)(max_w + 1) * (size_t)(max_h + 1);
    char *scratch = malloc(cell_px * (2 * sizeof(int32_t) + 3 * sizeof(float)) + corners);
    if (!scratch) return loom_error_set(err, "analyze: out of memory (%dx%d canvas)", (int)W, (int)H);

    cell_view v;
    memset(&v, 0, sizeof v);
    v.rgb = rgb;
    v.W = W;
    v.side = (W < H ? (float)W : (float)H) / 3.0f;
    v.label = (int32_t *)scratch;
    v.queue = (int32_t *)(scratch + cell_px * sizeof(int32_t));
    v.cov = (float *)(scratch + 2 * cell_px * sizeof(int32_t));
    v.tmpl = v.cov + cell_px;
    v.tmp = v.tmpl + cell_px;
    v.inside = (uint8_t *)(v.tmp + cell_px);
    found_object kept[SHAPES_MAX_OBJECTS];
    int n_kept = 0, found = 0;
    for (int cell = 0; cell < SHAPES_N_CELLS; cell++) {
        v.cell = cell;
        v.x0 = bx[cell % 3];
        v.y0 = by[cell / 3];
        v.w = bx[cell % 3 + 1] - v.x0;
        v.h = by[cell / 3 + 1] - v.y0;
        found += analyze_cell(&v, kept, &n_kept);
    }
    free(scratch);

    qsort(kept, (size_t)n_kept, sizeof kept[0], compare_found);
    out->n = n_kept;
    for (int i = 0; i < n_kept; i++) out->obj[i] = kept[i].o;
    return found;
}

int shapes_analyze_reads_back(const uint8_t *rgb, int32_t W, int32_t H, const shapes_scene *s,
                              loom_error *err) {
    shapes_scene got;
    int found = shapes_analyze(rgb, W, H, &got, err);
    if (found < 0) return -1;
    if (found != s->n || got.n != s->n) return 0;
    for (int32_t k = 0; k < s->n; k++)
        if (got.obj[k].shape != s->obj[k].shape || got.obj[k].color != s->obj[k].color ||
            got.obj[k].size != s->obj[k].size || got.obj[k].cell != s->obj[k].cell)
            return 0;
    return 1;
}
