/* SPDX-License-Identifier: MIT */
/*
 * AdamW step over a flat parameter arena (equations and references in
 * adamw.h). Bias corrections are computed once per call, in double.
 */
#include "adamw.h"

#include <math.h>

#include "simd.h"

/* The element loop: restrict pointers, float, no branch, so it vectorises
 * (sqrtf included: the file is built with -fno-math-errno). */
MMCL__VEC_CLONES static void
adamw_loop(float *restrict params, float *restrict m, float *restrict v,
           const float *restrict grads, float lr, float beta1, float beta2,
           float eps, float weight_decay, float corr1, float corr2, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        float m_i = beta1 * m[i] + (1.0f - beta1) * g;
        float v_i = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = m_i;
        v[i] = v_i;
        float m_hat = m_i * corr1;
        float v_hat = v_i * corr2;
        params[i] -=
            lr * (m_hat / (sqrtf(v_hat) + eps) + weight_decay * params[i]);
    }
}

void
mmcl__adamw_step(float *params, float *m, float *v, const float *grads,
                 float lr, float beta1, float beta2, float eps,
                 float weight_decay, int t, size_t n)
{
    /* 1 / (1 - beta^t), in double: for beta2 = 0.999 and small t the
     * difference 1 - beta2^t loses digits in float. */
    float corr1 = (float)(1.0 / (1.0 - pow((double)beta1, (double)t)));
    float corr2 = (float)(1.0 / (1.0 - pow((double)beta2, (double)t)));
    adamw_loop(params, m, v, grads, lr, beta1, beta2, eps, weight_decay, corr1,
               corr2, n);
}
