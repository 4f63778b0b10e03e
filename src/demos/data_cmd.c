/* loom data: writes generated corpora.
 *
 *   loom data shapes-text --n N [--seed S] [-o FILE]   Shapes World captions, one per line
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "data/shapes.h"

static void data_usage(FILE *f) {
    fprintf(f,
            "usage: loom data shapes-text --n N [--seed S] [-o FILE]\n"
            "\n"
            "Writes N captions of random Shapes World scenes (../shared/DESIGN.md), one per\n"
            "line, to FILE (default: standard output). The same seed gives the same bytes.\n");
}

int cmd_data(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        data_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    if (strcmp(argv[1], "shapes-text") != 0) {
        fprintf(stderr, "loom: data: unknown kind \"%s\" (see loom data --help)\n", argv[1]);
        return 1;
    }
    int64_t n = -1, seed = 1;
    const char *out = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            data_usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "loom: data: %s needs a value\n", a);
            return 1;
        }
        i++;
        if (!strcmp(a, "--n")) {
            if (cli_int(a, v, 1, INT64_C(1) << 32, &n)) return 1;
        } else if (!strcmp(a, "--seed") || !strcmp(a, "-s")) {
            if (cli_int(a, v, 0, INT64_MAX, &seed)) return 1;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
            out = v;
        } else {
            fprintf(stderr, "loom: data: unknown option %s (see loom data --help)\n", a);
            return 1;
        }
    }
    if (n < 0) return cli_fail("data", "--n N is required");
    FILE *f = out ? fopen(out, "w") : stdout;
    if (!f) return cli_fail(out, strerror(errno));
    loom_rng rng;
    rng_seed(&rng, (uint64_t)seed);
    char line[512];
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
