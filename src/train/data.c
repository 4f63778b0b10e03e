#include "train/data.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *read_whole_file(const char *path, size_t *len, loom_error *err) {
    struct stat st;
    if (stat(path, &st) != 0) return loom_error_set(err, "%s: %s", path, strerror(errno)), NULL;
    if (S_ISDIR(st.st_mode)) return loom_error_set(err, "%s: is a directory", path), NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return loom_error_set(err, "%s: %s", path, strerror(errno)), NULL;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (n == cap) {
            if (cap >= DATA_MAX_FILE_BYTES) {
                free(buf);
                fclose(f);
                return loom_error_set(err, "%s: larger than %zu bytes", path, DATA_MAX_FILE_BYTES),
                       NULL;
            }
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) return loom_error_set(err, "%s: out of memory", path), NULL;
    if (bad) {
        free(buf);
        return loom_error_set(err, "%s: read error", path), NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int raw_push(raw_corpus *rc, size_t *cap, const char *p, size_t pl, const char *t, size_t tl,
                    loom_error *err) {
    if (rc->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 1024;
        char **np = realloc(rc->prompt, nc * sizeof *np);
        if (np) rc->prompt = np;
        size_t *npl = realloc(rc->prompt_len, nc * sizeof *npl);
        if (npl) rc->prompt_len = npl;
        char **nt = realloc(rc->text, nc * sizeof *nt);
        if (nt) rc->text = nt;
        size_t *ntl = realloc(rc->text_len, nc * sizeof *ntl);
        if (ntl) rc->text_len = ntl;
        if (!np || !npl || !nt || !ntl) return loom_error_set(err, "out of memory");
        *cap = nc;
    }
    char *pc = NULL, *tc = malloc(tl + 1);
    if (p) pc = malloc(pl + 1);
    if (!tc || (p && !pc)) {
        free(tc);
        free(pc);
        return loom_error_set(err, "out of memory");
    }
    memcpy(tc, t, tl);
    tc[tl] = '\0';
    if (p) {
        memcpy(pc, p, pl);
        pc[pl] = '\0';
    }
    rc->prompt[rc->n] = pc;
    rc->prompt_len[rc->n] = p ? pl : 0;
    rc->text[rc->n] = tc;
    rc->text_len[rc->n] = tl;
    rc->n++;
    return 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int data_is_jsonl_path(const char *path) {
    return ends_with(path, ".jsonl") || ends_with(path, ".json");
}

void data_manifest_path(const char *manifest, const char *entry, char *out, size_t cap) {
    const char *slash = strrchr(manifest, '/');
    const int dir_len = entry[0] == '/' || !slash ? 0 : (int)(slash - manifest + 1);
    snprintf(out, cap, "%.*s%s", dir_len, manifest, entry);
}

int raw_corpus_load(const char *path, raw_corpus *rc, loom_error *err) {
    memset(rc, 0, sizeof *rc);
    size_t len, cap = 0;
    char *buf = read_whole_file(path, &len, err);
    if (!buf) return -1;
    int jsonl = data_is_jsonl_path(path);
    size_t line_no = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && buf[j] != '\n') j++;
        line_no++;
        size_t e = j;
        if (e > i && buf[e - 1] == '\r') e--;
        if (e > i) {
            if (!jsonl) {
                if (raw_push(rc, &cap, NULL, 0, buf + i, e - i, err)) goto fail;
            } else {
                cJSON *o = cJSON_ParseWithLength(buf + i, e - i);
                const cJSON *t = o ? cJSON_GetObjectItemCaseSensitive(o, "text") : NULL;
                const cJSON *p = o ? cJSON_GetObjectItemCaseSensitive(o, "prompt") : NULL;
                const cJSON *a = o ? cJSON_GetObjectItemCaseSensitive(o, "answer") : NULL;
                int rcode;
                if (!o || !cJSON_IsObject(o)) {
                    rcode = loom_error_set(err, "%s:%zu: not a JSON object", path, line_no);
                } else if (cJSON_IsString(p) && cJSON_IsString(a)) {
                    rcode = raw_push(rc, &cap, p->valuestring, strlen(p->valuestring),
                                     a->valuestring, strlen(a->valuestring), err);
                } else if (cJSON_IsString(t)) {
                    rcode = raw_push(rc, &cap, NULL, 0, t->valuestring, strlen(t->valuestring), err);
                } else {
                    rcode = loom_error_set(err,
                                           "%s:%zu: want {\"text\": ...} or {\"prompt\": ..., "
                                           "\"answer\": ...} with string values",
                                           path, line_no);
                }
                cJSON_Delete(o);
                if (rcode) goto fail;
            }
        }
        i = j + 1;
    }
    free(buf);
    if (rc->n == 0) {
        raw_corpus_free(rc);
        return loom_error_set(err, "%s: no records", path);
    }
    return 0;
fail:
    free(buf);
    raw_corpus_free(rc);
    return -1;
}

void raw_corpus_free(raw_corpus *rc) {
    for (size_t i = 0; i < rc->n; i++) {
        free(rc->prompt[i]);
        free(rc->text[i]);
    }
    free(rc->prompt);
    free(rc->prompt_len);
    free(rc->text);
    free(rc->text_len);
    memset(rc, 0, sizeof *rc);
}

/* Makes room for extra more tokens. */
static int reserve(corpus *c, size_t *cap, size_t extra, loom_error *err) {
    size_t need = c->n_tokens + extra;
    if (need > *cap) {
        size_t nc = *cap ? *cap : 4096;
        while (nc < need) nc *= 2;
        int32_t *nt = realloc(c->tokens, nc * sizeof *nt);
        if (!nt) return loom_error_set(err, "out of memory");
        c->tokens = nt;
        *cap = nc;
    }
    return 0;
}

/* Appends the encoding of text to c->tokens (BPE never yields more ids than bytes). */
static int encode_append(corpus *c, size_t *cap, const tokenizer *tok, const char *text,
                         size_t len, loom_error *err) {
    if (reserve(c, cap, len + 1, err)) return -1;
    int64_t n = tokenizer_encode(tok, text, len, c->tokens + c->n_tokens, *cap - c->n_tokens, NULL,
                                 err);
    if (n < 0) return -1;
    c->n_tokens += (size_t)n;
    return 0;
}

static int push_token(corpus *c, size_t *cap, int32_t id, loom_error *err) {
    if (reserve(c, cap, 1, err)) return -1;
    c->tokens[c->n_tokens++] = id;
    return 0;
}

int corpus_build(corpus *c, const raw_corpus *rc, size_t begin, size_t end, const tokenizer *tok,
                 int32_t max_len, loom_error *err) {
    memset(c, 0, sizeof *c);
    size_t n = end - begin, cap = 0;
    c->off = malloc((n ? n : 1) * sizeof *c->off);
    c->len = malloc((n ? n : 1) * sizeof *c->len);
    c->loss_from = malloc((n ? n : 1) * sizeof *c->loss_from);
    if (!c->off || !c->len || !c->loss_from) {
        corpus_free(c);
        return loom_error_set(err, "out of memory");
    }
    /* Decided before the loop, so records too long for the context are
     * skipped wherever they stand relative to the first prompt record. */
    c->packed = 1;
    for (size_t r = begin; r < end; r++)
        if (rc->prompt[r]) c->packed = 0;
    size_t too_long = 0;
    for (size_t r = begin; r < end; r++) {
        size_t start = c->n_tokens;
        int32_t loss_from = 1;
        if (push_token(c, &cap, TOKEN_BOS, err)) goto fail;
        if (rc->prompt[r]) {
            if (encode_append(c, &cap, tok, rc->prompt[r], rc->prompt_len[r], err)) goto fail;
            if (push_token(c, &cap, TOKEN_SEP, err)) goto fail;
            loss_from = (int32_t)(c->n_tokens - start);
        }
        if (encode_append(c, &cap, tok, rc->text[r], rc->text_len[r], err)) goto fail;
        if (push_token(c, &cap, TOKEN_EOS, err)) goto fail;
        size_t len = c->n_tokens - start;
        if (!c->packed && max_len > 0 && len > (size_t)max_len + 1) {
            c->n_tokens = start;  /* a record longer than the context: skipped */
            too_long++;
            continue;
        }
        c->off[c->n] = start;
        c->len[c->n] = (int32_t)len;
        c->loss_from[c->n] = loss_from;
        c->n++;
    }
    if (too_long) fprintf(stderr, "loom: data: skipped %zu records longer than %d tokens\n", too_long, max_len);
    if (c->n == 0) {
        corpus_free(c);
        return loom_error_set(err, "no usable records");
    }
    if (c->packed && max_len > 0 && c->n_tokens < (size_t)max_len + 1) {
        corpus_free(c);
        return loom_error_set(err, "corpus has %zu tokens, fewer than one window of %d", c->n_tokens,
                              max_len + 1);
    }
    return 0;
fail:
    corpus_free(c);
    return -1;
}

void corpus_free(corpus *c) {
    free(c->tokens);
    free(c->off);
    free(c->len);
    free(c->loss_from);
    memset(c, 0, sizeof *c);
}

static void fill_window(const corpus *c, size_t start, int32_t T, int32_t *tokens, int32_t *targets) {
    for (int32_t t = 0; t < T; t++) {
        tokens[t] = c->tokens[start + t];
        targets[t] = c->tokens[start + t + 1];
    }
}

static void fill_record(const corpus *c, size_t r, int32_t T, int32_t *tokens, int32_t *targets) {
    const int32_t *rec = c->tokens + c->off[r];
    int32_t n = c->len[r] - 1;  /* positions with a next token */
    if (n > T) n = T;
    for (int32_t t = 0; t < T; t++) {
        if (t < n) {
            tokens[t] = rec[t];
            targets[t] = t + 1 >= c->loss_from[r] ? rec[t + 1] : -1;
        } else {
            tokens[t] = TOKEN_PAD;
            targets[t] = -1;
        }
    }
}

void corpus_sample(const corpus *c, loom_rng *rng, int32_t B, int32_t T, int32_t *tokens,
                   int32_t *targets) {
    for (int32_t b = 0; b < B; b++) {
        if (c->packed) {
            size_t range = c->n_tokens - (size_t)T;  /* starts in [0, n_tokens - T - 1] */
            size_t start = (size_t)(rng_u64(rng) % range);
            fill_window(c, start, T, tokens + (size_t)b * T, targets + (size_t)b * T);
        } else {
            size_t r = (size_t)(rng_u64(rng) % c->n);
            fill_record(c, r, T, tokens + (size_t)b * T, targets + (size_t)b * T);
        }
    }
}

void corpus_batch_at(const corpus *c, size_t i, int32_t B, int32_t T, int32_t *tokens,
                     int32_t *targets) {
    for (int32_t b = 0; b < B; b++) {
        size_t k = i * (size_t)B + (size_t)b;
        if (c->packed) {
            size_t nwin = (c->n_tokens - 1) / (size_t)T;
            size_t start = (k % nwin) * (size_t)T;
            fill_window(c, start, T, tokens + (size_t)b * T, targets + (size_t)b * T);
        } else {
            fill_record(c, k % c->n, T, tokens + (size_t)b * T, targets + (size_t)b * T);
        }
    }
}
