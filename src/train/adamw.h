/* adamw.h: AdamW with decoupled weight decay and bias correction (as
 * torch.optim.AdamW), gradient clipping by global norm (as
 * torch.nn.utils.clip_grad_norm_), and the warmup + cosine schedule. The
 * optimizer walks the model's one flat buffer; m and v share its layout. */
#ifndef LOOM_TRAIN_ADAMW_H
#define LOOM_TRAIN_ADAMW_H

#include <stddef.h>
#include <stdint.h>

#include "core/params.h"

typedef struct adamw_params {
    float lr, beta1, beta2, eps, weight_decay;
} adamw_params;

adamw_params adamw_default_params(void);

/* One step t (1-based) over every tensor of the table. Tensors whose
 * param_info.decay is 0 are not decayed. */
void adamw_step(const param_table *t, float *params, const float *grads, float *m, float *v,
                adamw_params p, int64_t step);

/* L2 norm of all gradients (summed in double, in a fixed order). */
double grad_global_norm(const float *grads, size_t n);
/* Scales gradients by min(1, max_norm / (norm + 1e-6)); returns the norm.
 * max_norm <= 0 disables clipping. */
double grad_clip(float *grads, size_t n, float max_norm);

/* Learning rate at step (0-based): linear warmup to lr_max over warmup steps,
 * then cosine decay to lr_min at total steps. */
float lr_schedule(int64_t step, int64_t warmup, int64_t total, float lr_max, float lr_min);

#endif
