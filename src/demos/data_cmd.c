/* loom data: writes generated corpora.
 *
 *   loom data shapes-text --n N [--seed S] [-o FILE]   Shapes World captions, one per line
 *   loom data shapes --n N --out DIR [options]         Shapes World images + JSONL manifest
 *   loom data speech --n N --out DIR [options]         spoken prompts and questions (data_speech_cmd.c)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cjson/cJSON.h>
#include <stb_image_write.h>

#include "cli.h"
#include "data/shapes.h"

static void data_usage(FILE *f) {
    fprintf(f,
            "usage: loom data shapes-text --n N [--seed S] [-o FILE]\n"
            "       loom data shapes --n N --out DIR [--seed S] [--split train|test|combos]\n"
            "                        [--sizes 48,64,80,96 | --size 64] [--questions K] [--jpeg Q]\n"
            "       loom data speech --n N --out DIR [options]   (see loom data speech --help)\n"
            "\n"
            "Shapes World (../shared/DESIGN.md), deterministic from the seed: the same\n"
            "arguments give the same bytes.\n"
            "\n"
            "shapes-text   N captions of random scenes, one per line, to FILE (default:\n"
            "              standard output).\n"
            "shapes        N images, DIR/images/000000.png ... (DIR is created), and\n"
            "              DIR/manifest.jsonl: per image one caption record\n"
            "                {\"image\":\"images/000000.png\",\"prompt\":\"\",\"answer\":\"<caption>\",\n"
            "                 \"task\":\"caption\",\"split\":\"train\",\"width\":64,\"height\":64}\n"
            "              then K question records (\"task\":\"vqa\", \"qtype\":\"color\" ...).\n"
            "              Image paths are relative to the manifest's directory.\n"
            "  --split S       train (default): no held-out color-shape combination;\n"
            "                  test: the train distribution from other random streams;\n"
            "                  combos: every scene has a held-out combination (orange circle,\n"
            "                  cyan square, magenta triangle, white diamond, yellow cross)\n"
            "  --sizes LIST    canvas width and height each drawn from LIST (default 64)\n"
            "  --size N        width = height = N (same as --sizes N)\n"
            "  --questions K   question records per image, 0..64 (default 0)\n"
            "  --jpeg Q        write JPEG at quality Q (1..100) instead of PNG\n");
}

/* ---- shapes-text -------------------------------------------------------------- */

static int data_shapes_text(int argc, char **argv) {
    int64_t n = -1, seed = 1;
    const char *out = NULL;
    const cli_opt opts[] = {
        {NULL, "--n", CLI_INT, &n, 1, (double)(INT64_C(1) << 32)},
        {"-s", "--seed", CLI_INT, &seed, 0, 9e15},
        {"-o", "--out", CLI_STR, &out, 0, 0},
        {0}};
    int n_pos = 0, prc = cli_parse("data", argc - 1, argv + 1, opts, NULL, &n_pos);
    if (prc == 1) data_usage(stdout);
    if (prc) return prc < 0 ? 1 : 0;
    if (n < 0) return cli_fail("data", "--n N is required");
    FILE *f = out ? fopen(out, "w") : stdout;
    if (!f) return cli_fail(out, strerror(errno));
    loom_rng rng;
    rng_seed(&rng, (uint64_t)seed);
    char line[SHAPES_CAPTION_MAX];
    for (int64_t i = 0; i < n; i++) {
        shapes_scene s;
        shapes_scene_sample(&rng, &s);
        if (shapes_caption(&s, line, sizeof line) < 0) return cli_fail("data", "caption too long");
        fprintf(f, "%s\n", line);
    }
    if ((out && fclose(f) != 0) || (!out && fflush(f) != 0))
        return cli_fail(out ? out : "stdout", "write failed");
    return 0;
}

/* ---- shapes ------------------------------------------------------------------- */

enum { DATA_MAX_SIZES = 16, DATA_MAX_QUESTIONS = 64, DATA_MAX_SIDE = 1024, DATA_PATH_MAX = 4096 };

/* mkdir -p: 0, or -1 with errno set. */
static int make_dirs(const char *path) {
    char buf[DATA_PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        errno = n ? ENAMETOOLONG : ENOENT;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        buf[i] = c;
    }
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* "48,64" -> sizes; -1 after printing the reason. */
static int parse_sizes(const char *flag, const char *v, int32_t *sizes, int *n_sizes) {
    char buf[256];
    if (strlen(v) >= sizeof buf) return cli_fail(flag, "list too long") ? -1 : -1;
    strcpy(buf, v);
    *n_sizes = 0;
    for (char *tok = buf, *next; tok; tok = next) {
        next = strchr(tok, ',');
        if (next) *next++ = '\0';
        if (*n_sizes == DATA_MAX_SIZES) return cli_fail(flag, "more than 16 sizes") ? -1 : -1;
        int64_t x;
        if (cli_int(flag, tok, SHAPES_MIN_SIDE, DATA_MAX_SIDE, &x)) return -1;
        sizes[(*n_sizes)++] = (int32_t)x;
    }
    return 0;
}

/* Appends one JSON object as a line; 0 or -1. */
static int write_record(FILE *f, const char *image, const char *prompt, const char *answer,
                        const char *qtype, const char *split, int32_t W, int32_t H) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return -1;
    cJSON_AddStringToObject(j, "image", image);
    cJSON_AddStringToObject(j, "prompt", prompt);
    cJSON_AddStringToObject(j, "answer", answer);
    cJSON_AddStringToObject(j, "task", qtype ? "vqa" : "caption");
    if (qtype) cJSON_AddStringToObject(j, "qtype", qtype);
    cJSON_AddStringToObject(j, "split", split);
    cJSON_AddNumberToObject(j, "width", W);
    cJSON_AddNumberToObject(j, "height", H);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) return -1;
    int rc = fputs(s, f) < 0 || fputc('\n', f) == EOF ? -1 : 0;
    cJSON_free(s);
    return rc;
}

static int data_shapes(int argc, char **argv) {
    int64_t n = -1, seed = 1, n_questions = 0, jpeg = 0;
    const char *out = NULL;
    enum shapes_split split = SHAPES_SPLIT_TRAIN;
    int32_t sizes[DATA_MAX_SIZES] = {64};
    int n_sizes = 1;
    const char *split_arg = NULL, *sizes_arg = NULL, *size_arg = NULL;
    const cli_opt opts[] = {
        {NULL, "--n", CLI_INT, &n, 1, (double)(INT64_C(1) << 32)},
        {"-s", "--seed", CLI_INT, &seed, 0, 9e15},
        {"-o", "--out", CLI_STR, &out, 0, 0},
        {NULL, "--split", CLI_STR, &split_arg, 0, 0},
        {NULL, "--sizes", CLI_STR, &sizes_arg, 0, 0},
        {NULL, "--size", CLI_STR, &size_arg, 0, 0},
        {NULL, "--questions", CLI_INT, &n_questions, 0, DATA_MAX_QUESTIONS},
        {NULL, "--jpeg", CLI_INT, &jpeg, 1, 100},
        {0}};
    int n_pos = 0, prc = cli_parse("data", argc - 1, argv + 1, opts, NULL, &n_pos);
    if (prc == 1) data_usage(stdout);
    if (prc) return prc < 0 ? 1 : 0;
    if (split_arg) {
        int k = 0;
        while (k < SHAPES_N_SPLITS && strcmp(split_arg, shapes_split_names[k])) k++;
        if (k == SHAPES_N_SPLITS) {
            fprintf(stderr, "loom: --split: \"%s\" is not train, test or combos\n", split_arg);
            return 1;
        }
        split = (enum shapes_split)k;
    }
    if (sizes_arg && parse_sizes("--sizes", sizes_arg, sizes, &n_sizes)) return 1;
    if (size_arg) {
        if (parse_sizes("--size", size_arg, sizes, &n_sizes)) return 1;
        if (n_sizes != 1) return cli_fail("--size", "one size expected (see --sizes)");
    }
    if (n < 0) return cli_fail("data", "--n N is required");
    if (!out) return cli_fail("data", "--out DIR is required");

    char images_dir[DATA_PATH_MAX], manifest[DATA_PATH_MAX], path[DATA_PATH_MAX];
    if (snprintf(images_dir, sizeof images_dir, "%s/images", out) >= (int)sizeof images_dir ||
        snprintf(manifest, sizeof manifest, "%s/manifest.jsonl", out) >= (int)sizeof manifest)
        return cli_fail(out, "path too long");
    if (make_dirs(out) || make_dirs(images_dir)) return cli_fail(out, strerror(errno));
    FILE *f = fopen(manifest, "w");
    if (!f) return cli_fail(manifest, strerror(errno));

    /* Scenes, sizes and rendering come from the (split, seed) stream; questions
     * from a second stream derived from it, so --questions never changes the
     * images. */
    loom_rng rng, qrng, tmp;
    shapes_split_rng(&rng, split, (uint64_t)seed);
    tmp = rng;
    rng_seed(&qrng, rng_u64(&tmp) ^ UINT64_C(0x5155455354494f4e));

    const char *split_name = shapes_split_names[split];
    char asked[DATA_MAX_QUESTIONS][SHAPES_PROMPT_MAX]; /* this image's prompts so far */
    int32_t side = 0;
    for (int k = 0; k < n_sizes; k++) side = sizes[k] > side ? sizes[k] : side;
    uint8_t *rgb = malloc((size_t)side * (size_t)side * 3); /* side <= DATA_MAX_SIDE */
    if (!rgb) {
        fclose(f);
        return cli_fail("data", "out of memory");
    }
    int rc = 0;
    loom_error err = {{0}};
    for (int64_t i = 0; i < n && rc == 0; i++) {
        int32_t W = sizes[rng_below(&rng, (uint32_t)n_sizes)];
        int32_t H = sizes[rng_below(&rng, (uint32_t)n_sizes)];
        shapes_scene s;
        shapes_scene_sample_split(&s, split, &rng);
        if (shapes_scene_layout(&s, W, H, &rng, &err) || shapes_render(&s, rgb, &rng, &err)) {
            rc = cli_fail("data", err.msg);
            break;
        }
        char image[64], caption[SHAPES_CAPTION_MAX];
        snprintf(image, sizeof image, "images/%06" PRId64 ".%s", i, jpeg ? "jpg" : "png");
        if (snprintf(path, sizeof path, "%s/%s", out, image) >= (int)sizeof path) {
            rc = cli_fail(out, "path too long");
            break;
        }
        errno = 0;
        int ok = jpeg ? stbi_write_jpg(path, W, H, 3, rgb, (int)jpeg)
                      : stbi_write_png(path, W, H, 3, rgb, (int)W * 3);
        if (!ok) {
            rc = cli_fail(path, errno ? strerror(errno) : "cannot write image");
            break;
        }
        if (shapes_caption(&s, caption, sizeof caption) < 0 ||
            write_record(f, image, "", caption, NULL, split_name, W, H)) {
            rc = cli_fail(manifest, "write failed");
            break;
        }
        /* K questions, distinct prompts where the scene allows (every scene
         * offers dozens, so a few retries suffice) */
        for (int64_t k = 0; k < n_questions && rc == 0; k++) {
            shapes_question q;
            for (int attempt = 0;; attempt++) {
                if (shapes_question_sample_mix(&s, &qrng, &q)) {
                    rc = cli_fail("data", "no question is askable about a scene");
                    break;
                }
                int dup = 0;
                for (int64_t p = 0; p < k && !dup; p++) dup = !strcmp(asked[p], q.prompt);
                if (!dup || attempt == 31) break;
            }
            if (rc) break;
            memcpy(asked[k], q.prompt, sizeof q.prompt);
            if (write_record(f, image, q.prompt, q.answer, shapes_qtype_names[q.type], split_name, W, H))
                rc = cli_fail(manifest, "write failed");
        }
    }
    free(rgb);
    if (fclose(f) != 0 && rc == 0) rc = cli_fail(manifest, strerror(errno));
    return rc;
}

int cmd_data(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        data_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    if (!strcmp(argv[1], "shapes-text")) return data_shapes_text(argc, argv);
    if (!strcmp(argv[1], "shapes")) return data_shapes(argc, argv);
    if (!strcmp(argv[1], "speech")) return cmd_data_speech(argc, argv);
    fprintf(stderr, "loom: data: unknown kind \"%s\" (see loom data --help)\n", argv[1]);
    return 1;
}
