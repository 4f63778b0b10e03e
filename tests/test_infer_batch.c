/* test_infer_batch.c: answers decoded together equal answers decoded alone,
 * with the shipped model (models/loom-shapes.safetensors, or $LOOM_MODEL).
 *
 *   step_batch  infer_answer_emit + infer_answer_step_batch over contexts that
 *               start at different times (so their rows sit at different
 *               positions) give, piece for piece, what infer_answer_next gives
 *               each alone: captions, questions, a spoken question, a
 *               transcript, a max_tokens cut; also for the int8 copy
 *   stepper     the server's continuous batching (server/stepper.h): threads
 *               answering at once through one stepper get the answers they
 *               get alone, and the steps really were shared
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>

#include "core/threads.h"
#include "encoders/audio.h"
#include "encoders/image.h"
#include "model/infer.h"
#include "model/model.h"
#include "server/stepper.h"
#include "test_util.h"

#ifndef LOOM_SOURCE_DIR
#define LOOM_SOURCE_DIR "."
#endif

enum { NQ = 8, ANSWER_CAP = 1024 };

typedef struct query {
    const char *image, *audio, *prompt;
    int32_t max_tokens;
} query;

static const query g_queries[NQ] = {
    {"scene0.png", NULL, "", 96},
    {"scene1.png", NULL, "what color is the circle?", 96},
    {NULL, "prompt.wav", NULL, 96},
    {"scene2.png", NULL, "", 96},
    {"scene3.png", "question.wav", NULL, 96},
    {"scene1.png", NULL, "how many objects are there?", 96},
    {"scene3.png", NULL, "", 5}, /* cut by max_tokens */
    {NULL, NULL, "is there a red circle?", 96},
};

static loom_image g_img[NQ];
static loom_audio g_aud[NQ];
static infer_input g_in[NQ];

static void load_inputs(void) {
    loom_error err = {{0}};
    char path[2048];
    for (int i = 0; i < NQ; i++) {
        const query *q = &g_queries[i];
        g_in[i] = (infer_input){0};
        if (q->image) {
            snprintf(path, sizeof path, "%s/examples/%s", LOOM_SOURCE_DIR, q->image);
            if (image_load_file(path, &g_img[i], &err)) fail_msg("%s: %s", path, err.msg);
            g_in[i].image = &g_img[i];
        }
        if (q->audio) {
            snprintf(path, sizeof path, "%s/examples/%s", LOOM_SOURCE_DIR, q->audio);
            if (audio_load_file(path, &g_aud[i], &err)) fail_msg("%s: %s", path, err.msg);
            g_in[i].audio = &g_aud[i];
        }
        if (q->prompt) {
            g_in[i].prompt = q->prompt;
            g_in[i].prompt_len = strlen(q->prompt);
        }
    }
}

static void free_inputs(void) {
    for (int i = 0; i < NQ; i++) {
        if (g_in[i].image) image_free(&g_img[i]);
        if (g_in[i].audio) audio_free(&g_aud[i]);
    }
}

/* Appends pieces to out; returns 1 once the answer is done. */
static int take(int64_t n, const char *piece, char *out) {
    if (n == INFER_DONE) return 1;
    if (n < 0) fail_msg("answer failed");
    if (strlen(out) + (size_t)n + 1 > ANSWER_CAP) fail_msg("answer too long");
    strcat(out, piece);
    return 0;
}

/* Each query alone, with infer_answer_next. */
static void answers_alone(const loom_model *m, char (*alone)[ANSWER_CAP], infer_finish *fin) {
    loom_error err = {{0}};
    loom_infer *inf = infer_new(m, &err);
    assert_non_null(inf);
    char piece[INFER_PIECE_MAX];
    for (int i = 0; i < NQ; i++) {
        alone[i][0] = '\0';
        if (infer_answer_begin(inf, &g_in[i], g_queries[i].max_tokens, &err)) fail_msg("%d: %s", i, err.msg);
        while (!take(infer_answer_next(inf, piece, &err), piece, alone[i])) {}
        fin[i] = infer_answer_finish(inf);
    }
    infer_free(inf);
}

static void check_step_batch(const char *label, const loom_model *m, int32_t batch_max) {
    loom_error err = {{0}};
    char alone[NQ][ANSWER_CAP], together[NQ][ANSWER_CAP], piece[INFER_PIECE_MAX];
    infer_finish fin[NQ];
    answers_alone(m, alone, fin);
    loom_infer *inf[NQ];
    for (int i = 0; i < NQ; i++) {
        assert_non_null(inf[i] = infer_new(m, &err));
        together[i][0] = '\0';
    }
    infer_batch *b = infer_batch_new(m, batch_max, &err);
    assert_non_null(b);
    /* query i joins at step 2 i, so rows are at different positions and the
     * batch grows and shrinks as answers start and end */
    int started = 0, done[NQ] = {0}, n_done = 0, steps = 0, max_rows = 0;
    while (n_done < NQ) {
        if (started < NQ && steps >= 2 * started) {
            if (infer_answer_begin(inf[started], &g_in[started], g_queries[started].max_tokens, &err))
                fail_msg("%d: %s", started, err.msg);
            started++;
        }
        loom_infer *step[NQ];
        int32_t n = 0;
        for (int i = 0; i < started; i++) {
            if (done[i]) continue;
            if (take(infer_answer_emit(inf[i], piece, &err), piece, together[i])) {
                done[i] = 1;
                n_done++;
                assert_false(infer_answer_pending(inf[i]));
                continue;
            }
            if (infer_answer_pending(inf[i])) step[n++] = inf[i];
        }
        if (n > max_rows) max_rows = n;
        for (int32_t at = 0; at < n; at += batch_max) /* at most batch_max answers a call */
            if (infer_answer_step_batch(b, step + at, n - at < batch_max ? n - at : batch_max, &err))
                fail_msg("step %d: %s", steps, err.msg);
        steps++;
    }
    int same = 0;
    for (int i = 0; i < NQ; i++) {
        if (!strcmp(alone[i], together[i]) && infer_answer_finish(inf[i]) == fin[i]) same++;
        else printf("  [%s] query %d: alone \"%s\", batched \"%s\"\n", label, i, alone[i], together[i]);
    }
    printf("batched answers [%s]: %d of %d equal alone (up to %d rows a step, %d steps); e.g. \"%s\"\n",
           label, same, NQ, max_rows, steps, together[0]);
    assert_true(max_rows >= 4);
    assert_int_equal(same, NQ);
    assert_int_equal(fin[6], INFER_FINISH_LENGTH);
    assert_int_equal(fin[0], INFER_FINISH_STOP);
    /* nothing pending: a no-op; too many rows: refused */
    assert_int_equal(infer_answer_step_batch(b, inf, 0, &err), 0);
    infer_batch_free(b);
    for (int i = 0; i < NQ; i++) infer_free(inf[i]);
}

static void test_step_batch(void **state) {
    (void)state;
    loom_threads_set(2);
    load_inputs();
    loom_model *m = test_load_shipped_model();
    check_step_batch("fp32", m, NQ);
    loom_error err = {{0}};
    loom_model *q = model_quantize(m, 32, 0, &err);
    if (!q) fail_msg("%s", err.msg);
    check_step_batch("int8", q, NQ);
    model_free(q);
    model_free(m);
    free_inputs();
}

/* ---- caption_first ---- */

/* A caption_first answer runs after the model's own caption, which equals the
 * plain caption of the image; the question's answer ends normally; without a
 * question (or without an image) the flag changes nothing. */
static void test_caption_first(void **state) {
    (void)state;
    loom_threads_set(1);
    load_inputs();
    loom_model *m = test_load_shipped_model();
    loom_error err = {{0}};
    loom_infer *inf = infer_new(m, &err);
    assert_non_null(inf);
    char plain[ANSWER_CAP], answer[ANSWER_CAP], again[ANSWER_CAP];
    const infer_input cap = {.image = &g_img[1]};
    assert_true(infer_answer_input(inf, &cap, 96, plain, sizeof plain, &err) > 0);
    assert_string_equal(infer_caption(inf), "");
    infer_input q = g_in[1]; /* scene1: what color is the circle? */
    q.caption_first = 1;
    assert_true(infer_answer_input(inf, &q, 96, answer, sizeof answer, &err) > 0);
    printf("caption first: \"%s\" -> %s: %s\n", infer_caption(inf), q.prompt, answer);
    assert_string_equal(infer_caption(inf), plain);
    assert_int_equal(infer_answer_finish(inf), INFER_FINISH_STOP);
    /* the positions: image, caption, question and answer all in one context */
    assert_true(infer_prompt_tokens(inf) > (int32_t)strlen(q.prompt) / 4 + 8);
    infer_input c2 = cap;
    c2.caption_first = 1;
    assert_true(infer_answer_input(inf, &c2, 96, again, sizeof again, &err) > 0);
    assert_string_equal(again, plain);
    assert_string_equal(infer_caption(inf), "");
    infer_free(inf);
    model_free(m);
    free_inputs();
}

/* Contrastive answers (a second, image-free cache each) batched equal
 * themselves alone; with room for 4 rows, 4 answers with their image-free
 * caches make 8, so the steps run in chunks. */
static void test_contrast_batch(void **state) {
    (void)state;
    loom_threads_set(2);
    load_inputs();
    for (int i = 0; i < NQ; i++) g_in[i].contrast = 0.5f;
    loom_model *m = test_load_shipped_model();
    check_step_batch("fp32, contrast 0.5, 4 rows a step", m, 4);
    model_free(m);
    free_inputs();
}

/* ---- the stepper, from threads ---- */

typedef struct job {
    stepper *st;
    const loom_model *m;
    int i;
    char out[ANSWER_CAP];
    int rc;
} job;

static void *answer_thread(void *arg) {
    job *j = arg;
    loom_error err = {{0}};
    loom_infer *inf = infer_new(j->m, &err);
    char piece[INFER_PIECE_MAX];
    j->out[0] = '\0';
    j->rc = -1;
    if (!inf || infer_answer_begin(inf, &g_in[j->i], g_queries[j->i].max_tokens, &err)) goto done;
    for (;;) {
        const int64_t n = stepper_next(j->st, inf, piece, &err);
        if (n == INFER_DONE) break;
        if (n < 0) goto done;
        const size_t used = strlen(j->out), k = (size_t)n < ANSWER_CAP - 1 - used ? (size_t)n : ANSWER_CAP - 1 - used;
        memcpy(j->out + used, piece, k);
        j->out[used + k] = '\0';
    }
    j->rc = 0;
done:
    infer_free(inf);
    return NULL;
}

static void test_stepper_threads(void **state) {
    (void)state;
    loom_threads_set(1);
    load_inputs();
    loom_model *m = test_load_shipped_model();
    char alone[NQ][ANSWER_CAP];
    infer_finish fin[NQ];
    answers_alone(m, alone, fin);
    loom_error err = {{0}};
    assert_null(stepper_new(m, 0, 1, &err));
    /* a stepper narrower than the crowd: some threads wait for room */
    stepper *st = stepper_new(m, 6, 1, &err);
    assert_non_null(st);
    enum { ROUNDS = 3 };
    job jobs[ROUNDS * NQ];
    pthread_t th[ROUNDS * NQ];
    for (int k = 0; k < ROUNDS * NQ; k++) {
        jobs[k] = (job){.st = st, .m = m, .i = k % NQ};
        assert_int_equal(pthread_create(&th[k], NULL, answer_thread, &jobs[k]), 0);
    }
    int same = 0;
    for (int k = 0; k < ROUNDS * NQ; k++) {
        pthread_join(th[k], NULL);
        assert_int_equal(jobs[k].rc, 0);
        if (!strcmp(jobs[k].out, alone[k % NQ])) same++;
        else printf("  thread %d (query %d): \"%s\" vs alone \"%s\"\n", k, k % NQ, jobs[k].out, alone[k % NQ]);
    }
    int64_t steps, rows;
    stepper_counts(st, &steps, &rows);
    printf("stepper: %d threads, %d answers equal alone; %lld steps for %lld rows (mean batch %.2f)\n",
           ROUNDS * NQ, same, (long long)steps, (long long)rows, steps ? (double)rows / (double)steps : 0.0);
    assert_int_equal(same, ROUNDS * NQ);
    assert_true(rows > steps); /* some steps were shared */
    stepper_free(st);
    model_free(m);
    free_inputs();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_batch),
        cmocka_unit_test(test_stepper_threads),
        cmocka_unit_test(test_caption_first),
        cmocka_unit_test(test_contrast_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
