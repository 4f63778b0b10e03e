/* vq_train.h: `loom train --vq-only`: training the VQ image autoencoder
 * (heads/vq.h) on Shapes World scenes, with the same conventions as the
 * transformer's trainer (train.h): AdamW on the conv weights, the EMA
 * codebook updated after each step, dead codes restarted, atomic
 * checkpoints and exact resume, a CSV log, and an evaluation on held-out
 * (test split) scenes: reconstruction PSNR, how many reconstructions the
 * scene analyzer (data/shapes_analyze.h) reads back exactly, codes in use.
 *
 * The result is a VQ file: safetensors with metadata "format" = "loom-vq-1",
 * "vq" (the config JSON) and "train" (the recipe); tensors as in vq.h. A
 * transformer is given image output by training it with `--vq FILE`. */
#ifndef LOOM_TRAIN_VQ_TRAIN_H
#define LOOM_TRAIN_VQ_TRAIN_H

#include "core/error.h"
#include "heads/vq.h"
#include "train/train.h"

#define VQ_FILE_FORMAT "loom-vq-1"

/* Uses o->data ("shapes"), out/ckpt/log/resume, batch (images per step),
 * steps, warmup, lr, min_lr, weight_decay, beta1/2, grad_clip, eval_every,
 * eval_batches (x batch held-out images), ckpt_every, stop_after, seed,
 * threads, quiet, and the vq_* fields. */
int vq_train_run(const train_options *o, loom_error *err);

/* Reads a VQ file: its config, and its tensors into freshly registered
 * tables and buffers (free with params_free / free). */
int vq_file_load(const char *path, vq_config *c, param_table *params, float **params_buf,
                 param_table *state, float **state_buf, loom_error *err);

#endif
