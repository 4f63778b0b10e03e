/* loom caption / ask / eval: the image-in commands.
 *
 *   loom caption [-m MODEL] [-t N] IMAGE...               one caption per image, in order
 *   loom ask [-m MODEL] --image IMAGE -p QUESTION          the answer
 *   loom ask [-m MODEL] --image IMAGE --audio Q.wav        the answer to a spoken question
 *   loom eval [-m MODEL] [--n N] [--seed S] [--questions K] caption exact match and VQA
 *                                                          accuracy on held-out Shapes World
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb_image_write.h>

#include "cli.h"
#include "core/threads.h"
#include "data/shapes.h"
#include "encoders/image.h"
#include "model/infer.h"
#include "model/model.h"



/* ---- caption ------------------------------------------------------------- */

static void caption_usage(FILE *f) {
    fprintf(f,
            "usage: loom caption [-m MODEL] [--contrast A] [-t N] IMAGE...\n"
            "\n"
            "Prints one caption per image, one line each, in order (PNG, JPEG, BMP, GIF, TGA,\n"
            "PNM). The model is loaded once. An image that cannot be read is reported on\n"
            "stderr, its line is left empty, and the exit status is 1.\n"
            "\n"
            "  -m, --model FILE     model (default %s)\n"
            CLI_CONTRAST_HELP
            "  -t, --threads N      threads (default: all cores)\n",
            CLI_SHAPES_MODEL);
}

int cmd_caption(int argc, char **argv) {
    const char *model = CLI_SHAPES_MODEL;
    int64_t threads = 0;
    float contrast = 0.0f;
    int first = 0, n_images = 0;
    char **images = calloc((size_t)argc, sizeof *images);
    if (!images) return cli_fail("caption", "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            caption_usage(stdout);
            free(images);
            return 0;
        }
        if (!strcmp(a, "-m") || !strcmp(a, "--model") || !strcmp(a, "-t") || !strcmp(a, "--threads") ||
            !strcmp(a, "--contrast")) {
            if (i + 1 >= argc) {
                free(images);
                fprintf(stderr, "loom: caption: %s needs a value\n", a);
                return 1;
            }
            if (!strcmp(a, "--contrast")) {
                if (cli_float(a, argv[++i], CLI_CONTRAST_MIN, CLI_CONTRAST_MAX, &contrast)) {
                    free(images);
                    return 1;
                }
            } else if (a[1] == 'm' || a[2] == 'm') model = argv[++i];
            else if (cli_int(a, argv[++i], 0, 1024, &threads)) {
                free(images);
                return 1;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            free(images);
            fprintf(stderr, "loom: caption: unknown option %s (see loom caption --help)\n", a);
            return 1;
        } else {
            images[n_images++] = argv[i];
        }
    }
    (void)first;
    if (n_images == 0) {
        free(images);
        caption_usage(stderr);
        return cli_fail("caption", "no images given");
    }
    loom_threads_set((int)threads);
    loom_infer *inf = NULL;
    loom_model *m = cli_load_model(model, CLI_NEED_IMAGE_IN, &inf);
    if (!m) {
        free(images);
        return 1;
    }
    int rc = 0;
    char out[4096];
    for (int i = 0; i < n_images; i++) {
        loom_error err = {{0}};
        loom_image img = {0};
        const infer_input in = {.image = &img, .contrast = contrast};
        if (image_load_file(images[i], &img, &err) ||
            infer_answer_input(inf, &in, INFER_ANSWER_MAX_TOKENS, out, sizeof out, &err) < 0) {
            cli_fail(images[i], err.msg);
            printf("\n");
            rc = 1;
        } else {
            printf("%s\n", out);
        }
        fflush(stdout);
        image_free(&img);
    }
    infer_free(inf);
    model_free(m);
    free(images);
    return rc;
}

/* ---- ask ------------------------------------------------------------------- */

static void ask_usage(FILE *f) {
    fprintf(f,
            "usage: loom ask [-m MODEL] --image IMAGE (-p QUESTION | --audio FILE [--spoken MODE])\n"
            "                [--caption-first | --contrast A] [-t N]\n"
            "\n"
            "Prints the model's answer to a question about an image, typed or spoken.\n"
            "\n"
            "  -m, --model FILE     model (default %s)\n"
            "  --image FILE         the image\n"
            "  -p, --prompt TEXT    the question, e.g. \"what color is the circle?\"\n"
            "  --audio FILE         the question spoken (WAV, FLAC, OGG, ...; any rate and\n"
            "                       channel count), for models with audio input\n"
            CLI_SPOKEN_HELP
            "  --caption-first      the model captions the image, then answers with its\n"
            "                       caption in context (models trained with --caption-asks)\n"
            CLI_CONTRAST_HELP
            "  -t, --threads N      threads (default: all cores)\n",
            CLI_SHAPES_MODEL);
}

int cmd_ask(int argc, char **argv) {
    const char *model = CLI_SHAPES_MODEL, *image = NULL, *prompt = NULL, *audio = NULL;
    int64_t threads = 0;
    int transcribe = 1, caption_first = 0;
    float contrast = 0.0f;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            ask_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--caption-first")) {
            caption_first = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "loom: ask: %s needs a value (see loom ask --help)\n", a);
            return 1;
        }
        i++;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--image")) image = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "--audio")) audio = v;
        else if (!strcmp(a, "--spoken")) {
            if (cli_spoken(v, &transcribe)) return 1;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (cli_int(a, v, 0, 1024, &threads)) return 1;
        } else if (!strcmp(a, "--contrast")) {
            if (cli_float(a, v, CLI_CONTRAST_MIN, CLI_CONTRAST_MAX, &contrast)) return 1;
        } else {
            fprintf(stderr, "loom: ask: unknown option %s (see loom ask --help)\n", a);
            return 1;
        }
    }
    if (!image || (!prompt && !audio)) {
        ask_usage(stderr);
        return cli_fail("ask", "--image and -p (or --audio) are required");
    }
    if (prompt && audio) return cli_fail("ask", "give the question as -p or as --audio, not both");
    loom_threads_set((int)threads);
    loom_error err = {{0}};
    loom_image img = {0};
    loom_audio aud = {0};
    if (image_load_file(image, &img, &err)) return cli_fail(image, err.msg);
    if (audio && audio_load_file(audio, &aud, &err)) {
        image_free(&img);
        return cli_fail(audio, err.msg);
    }
    loom_infer *inf = NULL;
    loom_model *m = cli_load_model(model, CLI_NEED_IMAGE_IN | (audio ? CLI_NEED_AUDIO_IN : 0), &inf);
    if (!m) {
        image_free(&img);
        audio_free(&aud);
        return 1;
    }
    char out[4096];
    int rc = 0;
    infer_input in = {.image = &img, .audio = audio ? &aud : NULL, .prompt = prompt,
                      .prompt_len = prompt ? strlen(prompt) : 0,
                      .spoken = transcribe ? INFER_SPOKEN_TRANSCRIBE : INFER_SPOKEN_DIRECT,
                      .caption_first = caption_first, .contrast = contrast};
    if (infer_answer_input(inf, &in, INFER_ANSWER_MAX_TOKENS, out, sizeof out, &err) < 0)
        rc = cli_fail("ask", err.msg);
    else
        printf("%s\n", out);
    image_free(&img);
    audio_free(&aud);
    infer_free(inf);
    model_free(m);
    return rc;
}

/* ---- eval ------------------------------------------------------------------ */

typedef struct tally { int64_t right, total; } tally;

static double pct(tally t) { return t.total ? 100.0 * (double)t.right / (double)t.total : 0.0; }

typedef struct jpeg_buf { uint8_t *data; size_t len, cap; int failed; } jpeg_buf;

static void jpeg_write(void *ctx, void *data, int size) {
    jpeg_buf *b = ctx;
    if (b->failed || size <= 0) return;
    if (b->len + (size_t)size > b->cap) {
        size_t nc = (b->cap ? b->cap * 2 : 65536) + (size_t)size;
        uint8_t *nd = realloc(b->data, nc);
        if (!nd) {
            b->failed = 1;
            return;
        }
        b->data = nd;
        b->cap = nc;
    }
    memcpy(b->data + b->len, data, (size_t)size);
    b->len += (size_t)size;
}

static void eval_usage(FILE *f) {
    fprintf(f,
            "usage: loom eval [-m MODEL] [--n N] [--seed S] [--questions K] [-t N] [-v]\n"
            "       loom eval imagine [options]   (image generation; see loom eval imagine --help)\n"
            "       loom eval listen --speech FILE [options]   (audio input; see loom eval listen --help)\n"
            "\n"
            "Evaluates a model on held-out Shapes World scenes: for each canvas size (48, 64,\n"
            "80, 96) N scenes of the test split (seeds never used in training), N of the\n"
            "held-out combinations split (attribute combinations never seen in training),\n"
            "and the test scenes again as JPEG (quality 75) copies. Reports caption exact\n"
            "match and VQA accuracy (K questions per scene) per split, size and question type.\n"
            "\n"
            "  -m, --model FILE     model (default %s)\n"
            "  --n N                scenes per split and canvas size (default 50)\n"
            "  --seed S             first scene seed (default 0)\n"
            "  --questions K        questions per scene (default 3)\n"
            "  --caption-first      answer each question after the model's own caption\n"
            "                       (loom ask --caption-first)\n"
            "  --contrast A         captions and answers with image-contrastive decoding\n"
            "                       (loom caption/ask --contrast; default 0: off)\n"
            "  -t, --threads N      threads (default: all cores)\n"
            "  -v, --verbose        print every mistake\n",
            CLI_SHAPES_MODEL);
}

int cmd_eval(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "imagine")) return cmd_eval_imagine(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "listen")) return cmd_eval_listen(argc - 1, argv + 1);
    const char *model = CLI_SHAPES_MODEL;
    int64_t n = 50, seed = 0, nq = 3, threads = 0;
    int verbose = 0, caption_first = 0;
    float contrast = 0.0f;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STR, &model, 0, 0},
        {NULL, "--n", CLI_INT, &n, 1, 1000000},
        {NULL, "--seed", CLI_INT, &seed, 0, (double)(INT64_C(1) << 40)},
        {NULL, "--questions", CLI_INT, &nq, 0, 64},
        {NULL, "--caption-first", CLI_FLAG, &caption_first, 0, 0},
        {NULL, "--contrast", CLI_FLOAT, &contrast, CLI_CONTRAST_MIN, CLI_CONTRAST_MAX},
        {"-t", "--threads", CLI_INT, &threads, 0, 1024},
        {"-v", "--verbose", CLI_FLAG, &verbose, 0, 0},
        {0}};
    int n_pos = 0, prc = cli_parse("eval", argc, argv, opts, NULL, &n_pos);
    if (prc == 1) eval_usage(stdout);
    if (prc) return prc < 0 ? 1 : 0;
    loom_threads_set((int)threads);
    loom_infer *inf = NULL;
    loom_model *m = cli_load_model(model, CLI_NEED_IMAGE_IN, &inf);
    if (!m) return 1;

    static const int32_t sides[4] = {48, 64, 80, 96};
    enum { V_TEST, V_COMBOS, V_JPEG, N_VARIANTS };
    static const char *const vnames[N_VARIANTS] = {"test", "combos", "jpeg75"};
    tally cap[N_VARIANTS][4] = {{{0}}}, vqa[N_VARIANTS][4] = {{{0}}};
    tally qt[N_VARIANTS][SHAPES_N_QTYPES] = {{{0}}};
    uint8_t *rgb = malloc(96 * 96 * 3);
    jpeg_buf jb = {0};
    char out[4096], caption[SHAPES_CAPTION_MAX];
    loom_error err = {{0}};
    int rc = 0;
    if (!rgb) {
        rc = cli_fail("eval", "out of memory");
        goto done;
    }
    for (int var = 0; var < N_VARIANTS && !rc; var++)
        for (int si = 0; si < 4 && !rc; si++)
            for (int64_t i = 0; i < n && !rc; i++) {
                enum shapes_split split = var == V_COMBOS ? SHAPES_SPLIT_COMBOS : SHAPES_SPLIT_TEST;
                loom_rng rng, qrng;
                shapes_split_rng(&rng, split, (uint64_t)(seed + i) * 4 + (uint64_t)si);
                shapes_scene sc;
                shapes_scene_sample_split(&sc, split, &rng);
                if (shapes_scene_layout(&sc, sides[si], sides[si], &rng, &err) ||
                    shapes_render(&sc, rgb, &rng, &err) ||
                    shapes_caption(&sc, caption, sizeof caption) < 0) {
                    rc = cli_fail("eval", err.msg);
                    break;
                }
                loom_image img = {.width = sides[si], .height = sides[si], .rgb = rgb}, jimg = {0};
                const loom_image *use = &img;
                if (var == V_JPEG) {
                    jb.len = 0;
                    if (!stbi_write_jpg_to_func(jpeg_write, &jb, img.width, img.height, 3, rgb, 75) ||
                        jb.failed || image_load_memory(jb.data, jb.len, "jpeg copy", &jimg, &err)) {
                        rc = cli_fail("eval: jpeg", jb.failed ? "out of memory" : err.msg);
                        break;
                    }
                    use = &jimg;
                }
                const infer_input cin = {.image = use, .contrast = contrast};
                if (infer_answer_input(inf, &cin, INFER_ANSWER_MAX_TOKENS, out, sizeof out, &err) < 0) {
                    rc = cli_fail("eval", err.msg);
                    image_free(&jimg);
                    break;
                }
                int ok = strcmp(out, caption) == 0;
                cap[var][si].right += ok;
                cap[var][si].total++;
                if (!ok && verbose)
                    fprintf(stderr, "[%s %d] caption\n  want: %s\n  got:  %s\n", vnames[var], sides[si], caption, out);
                shapes_split_rng(&qrng, split, ((uint64_t)(seed + i) * 4 + (uint64_t)si) ^ 0x9e3779b9ull);
                for (int64_t k = 0; k < nq; k++) {
                    shapes_question q;
                    if (shapes_question_sample_mix(&sc, &qrng, &q)) continue;
                    const infer_input qin = {.image = use, .prompt = q.prompt, .prompt_len = strlen(q.prompt),
                                             .caption_first = caption_first, .contrast = contrast};
                    if (infer_answer_input(inf, &qin, INFER_ANSWER_MAX_TOKENS, out, sizeof out, &err) < 0) {
                        rc = cli_fail("eval", err.msg);
                        break;
                    }
                    ok = strcmp(out, q.answer) == 0;
                    vqa[var][si].right += ok;
                    vqa[var][si].total++;
                    qt[var][q.type].right += ok;
                    qt[var][q.type].total++;
                    if (!ok && verbose)
                        fprintf(stderr, "[%s %d] %s want \"%s\" got \"%s\"\n", vnames[var], sides[si],
                                q.prompt, q.answer, out);
                }
                image_free(&jimg);
            }
    if (!rc) {
        printf("loom eval: %s, %" PRId64 " scenes per split and size, %" PRId64 " questions each%s\n\n",
               model, n, nq, caption_first ? ", answered after the model's own caption" : "");
        if (contrast != 0.0f) printf("image-contrastive decoding, contrast %g\n\n", (double)contrast);
        printf("%-8s %-6s %12s %12s\n", "split", "size", "caption EM", "VQA");
        for (int var = 0; var < N_VARIANTS; var++) {
            tally ct = {0}, vt = {0};
            for (int si = 0; si < 4; si++) {
                printf("%-8s %-6d %11.1f%% %11.1f%%\n", vnames[var], sides[si], pct(cap[var][si]),
                       pct(vqa[var][si]));
                ct.right += cap[var][si].right; ct.total += cap[var][si].total;
                vt.right += vqa[var][si].right; vt.total += vqa[var][si].total;
            }
            printf("%-8s %-6s %11.1f%% %11.1f%%\n", vnames[var], "all", pct(ct), pct(vt));
        }
        printf("\n%-12s", "VQA by type");
        for (int var = 0; var < N_VARIANTS; var++) printf(" %10s", vnames[var]);
        printf("\n");
        for (int t = 0; t < SHAPES_N_QTYPES; t++) {
            printf("%-12s", shapes_qtype_names[t]);
            for (int var = 0; var < N_VARIANTS; var++) printf(" %9.1f%%", pct(qt[var][t]));
            printf("\n");
        }
    }
done:
    free(jb.data);
    free(rgb);
    infer_free(inf);
    model_free(m);
    return rc;
}
