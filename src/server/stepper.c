#include "server/stepper.h"

#include <errno.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long a step waits for the rows of the previous one to come back (their
 * threads emit the next token and, streaming, write it out): without it the
 * first to return would be stepped alone and the rows would split into groups
 * that take turns. A client that stalls costs the others at most this. */
#define GATHER_NS 1000000L

/* One context waiting for its step; lives on the waiter's stack. */
typedef struct waiter {
    loom_infer *inf;
    int done, rc;
    loom_error err;
} waiter;

struct stepper {
    infer_batch *b;
    int32_t max, threads;
    waiter **queue;           /* (max) registered for the next step */
    int32_t n_queue;
    loom_infer **infs;        /* (max) the step's contexts, the stepper thread's own */
    waiter **taken;           /* (max) */
    loom_infer **out;         /* (max) rows of the last step not yet back (queued again or left) */
    int32_t n_out;
    int stop;
    int64_t steps, rows;
    pthread_mutex_t mu;
    pthread_cond_t work, done, space;
    pthread_t thread;
};

/* Removes inf from the rows still out; wakes the stepper when none are. Under mu. */
static void came_back(stepper *st, const loom_infer *inf) {
    for (int32_t i = 0; i < st->n_out; i++)
        if (st->out[i] == inf) {
            st->out[i] = st->out[--st->n_out];
            if (st->n_out == 0) pthread_cond_signal(&st->work);
            return;
        }
}

static void *stepper_main(void *arg) {
    stepper *st = arg;
    omp_set_num_threads(st->threads);
    pthread_mutex_lock(&st->mu);
    for (;;) {
        while (!st->n_queue && !st->stop) pthread_cond_wait(&st->work, &st->mu);
        if (!st->n_queue && st->stop) break;
        if (st->n_out > 0 && !st->stop) { /* gather the last step's rows first */
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_nsec += GATHER_NS;
            if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
            while (st->n_out > 0 && !st->stop && st->n_queue < st->max)
                if (pthread_cond_timedwait(&st->work, &st->mu, &until) == ETIMEDOUT) break;
        }
        st->n_out = 0;
        const int32_t n = st->n_queue;
        memcpy(st->taken, st->queue, (size_t)n * sizeof *st->taken);
        st->n_queue = 0;
        pthread_cond_broadcast(&st->space);
        pthread_mutex_unlock(&st->mu);
        for (int32_t i = 0; i < n; i++) st->infs[i] = st->taken[i]->inf;
        loom_error err = {{0}};
        const int rc = infer_answer_step_batch(st->b, st->infs, n, &err);
        pthread_mutex_lock(&st->mu);
        st->steps++;
        st->rows += n;
        for (int32_t i = 0; i < n; i++) {
            st->taken[i]->rc = rc;
            if (rc) st->taken[i]->err = err;
            st->taken[i]->done = 1;
            st->out[i] = st->infs[i];
        }
        st->n_out = n;
        pthread_cond_broadcast(&st->done);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

/* Frees what stepper_new allocated (NULLs are fine). */
static void free_buffers(stepper *st) {
    infer_batch_free(st->b);
    free(st->queue);
    free(st->taken);
    free(st->infs);
    free(st->out);
    free(st);
}

static void destroy_sync(stepper *st) {
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->work);
    pthread_cond_destroy(&st->done);
    pthread_cond_destroy(&st->space);
}

stepper *stepper_new(const loom_model *m, int32_t max_seqs, int32_t threads, loom_error *err) {
    if (max_seqs < 1 || max_seqs > 256) return loom_error_set(err, "batch of %d sequences: want 1 to 256", max_seqs), NULL;
    if (threads < 1) return loom_error_set(err, "stepper threads must be >= 1"), NULL;
    stepper *st = calloc(1, sizeof *st);
    if (!st) return loom_error_set(err, "out of memory"), NULL;
    st->max = max_seqs;
    st->threads = threads;
    st->queue = calloc((size_t)max_seqs, sizeof *st->queue);
    st->taken = calloc((size_t)max_seqs, sizeof *st->taken);
    st->infs = calloc((size_t)max_seqs, sizeof *st->infs);
    st->out = calloc((size_t)max_seqs, sizeof *st->out);
    if (!st->queue || !st->taken || !st->infs || !st->out) {
        loom_error_set(err, "out of memory");
        goto fail;
    }
    if (!(st->b = infer_batch_new(m, max_seqs, err))) goto fail;
    pthread_mutex_init(&st->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->work, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&st->done, NULL);
    pthread_cond_init(&st->space, NULL);
    if (pthread_create(&st->thread, NULL, stepper_main, st)) {
        loom_error_set(err, "cannot start the decoding thread");
        destroy_sync(st);
        goto fail;
    }
    return st;
fail:
    free_buffers(st);
    return NULL;
}

void stepper_free(stepper *st) {
    if (!st) return;
    pthread_mutex_lock(&st->mu);
    st->stop = 1;
    pthread_cond_signal(&st->work);
    pthread_cond_broadcast(&st->space);
    pthread_mutex_unlock(&st->mu);
    pthread_join(st->thread, NULL);
    destroy_sync(st);
    free_buffers(st);
}

int64_t stepper_next(stepper *st, loom_infer *inf, char *out, loom_error *err) {
    const int64_t used = infer_answer_emit(inf, out, err);
    pthread_mutex_lock(&st->mu);
    came_back(st, inf);
    if (used < 0 || !infer_answer_pending(inf)) {
        pthread_mutex_unlock(&st->mu);
        return used;
    }
    waiter w = {.inf = inf};
    while (st->n_queue == st->max && !st->stop) pthread_cond_wait(&st->space, &st->mu);
    if (st->stop) {
        pthread_mutex_unlock(&st->mu);
        return loom_error_set(err, "the server is stopping");
    }
    st->queue[st->n_queue++] = &w;
    pthread_cond_signal(&st->work);
    while (!w.done) pthread_cond_wait(&st->done, &st->mu);
    pthread_mutex_unlock(&st->mu);
    if (w.rc) {
        if (err) *err = w.err;
        return -1;
    }
    return used;
}

void stepper_leave(stepper *st, const loom_infer *inf) {
    pthread_mutex_lock(&st->mu);
    came_back(st, inf);
    pthread_mutex_unlock(&st->mu);
}

void stepper_counts(stepper *st, int64_t *steps, int64_t *rows) {
    pthread_mutex_lock(&st->mu);
    *steps = st->steps;
    *rows = st->rows;
    pthread_mutex_unlock(&st->mu);
}
