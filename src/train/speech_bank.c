#include "train/speech_bank.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encoders/audio_enc.h"
#include "train/data.h"

static char *dup_or_null(const cJSON *v) {
    return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
}

/* (text, index) pairs sorted by text, then index: qsort needs no context. */
typedef struct text_index {
    const char *text;
    size_t i;
} text_index;

static int by_text_cmp(const void *a, const void *b) {
    const text_index *x = a, *y = b;
    int c = strcmp(x->text, y->text);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* Parses one manifest line into u (audio not yet loaded). */
static int parse_line(const char *line, size_t len, speech_utt *u, loom_error *err) {
    memset(u, 0, sizeof *u);
    cJSON *o = cJSON_ParseWithLength(line, len);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return loom_error_set(err, "not a JSON object");
    }
    const cJSON *audio = cJSON_GetObjectItemCaseSensitive(o, "audio");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(o, "text");
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(o, "task");
    const cJSON *scene = cJSON_GetObjectItemCaseSensitive(o, "scene");
    const cJSON *reply = cJSON_GetObjectItemCaseSensitive(o, "reply");
    const cJSON *voice = cJSON_GetObjectItemCaseSensitive(o, "voice");
    int rc = 0;
    if (!cJSON_IsString(audio) || !cJSON_IsString(text) || (task && !cJSON_IsString(task)) ||
        (scene && !cJSON_IsString(scene)) || (reply && !cJSON_IsString(reply)) ||
        (voice && !cJSON_IsString(voice))) {
        rc = loom_error_set(err, "want strings \"audio\" and \"text\", optional strings \"task\", "
                            "\"scene\", \"reply\", \"voice\"");
    } else {
        u->task = SPEECH_TASK_OTHER;
        if (task && strcmp(task->valuestring, "prompt") == 0) u->task = SPEECH_TASK_PROMPT;
        if (task && strcmp(task->valuestring, "question") == 0) u->task = SPEECH_TASK_QUESTION;
        if (u->task == SPEECH_TASK_QUESTION && (!scene || !reply))
            rc = loom_error_set(err, "a question needs \"scene\" and \"reply\"");
        else if (u->task == SPEECH_TASK_PROMPT && !scene)
            rc = loom_error_set(err, "a prompt needs \"scene\"");
        u->text = strdup(text->valuestring);
        u->path = strdup(audio->valuestring);
        u->scene = dup_or_null(scene);
        u->reply = dup_or_null(reply);
        u->voice = dup_or_null(voice);
        if (!rc && (!u->text || !u->path || (scene && !u->scene) || (reply && !u->reply) ||
                    (voice && !u->voice)))
            rc = loom_error_set(err, "out of memory");
    }
    cJSON_Delete(o);
    return rc;
}

static void utt_free(speech_utt *u) {
    free(u->text), free(u->scene), free(u->reply), free(u->voice), free(u->path);
    free(u->frames);
    audio_free(&u->audio);
}

int speech_bank_load(speech_bank *b, const char *manifest, loom_error *err) {
    memset(b, 0, sizeof *b);
    FILE *f = fopen(manifest, "rb");
    if (!f) return loom_error_set(err, "%s: cannot open", manifest);
    size_t cap = 0, line_no = 0, line_cap = 0;
    char *line = NULL;
    ssize_t got;
    int rc = 0;
    while (!rc && (got = getline(&line, &line_cap, f)) >= 0) {
        line_no++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
        if (got == 0) continue;
        if (b->n == cap) {
            cap = cap ? cap * 2 : 1024;
            speech_utt *nu = realloc(b->u, cap * sizeof *nu);
            if (!nu) {
                rc = loom_error_set(err, "out of memory");
                break;
            }
            b->u = nu;
        }
        speech_utt *u = &b->u[b->n];
        if (parse_line(line, (size_t)got, u, err)) {
            utt_free(u);
            rc = loom_error_wrap(err, "%s:%zu", manifest, line_no);
            break;
        }
        char full[8192];
        data_manifest_path(manifest, u->path, full, sizeof full);
        if (audio_load_file(full, &u->audio, err)) {
            utt_free(u);
            rc = loom_error_wrap(err, "%s:%zu", manifest, line_no);
            break;
        }
        b->seconds += (double)u->audio.n / AUDIO_RATE;
        b->n++;
    }
    free(line);
    fclose(f);
    if (!rc && b->n == 0) rc = loom_error_set(err, "%s: no records", manifest);
    text_index *ti = rc ? NULL : malloc(b->n * sizeof *ti);
    if (!rc && (!ti || !(b->by_text = malloc(b->n * sizeof *b->by_text))))
        rc = loom_error_set(err, "out of memory");
    if (rc) {
        free(ti);
        speech_bank_free(b);
        return -1;
    }
    for (size_t i = 0; i < b->n; i++) ti[i] = (text_index){b->u[i].text, i};
    qsort(ti, b->n, sizeof *ti, by_text_cmp);
    for (size_t i = 0; i < b->n; i++) b->by_text[i] = ti[i].i;
    free(ti);
    return 0;
}

int speech_bank_prepare(speech_bank *b, int32_t stack, loom_error *err) {
    if (stack < 1 || stack > AUDIO_ENC_MAX_STACK) return loom_error_set(err, "audio stack %d", stack);
    if (b->stack == stack) return 0;
    if (b->stack != 0) return loom_error_set(err, "speech bank already prepared for stack %d", b->stack);
    int failed = 0;
    loom_error first = {{0}};
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t i = 0; i < (int64_t)b->n; i++) {
        speech_utt *u = &b->u[i];
        loom_error e = {{0}};
        int64_t P = 0;
        if (audio_enc_prepare(&u->audio, stack, &u->frames, &P, &e) || P > INT32_MAX) {
#pragma omp critical(speech_bank_err)
            if (!failed++) loom_error_set(&first, "%s: %s", u->path, P > INT32_MAX ? "too long" : e.msg);
            continue;
        }
        u->n_pos = (int32_t)P;
        audio_free(&u->audio);
    }
    if (failed) return loom_error_set(err, "%s", first.msg);
    b->stack = stack;
    return 0;
}

size_t speech_bank_find(const speech_bank *b, const char *text, size_t *first) {
    size_t lo = 0, hi = b->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(b->u[b->by_text[mid]].text, text) < 0) lo = mid + 1;
        else hi = mid;
    }
    *first = lo;
    size_t n = 0;
    while (lo + n < b->n && strcmp(b->u[b->by_text[lo + n]].text, text) == 0) n++;
    return n;
}

size_t speech_bank_count(const speech_bank *b, speech_task task) {
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++) n += b->u[i].task == task;
    return n;
}

void speech_bank_free(speech_bank *b) {
    for (size_t i = 0; i < b->n; i++) utt_free(&b->u[i]);
    free(b->u);
    free(b->by_text);
    memset(b, 0, sizeof *b);
}
