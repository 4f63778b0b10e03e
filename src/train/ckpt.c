#include "train/ckpt.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void ckpt_state_format(char *buf, int64_t step, const loom_rng *rng) {
    snprintf(buf, CKPT_STATE_MAX,
             "{\"step\":%" PRId64 ",\"rng\":[\"%016" PRIx64 "\",\"%016" PRIx64 "\",\"%016" PRIx64
             "\",\"%016" PRIx64 "\"]}",
             step, rng->s[0], rng->s[1], rng->s[2], rng->s[3]);
}

int ckpt_state_parse(const char *json, const char *path, int64_t *step, loom_rng *rng,
                     loom_error *err) {
    cJSON *s = json ? cJSON_Parse(json) : NULL;
    const cJSON *st = s ? cJSON_GetObjectItemCaseSensitive(s, "step") : NULL;
    const cJSON *r = s ? cJSON_GetObjectItemCaseSensitive(s, "rng") : NULL;
    int rc = 0;
    if (!cJSON_IsNumber(st) || st->valuedouble < 0 || st->valuedouble > 9e15 || !cJSON_IsArray(r) ||
        cJSON_GetArraySize(r) != 4) {
        rc = loom_error_set(err, "%s: missing or bad trainer state", path);
    } else {
        *step = (int64_t)st->valuedouble;
        for (int i = 0; i < 4 && !rc; i++) {
            const cJSON *h = cJSON_GetArrayItem(r, i);
            char *end = NULL;
            if (cJSON_IsString(h) && strlen(h->valuestring) == 16)
                rng->s[i] = strtoull(h->valuestring, &end, 16);
            if (!end || *end) rc = loom_error_set(err, "%s: bad rng state", path);
        }
    }
    cJSON_Delete(s);
    return rc;
}

int ckpt_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int ckpt_path_join(char *out, size_t cap, const char *base, const char *suffix) {
    return snprintf(out, cap, "%s%s", base, suffix) >= (int)cap ? -1 : 0;
}

double ckpt_short_float(float x) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.7g", (double)x);
    return strtod(buf, NULL);
}

int ckpt_log_truncate(const char *path, int64_t step, loom_error *err) {
    FILE *in = fopen(path, "rb");
    if (!in) return 0;
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        fclose(in);
        return loom_error_set(err, "%s: path too long", path);
    }
    FILE *out = fopen(tmp, "wb");
    if (!out) {
        fclose(in);
        return loom_error_set(err, "%s: cannot write", tmp);
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int first = 1, ok = 1;
    while ((n = getline(&line, &cap, in)) >= 0) {
        char *end;
        long long s = strtoll(line, &end, 10);
        if (first || end == line || *end != ',' || s <= step) ok &= fwrite(line, 1, (size_t)n, out) == (size_t)n;
        first = 0;
    }
    free(line);
    fclose(in);
    ok &= fflush(out) == 0;
    ok &= fclose(out) == 0;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return loom_error_set(err, "%s: cannot rewrite the log", path);
    }
    return 0;
}
