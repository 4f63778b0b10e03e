/* shapes_render.c: the Shapes World rasterizer (shapes.h). Each object is an
 * exact point-in-shape test, sampled ss x ss times per pixel; its coverage
 * blends its color onto the canvas. Objects never overlap (one per cell). */
#include <math.h>
#include <string.h>

#include "data/shapes.h"

int shapes_object_contains(const shapes_object *o, float x, float y) {
    const float r = 0.5f * o->extent, dx = x - o->cx, dy = y - o->cy;
    const float ax = fabsf(dx), ay = fabsf(dy);
    switch (o->shape) {
    case 0: return dx * dx + dy * dy <= r * r;                       /* circle */
    case 1: return ax <= r && ay <= r;                               /* square */
    case 2: return dy <= r && ax <= 0.5f * (dy + r);                 /* triangle: apex (0,-r), base y = r */
    case 3: return ax + ay <= r;                                     /* diamond */
    case 4: {                                                        /* cross: arms extent/3 wide */
        const float a = o->extent / 6.0f;
        return (ax <= a && ay <= r) || (ay <= a && ax <= r);
    }
    default: return 0;
    }
}

int shapes_render(const shapes_scene *s, uint8_t *rgb, loom_rng *rng, loom_error *err) {
    if (shapes_scene_validate(s, err)) return loom_error_wrap(err, "render");
    const int32_t W = s->width, H = s->height;
    if (W < SHAPES_MIN_SIDE || W > SHAPES_MAX_SIDE || H < SHAPES_MIN_SIDE || H > SHAPES_MAX_SIDE)
        return loom_error_set(err, "render: scene is not laid out (canvas %dx%d)", (int)W, (int)H);
    size_t bytes; /* W, H <= 4096: no overflow, but say so */
    if (loom_mul_size((size_t)W * (size_t)H, 3, &bytes)) return loom_error_set(err, "render: canvas too large");
    memset(rgb, 0, bytes);

    int ss = 4;           /* samples per pixel side */
    float ox = 0, oy = 0; /* sub-sample grid offset, in sample spacings */
    float gamma = 1.0f;   /* coverage^gamma: < 1 fattens edges, > 1 thins them */
    if (rng) {
        ss = 3 + (int)rng_below(rng, 3);
        ox = rng_uniform(rng) - 0.5f;
        oy = rng_uniform(rng) - 0.5f;
        gamma = expf(logf(0.7f) + rng_uniform(rng) * (logf(1.4f) - logf(0.7f)));
    }
    const float step = 1.0f / (float)ss;

    for (int i = 0; i < s->n; i++) {
        const shapes_object *o = &s->obj[i];
        const float r = 0.5f * o->extent;
        int x0 = (int)floorf(o->cx - r) - 1, x1 = (int)ceilf(o->cx + r) + 1;
        int y0 = (int)floorf(o->cy - r) - 1, y1 = (int)ceilf(o->cy + r) + 1;
        if (x0 < 0) x0 = 0;
        if (y0 < 0) y0 = 0;
        if (x1 > W) x1 = W;
        if (y1 > H) y1 = H;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) {
                int inside = 0;
                for (int sy = 0; sy < ss; sy++)
                    for (int sx = 0; sx < ss; sx++)
                        inside += shapes_object_contains(o, (float)x + ((float)sx + 0.5f + ox) * step,
                                                         (float)y + ((float)sy + 0.5f + oy) * step);
                if (!inside) continue;
                float cov = (float)inside / (float)(ss * ss);
                if (inside < ss * ss && gamma != 1.0f) cov = powf(cov, gamma);
                uint8_t *p = rgb + ((size_t)y * (size_t)W + (size_t)x) * 3;
                for (int c = 0; c < 3; c++)
                    p[c] = (uint8_t)lrintf((float)p[c] * (1.0f - cov) + (float)o->rgb[c] * cov);
            }
    }
    return 0;
}
