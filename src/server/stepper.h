/* stepper.h: continuous batching for the server's text answers. Each request
 * answers in its own inference context (model/infer.h) on its own thread,
 * but the tokens of all requests decoding at the same moment go through the
 * decoder together, in one step on one thread (infer_answer_step_batch): the
 * weights are read once per step for all of them instead of once per request,
 * which is what bounds decoding on a CPU. A request that arrives joins the
 * next step; one that finishes leaves; nobody waits for a batch to fill. A
 * step does wait, up to a millisecond, for the rows of the previous step to
 * come back (their threads emit the next token in between), so the batch
 * stays whole instead of splitting into groups that take turns.
 *
 *     stepper *st = stepper_new(model, 8, 1, &err);
 *     infer_answer_begin(inf, &in, max_tokens, &err);    // the prompt, on the caller's thread
 *     while ((n = stepper_next(st, inf, piece, &err)) != INFER_DONE) ...
 *     stepper_free(st);
 *
 * stepper_next returns what infer_answer_next returns, the same text: a batched
 * step equals single steps up to float rounding (tests/test_decoder.c). */
#ifndef LOOM_SERVER_STEPPER_H
#define LOOM_SERVER_STEPPER_H

#include <stdint.h>

#include "core/error.h"
#include "model/infer.h"

typedef struct stepper stepper;

/* At most max_seqs contexts per step (more wait for the next); the step runs
 * on a thread of its own with `threads` OpenMP threads. */
stepper *stepper_new(const loom_model *m, int32_t max_seqs, int32_t threads, loom_error *err);
/* Stops and joins the thread; no stepper_next may be running. */
void stepper_free(stepper *st);
/* infer_answer_next for inf (a context of the stepper's model), its decoder
 * step shared with whoever else is waiting. Thread-safe; blocks for the step. */
int64_t stepper_next(stepper *st, loom_infer *inf, char *out, loom_error *err);
/* inf will not ask again (its answer was cut short, say a client left): the
 * next step need not wait for it. Harmless for a context the stepper never saw. */
void stepper_leave(stepper *st, const loom_infer *inf);
/* Steps run and contexts stepped so far (their ratio is the mean batch). */
void stepper_counts(stepper *st, int64_t *steps, int64_t *rows);

#endif
