/* ckpt.h: what both trainers (train.c, vq_train.c) keep in a checkpoint
 * besides tensors: the optimizer step and the data RNG, as the metadata
 * key "trainer" = {"step": N, "rng": ["hex16", x4]}; and small file helpers. */
#ifndef LOOM_TRAIN_CKPT_H
#define LOOM_TRAIN_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/rng.h"

#define CKPT_STATE_MAX 256

/* The JSON of (step, rng) into buf (CKPT_STATE_MAX bytes). */
void ckpt_state_format(char *buf, int64_t step, const loom_rng *rng);
/* Parses it back; -1 with err set ("PATH: ...") if json is NULL or malformed. */
int ckpt_state_parse(const char *json, const char *path, int64_t *step, loom_rng *rng,
                     loom_error *err);
/* A float as its shortest decimal (0.002, not 0.0020000000949949026), for recipes. */
double ckpt_short_float(float x);
/* On resume: drops the rows of a CSV log (header kept) whose first field,
 * the step, is past step, so the steps re-run after the checkpoint are not
 * logged twice. Rewrites through a temporary file; a missing log is fine. */
int ckpt_log_truncate(const char *path, int64_t step, loom_error *err);
/* 1 if path exists. */
int ckpt_exists(const char *path);
/* out = base + suffix, or -1 if it does not fit cap. */
int ckpt_path_join(char *out, size_t cap, const char *base, const char *suffix);

#endif
