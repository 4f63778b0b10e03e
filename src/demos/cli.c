/* cli.c: helpers shared by the loom command's subcommands (cli.h). */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/infer.h"
#include "model/model.h"

int cli_fail(const char *what, const char *why) {
    /* the library names the file in its own messages: "x.png: empty file" is
     * printed once, not as "x.png: x.png: empty file" */
    size_t n = strlen(what);
    if (n > 0 && strncmp(why, what, n) == 0 && why[n] == ':') fprintf(stderr, "loom: %s\n", why);
    else fprintf(stderr, "loom: %s: %s\n", what, why);
    return 1;
}

int cli_int(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) {
        fprintf(stderr, "loom: %s: not an integer: \"%s\"\n", flag, s);
        return -1;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "loom: %s: %lld is out of range [%" PRId64 ", %" PRId64 "]\n", flag, v, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_spoken(const char *s, int *transcribe) {
    if (!strcmp(s, "transcribe") || !strcmp(s, "direct")) {
        *transcribe = s[0] == 't';
        return 0;
    }
    fprintf(stderr, "loom: --spoken: want transcribe or direct, not \"%s\"\n", s);
    return -1;
}

int cli_float(const char *flag, const char *s, double lo, double hi, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) {
        fprintf(stderr, "loom: %s: not a number: \"%s\"\n", flag, s);
        return -1;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "loom: %s: %g is out of range [%g, %g]\n", flag, v, lo, hi);
        return -1;
    }
    *out = (float)v;
    return 0;
}

static const cli_opt *find_opt(const cli_opt *opts, const char *a) {
    for (const cli_opt *o = opts; o->long_name || o->short_name; o++)
        if ((o->long_name && !strcmp(a, o->long_name)) || (o->short_name && !strcmp(a, o->short_name)))
            return o;
    return NULL;
}

int cli_parse(const char *cmd, int argc, char **argv, const cli_opt *opts, char **pos,
              int *n_pos) {
    *n_pos = 0;
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            if (!pos) {
                fprintf(stderr, "loom: %s: unexpected argument \"%s\" (see loom %s --help)\n", cmd, a, cmd);
                return -1;
            }
            pos[(*n_pos)++] = argv[i];
            continue;
        }
        if (!strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return 1;
        const cli_opt *o = find_opt(opts, a);
        if (!o) {
            fprintf(stderr, "loom: %s: unknown option %s (see loom %s --help)\n", cmd, a, cmd);
            return -1;
        }
        if (o->kind == CLI_FLAG) {
            *(int *)o->dst = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "loom: %s: %s needs a value (see loom %s --help)\n", cmd, a, cmd);
            return -1;
        }
        const char *v = argv[++i];
        switch (o->kind) {
        case CLI_STR: *(const char **)o->dst = v; break;
        case CLI_INT:
            if (cli_int(a, v, (int64_t)o->lo, (int64_t)o->hi, (int64_t *)o->dst)) return -1;
            break;
        case CLI_FLOAT:
            if (cli_float(a, v, o->lo, o->hi, (float *)o->dst)) return -1;
            break;
        default: break;
        }
    }
    return 0;
}

loom_model *cli_load_model(const char *path, int need, loom_infer **inf) {
    loom_error err = {{0}};
    if (inf) *inf = NULL;
    loom_model *m = model_load(path, &err);
    if (!m) {
        cli_fail(path, err.msg);
        return NULL;
    }
    const char *why = NULL;
    if ((need & CLI_NEED_IMAGE_IN) && m->img.patch_size <= 0)
        why = "this model has no image input (train it on image data)";
    else if ((need & CLI_NEED_IMAGE_OUT) && m->gen.n_codes <= 0)
        why = "this model has no image output (it was trained without a VQ head)";
    else if ((need & CLI_NEED_AUDIO_IN) && m->aud.stack <= 0)
        why = "this model has no audio input (train it with --speech)";
    else if (inf && !(*inf = infer_new(m, &err)))
        why = err.msg;
    if (why) {
        cli_fail(path, why);
        model_free(m);
        return NULL;
    }
    return m;
}
