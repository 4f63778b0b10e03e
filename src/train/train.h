/* train.h: `loom train`: tokenizer training, the optimization loop,
 * evaluation, checkpoints (atomic) and resume that reproduces the same loss
 * curve bit for bit at the same thread count. */
#ifndef LOOM_TRAIN_TRAIN_H
#define LOOM_TRAIN_TRAIN_H

#include <stdint.h>

#include "core/error.h"
#include "data/shapes.h"
#include "decoder/decoder.h"
#include "heads/vq.h"
#include "model/model.h"

typedef struct train_options {
    const char *data;        /* text file, JSONL (text or image records), or "shapes" */
    const char *out;         /* final model path */
    const char *ckpt;        /* checkpoint path (default: OUT.ckpt) */
    const char *log;         /* CSV log path (default: OUT.log.csv) */
    int         resume;      /* continue from ckpt if it exists */
    decoder_config model;    /* vocab_size is the tokenizer's target size */
    model_image_config image; /* used when the data has images */
    model_audio_config audio; /* used when the data has audio (--speech) */
    const char *speech;      /* --speech MANIFEST: spoken prompts/questions for shapes rows */
    float       speech_frac; /* the share of shapes rows that are spoken */
    float       spoken_questions; /* the share of spoken rows that are questions (< 0: a third) */
    float       caption_asks; /* shapes: the share of caption rows that go on with questions */
    float       caption_noise; /* shapes: chance an object's color word is swapped in a caption's input */
    int         has_qweight;   /* shapes: question types drawn in proportion to qweight (else uniformly) */
    float       qweight[SHAPES_N_QTYPES];
    int32_t batch, seq, accum;
    int64_t steps, warmup;
    float   lr, min_lr, weight_decay, beta1, beta2, grad_clip;
    int64_t eval_every, eval_batches, ckpt_every;
    float   eval_frac;       /* fraction of records held out for evaluation */
    uint64_t seed;
    int     threads;
    int64_t stop_after;      /* stop (checkpointed) after this many steps of this run; 0 = no */
    int     quiet;
    const char *vq_file;     /* --vq FILE: give the model image output with this trained VQ */
    const char *init;        /* --init MODEL: start from its weights, tokenizer and image
                                output (a new run; the vocabulary may grow by the VQ's
                                codes, audio input may be added) */
    int32_t     grow_layers; /* with init: grow its decoder to this many layers
                                (decoder_grow_layers; 0 = keep its depth) */
    /* --vq-only: train the VQ image autoencoder instead (train/vq_train.h) */
    int       vq_only;
    vq_config vq;            /* its architecture */
    int32_t   vq_side;       /* training images are vq_side x vq_side */
    float     vq_restart;    /* EMA count below which a code is restarted */
} train_options;

train_options train_default_options(void);
/* Runs training to completion (or stop_after). Returns 0 on success. */
int train_run(const train_options *o, loom_error *err);

#endif
