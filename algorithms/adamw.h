/* SPDX-License-Identifier: MIT */
/*
 * AdamW: Adam (Kingma & Ba 2015, Algorithm 1, with bias correction) with
 * decoupled weight decay (Loshchilov & Hutter 2019, "Decoupled Weight
 * Decay Regularization", Algorithm 2, schedule multiplier folded into lr),
 * over flat float arrays (one parameter arena at a time), as llm.c's
 * adamw_update. For step t >= 1 and each element:
 *   m = beta1 m + (1 - beta1) g
 *   v = beta2 v + (1 - beta2) g^2
 *   m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)
 *   p = p - lr (m_hat / (sqrt(v_hat) + eps) + weight_decay p)
 * The decay term uses p before the update, and it is not scaled by the
 * adaptive denominator (that is what "decoupled" means; same as
 * PyTorch's torch.optim.AdamW).
 */
#ifndef MMCL_ALGORITHMS_ADAMW_H
#define MMCL_ALGORITHMS_ADAMW_H

#include <stddef.h>

/*
 * One step over n parameters:
 *   params (n) updated in place; m (n), v (n) moments updated in place
 *   (zero before the first step); grads (n) read.
 * t: 1-based step count (t >= 1: the bias corrections divide by
 * 1 - beta^t). To exclude tensors from weight decay (biases), call twice
 * on the two ranges with different weight_decay (see nn.h n_weights).
 * The four arrays must not overlap.
 */
void mmcl__adamw_step(float *params, float *m, float *v, const float *grads,
                      float lr, float beta1, float beta2, float eps,
                      float weight_decay, int t, size_t n);

#endif /* MMCL_ALGORITHMS_ADAMW_H */
