/* infer_bench.c: the latency a user waits for, in-process, with a real model:
 *
 *   caption   one image end to end: decode the file, patchify, prefill, greedy
 *             decoding to <eos> (what `loom caption` does per image)
 *   imagine   one image end to end: prefill, 64 codes sampled, VQ decode, PNG
 *             encode (what `loom imagine` does per image, without the file write)
 *
 * Each is repeated and the median and minimum printed as one JSON line
 * (bench/run.sh reads it).
 *
 *   infer_bench [-m MODEL] [--image FILE] [--prompt P] [--repeats N] [--threads N]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/threads.h"
#include "encoders/image.h"
#include "heads/png.h"
#include "model/infer.h"
#include "model/model.h"

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void die(const char *what, const char *why) {
    fprintf(stderr, "infer_bench: %s: %s\n", what, why);
    exit(1);
}

int main(int argc, char **argv) {
    const char *model = "models/loom-shapes.safetensors", *image = "examples/scene0.png";
    const char *prompt = "a large red circle at the top left";
    int repeats = 50, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) die(a, "needs a value (usage: infer_bench [-m MODEL] [--image FILE] [--prompt P] [--repeats N] [--threads N])");
        i++;
        if (!strcmp(a, "-m")) model = v;
        else if (!strcmp(a, "--image")) image = v;
        else if (!strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "--repeats")) repeats = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else die(a, "unknown option");
    }
    if (repeats < 1) die("--repeats", "want >= 1");
    threads = loom_threads_set(threads);
    loom_error err = {{0}};
    loom_model *m = model_load(model, &err);
    if (!m) die(model, err.msg);
    loom_infer *inf = infer_new(m, &err);
    if (!inf) die(model, err.msg);
    double *t = malloc((size_t)repeats * sizeof *t);
    char out[4096];
    /* caption: warm once, then timed */
    for (int r = -1; r < repeats; r++) {
        const double t0 = clock_now_s();
        loom_image img = {0};
        if (image_load_file(image, &img, &err) ||
            infer_answer(inf, &img, "", 0, INFER_ANSWER_MAX_TOKENS, out, sizeof out, &err) < 0)
            die(image, err.msg);
        image_free(&img);
        if (r >= 0) t[r] = clock_now_s() - t0;
    }
    qsort(t, (size_t)repeats, sizeof *t, cmp_double);
    const double cap_med = t[repeats / 2] * 1e3, cap_min = t[0] * 1e3;
    double img_med = 0, img_min = 0;
    int img_repeats = repeats / 5 > 0 ? repeats / 5 : 1;
    if (m->gen.n_codes > 0) {
        const int32_t H = model_gen_height(m), W = model_gen_width(m);
        int32_t *codes = malloc((size_t)m->gen.rows * m->gen.cols * sizeof *codes);
        uint8_t *rgb = malloc((size_t)W * H * 3);
        for (int r = -1; r < img_repeats; r++) {
            const double t0 = clock_now_s();
            infer_imagine_params p = {.sampling = {.temp = 1.0f, .top_p = 1.0f}, .cfg_scale = 1.0f,
                                      .seed = (uint64_t)(r + 1)};
            uint8_t *png = NULL;
            size_t len = 0;
            if (infer_imagine(inf, prompt, strlen(prompt), &p, codes, &err) ||
                model_decode_codes(m, codes, rgb, &err) || png_encode(rgb, W, H, NULL, 0, &png, &len, &err))
                die("imagine", err.msg);
            free(png);
            if (r >= 0) t[r] = clock_now_s() - t0;
        }
        qsort(t, (size_t)img_repeats, sizeof *t, cmp_double);
        img_med = t[img_repeats / 2] * 1e3;
        img_min = t[0] * 1e3;
        free(codes);
        free(rgb);
    }
    printf("{\"threads\":%d,\"caption\":\"%s\",\"caption_ms_median\":%.3f,\"caption_ms_min\":%.3f,"
           "\"imagine_ms_median\":%.3f,\"imagine_ms_min\":%.3f,\"repeats\":%d}\n",
           threads, out, cap_med, cap_min, img_med, img_min, repeats);
    free(t);
    infer_free(inf);
    model_free(m);
    return 0;
}
