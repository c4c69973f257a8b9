/* SPDX-License-Identifier: MIT */
/*
 * Tests of algorithms/clip.c, the contrastive training loop: the loss at
 * initialisation is near log(B) and falls on data with a shared signal;
 * the same seed gives bitwise identical parameters and loss curve; one
 * step's gradient (every parameter, and d log(tau)) agrees with central
 * finite differences of an independent double-precision forward; a
 * learned temperature moves and stays in its bounds; two threads give
 * bitwise the same step and training as one; cancelling, the
 * dropped last batch, the per-step losses, non-finite data, bad arguments, and
 * the BLAS thread count restored afterwards.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "blas_threads.h"
#include "clip.h"
#include "nn.h"
#include "rng.h"
#include "test_util.h"

/* ---- Helpers ------------------------------------------------------------ */

/*
 * X1 (N, d1) ~ N(0, 1); X2 (N, d2) = X1[:, :k] A^T + noise N(0, noise^2),
 * A (d2, k) ~ N(0, 1/k): the first k components of X1 are shared with X2,
 * the other d1 - k are optical-specific.
 */
static void
make_data(float *X1, float *X2, int N, int d1, int d2, int k, double noise,
          uint64_t seed)
{
    uint64_t s = seed;
    float *A = malloc((size_t)d2 * k * sizeof(float));
    mmcl__rng_fill_normal(&s, X1, 0.0, 1.0, (size_t)N * d1);
    mmcl__rng_fill_normal(&s, A, 0.0, 1.0 / sqrt((double)k), (size_t)d2 * k);
    mmcl__rng_fill_normal(&s, X2, 0.0, noise, (size_t)N * d2);
    for (int n = 0; n < N; n++)
        for (int i = 0; i < d2; i++) {
            double acc = 0.0;
            for (int j = 0; j < k; j++)
                acc += (double)A[i * k + j] * X1[(size_t)n * d1 + j];
            X2[(size_t)n * d2 + i] += (float)acc;
        }
    free(A);
}

static mmcl_mlp *
make_mlp(mmcl_context *ctx, const int *sizes, int n_sizes, mmcl_activation act,
         uint64_t seed)
{
    mmcl_mlp *f = mmcl__mlp_create(ctx, sizes, n_sizes, act, 1);
    if (f) {
        uint64_t s = seed;
        mmcl__mlp_init(f, &s);
    }
    return f;
}

static void
test_config(mmcl_clip_config *cfg)
{
    mmcl__clip_config_default(cfg);
    cfg->epochs = 8;
    cfg->batch = 64;
    cfg->lr = 3e-3f;
    cfg->weight_decay = 1e-4f;
    cfg->tau = 0.1f;
    cfg->seed = 7;
    cfg->n_threads = 1;
}

/* The shared problem of several tests: 2048 pairs, d1 = 16, d2 = 8, four
 * shared components, MLP 16 -> 32 -> 16 and 8 -> 32 -> 16. */
enum { SN = 2048, SD1 = 16, SD2 = 8, SK = 4, SH = 32, SD = 16 };
static const int sizes1[] = {SD1, SH, SD};
static const int sizes2[] = {SD2, SH, SD};

typedef struct shared_problem {
    mmcl_context *ctx;
    float *X1, *X2;
    mmcl_mlp *f1, *f2;
} shared_problem;

static int
problem_open(shared_problem *p)
{
    p->ctx = mmcl_context_create();
    p->X1 = malloc((size_t)SN * SD1 * sizeof(float));
    p->X2 = malloc((size_t)SN * SD2 * sizeof(float));
    if (!p->ctx || !p->X1 || !p->X2)
        return 0;
    make_data(p->X1, p->X2, SN, SD1, SD2, SK, 0.3, 11);
    p->f1 = make_mlp(p->ctx, sizes1, 3, MMCL_ACTIVATION_RELU, 1);
    p->f2 = make_mlp(p->ctx, sizes2, 3, MMCL_ACTIVATION_RELU, 2);
    return p->f1 && p->f2;
}

static void
problem_close(shared_problem *p)
{
    mmcl__mlp_destroy(p->f1);
    mmcl__mlp_destroy(p->f2);
    free(p->X1);
    free(p->X2);
    mmcl_context_destroy(p->ctx);
}

/* ---- Training behaviour ------------------------------------------------- */

static void
clip_loss_starts_near_log_batch_and_falls_on_shared_signal(void)
{
    shared_problem p;
    CU_ASSERT_TRUE_FATAL(problem_open(&p));
    mmcl_clip_config cfg;
    test_config(&cfg);
    int B = cfg.batch;

    /* Loss of the first batch at initialisation: unrelated encoders give
     * near-uniform softmaxes, so the loss is log(B) plus a spread term of
     * about var(logits) / 2. At tau = 1 the logits are cosines, of
     * variance ~1/D, so the loss is within ~1/(2D) = 0.03 of log(B); at
     * the training temperature 0.1 the spread term is 100x larger. */
    mmcl_clip_work *w = mmcl__clip_work_create(p.ctx, p.f1, p.f2, B, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    double loss0 = -1.0;
    CU_ASSERT_EQUAL_FATAL(mmcl__clip_loss_grad(p.ctx, &loss0, NULL, w, p.f1,
                                               p.f2, p.X1, p.X2, 1.0f, B),
                          MMCL_OK);
    mmcl__clip_work_destroy(w);

    double curve[8];
    float lt = 0.0f;
    CU_ASSERT_EQUAL_FATAL(mmcl__clip_train(p.ctx, p.f1, p.f2, &lt, p.X1, p.X2,
                                           SN, &cfg, curve, NULL, NULL, NULL),
                          MMCL_OK);
    printf("\n  log(B) %.4f, init (tau 1) %.4f, epochs (tau 0.1):",
           log((double)B), loss0);
    for (int e = 0; e < cfg.epochs; e++)
        printf(" %.4f", curve[e]);
    printf("\n");
    CU_ASSERT_DOUBLE_EQUAL(loss0, log((double)B), 0.1);
    /* Four shared Gaussian components with 0.3 noise are enough to pick
     * the positive out of 64 most of the time: clearly below log(B). */
    CU_ASSERT_TRUE(curve[cfg.epochs - 1] < 0.5 * log((double)B));
    CU_ASSERT_TRUE(curve[cfg.epochs - 1] < curve[0]);
    /* A fixed temperature is reported unchanged. */
    CU_ASSERT_DOUBLE_EQUAL(lt, logf(cfg.tau), 0.0);
    problem_close(&p);
}

/* Two 3-epoch runs ended with the same bits: losses per epoch @p ca and
 * @p cb, learned temperatures, and both encoders' parameters. */
static void
assert_same_training(const shared_problem *a, const shared_problem *b,
                     const double ca[3], const double cb[3], float lta,
                     float ltb)
{
    CU_ASSERT_EQUAL(memcmp(ca, cb, 3 * sizeof(double)), 0);
    CU_ASSERT_EQUAL(memcmp(&lta, &ltb, sizeof(lta)), 0);
    CU_ASSERT_EQUAL(
        memcmp(a->f1->params, b->f1->params, a->f1->n_params * sizeof(float)),
        0);
    CU_ASSERT_EQUAL(
        memcmp(a->f2->params, b->f2->params, a->f2->n_params * sizeof(float)),
        0);
}

static void
clip_same_seed_gives_bitwise_identical_parameters_and_losses(void)
{
    shared_problem a, b;
    CU_ASSERT_TRUE_FATAL(problem_open(&a));
    CU_ASSERT_TRUE_FATAL(problem_open(&b));
    mmcl_clip_config cfg;
    test_config(&cfg);
    cfg.epochs = 3;
    cfg.learn_tau = 1;
    double ca[3], cb[3];
    float lta, ltb;
    CU_ASSERT_EQUAL_FATAL(mmcl__clip_train(a.ctx, a.f1, a.f2, &lta, a.X1, a.X2,
                                           SN, &cfg, ca, NULL, NULL, NULL),
                          MMCL_OK);
    CU_ASSERT_EQUAL_FATAL(mmcl__clip_train(b.ctx, b.f1, b.f2, &ltb, b.X1, b.X2,
                                           SN, &cfg, cb, NULL, NULL, NULL),
                          MMCL_OK);
    assert_same_training(&a, &b, ca, cb, lta, ltb);

    /* Another seed shuffles differently, so the runs part ways. */
    shared_problem c;
    CU_ASSERT_TRUE_FATAL(problem_open(&c));
    double cc[3];
    cfg.seed = 8;
    CU_ASSERT_EQUAL_FATAL(mmcl__clip_train(c.ctx, c.f1, c.f2, NULL, c.X1, c.X2,
                                           SN, &cfg, cc, NULL, NULL, NULL),
                          MMCL_OK);
    CU_ASSERT_NOT_EQUAL(memcmp(ca, cc, sizeof(ca)), 0);
    problem_close(&a);
    problem_close(&b);
    problem_close(&c);
}

static void
clip_two_threads_give_bitwise_the_same_result_as_one(void)
{
    /* Two workers run the same fixed row blocks as one worker does, on a
     * single-threaded BLAS, so the results must be equal bit for bit, not
     * just within a tolerance. tau 0.1 takes InfoNCE's fast path, 0.02
     * (learned, bound 50 > 40) its exact path. */
    static const float taus[] = {0.1f, 0.02f};
    for (int k = 0; k < 2; k++) {
        shared_problem a, b;
        CU_ASSERT_TRUE_FATAL(problem_open(&a));
        CU_ASSERT_TRUE_FATAL(problem_open(&b));
        mmcl_clip_config cfg;
        test_config(&cfg);
        cfg.epochs = 3;
        cfg.learn_tau = 1;
        cfg.tau = taus[k];
        double ca[3], cb[3];
        float lta, ltb;
        cfg.n_threads = 1;
        CU_ASSERT_EQUAL_FATAL(mmcl__clip_train(a.ctx, a.f1, a.f2, &lta, a.X1,
                                               a.X2, SN, &cfg, ca, NULL, NULL,
                                               NULL),
                              MMCL_OK);
        cfg.n_threads = 2;
        CU_ASSERT_EQUAL_FATAL(mmcl__clip_train(b.ctx, b.f1, b.f2, &ltb, b.X1,
                                               b.X2, SN, &cfg, cb, NULL, NULL,
                                               NULL),
                              MMCL_OK);
        printf("\n  tau %.2f: final loss 1 thread %.7f, 2 threads %.7f",
               (double)taus[k], ca[2], cb[2]);
        assert_same_training(&a, &b, ca, cb, lta, ltb);
        problem_close(&a);
        problem_close(&b);
    }
    printf("\n");
}

static void
clip_learned_temperature_moves_and_stays_in_bounds(void)
{
    shared_problem p;
    CU_ASSERT_TRUE_FATAL(problem_open(&p));
    mmcl_clip_config cfg;
    test_config(&cfg);
    cfg.epochs = 3;
    cfg.learn_tau = 1;
    cfg.tau = 0.5f; /* too warm for this easy task: it should cool */
    cfg.lr = 1e-2f;
    float lt = 0.0f;
    CU_ASSERT_EQUAL_FATAL(mmcl__clip_train(p.ctx, p.f1, p.f2, &lt, p.X1, p.X2,
                                           SN, &cfg, NULL, NULL, NULL, NULL),
                          MMCL_OK);
    printf("\n  tau 0.5 -> %.4f\n", exp(lt));
    CU_ASSERT_TRUE(lt < logf(0.5f) - 0.1f);
    CU_ASSERT_TRUE(lt >= logf(MMCL_CLIP_TAU_MIN));
    CU_ASSERT_TRUE(lt <= logf(MMCL_CLIP_TAU_MAX));

    /* A start outside the bounds is clamped, and training keeps it in. */
    cfg.tau = 5.0f;
    cfg.epochs = 1;
    CU_ASSERT_EQUAL_FATAL(mmcl__clip_train(p.ctx, p.f1, p.f2, &lt, p.X1, p.X2,
                                           SN, &cfg, NULL, NULL, NULL, NULL),
                          MMCL_OK);
    CU_ASSERT_TRUE(lt <= logf(MMCL_CLIP_TAU_MAX));
    problem_close(&p);
}

/* ---- Gradient check ----------------------------------------------------- */

/*
 * Independent double-precision forward of the whole step: MLP (W (out,
 * in), b (out), activation after every layer but the last), L2
 * normalisation r = sqrt(||h||^2 + eps^2), symmetric InfoNCE. theta holds
 * [f1 params | f2 params | log_tau] in the nn.h arena layout.
 */
enum { GB = 5, GMAX = 16 };

typedef struct ref_net {
    int n_layers;
    int sizes[4];
    mmcl_activation act;
} ref_net;

static double
ref_act(mmcl_activation act, double v)
{
    if (act == MMCL_ACTIVATION_RELU)
        return v > 0.0 ? v : 0.0;
    const double s = 0.7978845608028654, c = 0.044715;
    return 0.5 * v * (1.0 + tanh(s * (v + c * v * v * v)));
}

/* z (GB, D) = normalised net(x (GB, sizes[0])) with params p (arena). */
static void
ref_embed(double *z, const ref_net *net, const double *p, const float *x)
{
    const double *W[4], *b[4];
    const double *q = p;
    for (int l = 0; l < net->n_layers; l++) {
        W[l] = q;
        q += net->sizes[l + 1] * net->sizes[l];
    }
    for (int l = 0; l < net->n_layers; l++) {
        b[l] = q;
        q += net->sizes[l + 1];
    }
    for (int n = 0; n < GB; n++) {
        double h[GMAX], y[GMAX];
        for (int i = 0; i < net->sizes[0]; i++)
            h[i] = x[n * net->sizes[0] + i];
        for (int l = 0; l < net->n_layers; l++) {
            for (int o = 0; o < net->sizes[l + 1]; o++) {
                double acc = b[l][o];
                for (int i = 0; i < net->sizes[l]; i++)
                    acc += W[l][o * net->sizes[l] + i] * h[i];
                y[o] = l < net->n_layers - 1 ? ref_act(net->act, acc) : acc;
            }
            memcpy(h, y, sizeof(h));
        }
        int D = net->sizes[net->n_layers];
        double ss = (double)MMCL_CLIP_L2_EPS * MMCL_CLIP_L2_EPS;
        for (int i = 0; i < D; i++)
            ss += h[i] * h[i];
        for (int i = 0; i < D; i++)
            z[n * D + i] = h[i] / sqrt(ss);
    }
}

static double
ref_loss(const ref_net *n1, const ref_net *n2, const double *theta, size_t np1,
         size_t np2, const float *x1, const float *x2)
{
    double z1[GB * GMAX], z2[GB * GMAX], l[GB][GB];
    int D = n1->sizes[n1->n_layers];
    ref_embed(z1, n1, theta, x1);
    ref_embed(z2, n2, theta + np1, x2);
    double tau = exp(theta[np1 + np2]);
    for (int i = 0; i < GB; i++)
        for (int j = 0; j < GB; j++) {
            double s = 0.0;
            for (int k = 0; k < D; k++)
                s += z1[i * D + k] * z2[j * D + k];
            l[i][j] = s / tau;
        }
    double loss = 0.0;
    for (int i = 0; i < GB; i++) {
        double sr = 0.0, sc = 0.0;
        for (int j = 0; j < GB; j++) {
            sr += exp(l[i][j]);
            sc += exp(l[j][i]);
        }
        loss += log(sr) + log(sc) - 2.0 * l[i][i];
    }
    return 0.5 * loss / GB;
}

static void
check_step_gradient(const ref_net *n1, const ref_net *n2, uint64_t seed)
{
    mmcl_context *ctx = mmcl_context_create();
    int d1 = n1->sizes[0], d2 = n2->sizes[0];
    float x1[GB * GMAX], x2[GB * GMAX];
    uint64_t s = seed;
    mmcl__rng_fill_normal(&s, x1, 0.0, 1.0, (size_t)GB * d1);
    mmcl__rng_fill_normal(&s, x2, 0.0, 1.0, (size_t)GB * d2);
    mmcl_mlp *f1 =
        make_mlp(ctx, n1->sizes, n1->n_layers + 1, n1->act, seed + 1);
    mmcl_mlp *f2 =
        make_mlp(ctx, n2->sizes, n2->n_layers + 1, n2->act, seed + 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f2);
    /* Nonzero biases, so their gradients are exercised off the origin. */
    mmcl__rng_fill_normal(&s, f1->params + f1->n_weights, 0.0, 0.3,
                          f1->n_params - f1->n_weights);
    mmcl__rng_fill_normal(&s, f2->params + f2->n_weights, 0.0, 0.3,
                          f2->n_params - f2->n_weights);
    mmcl_clip_work *w = mmcl__clip_work_create(ctx, f1, f2, GB, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);

    const float tau = 0.3f;
    double loss = 0.0;
    float dlt = 0.0f;
    CU_ASSERT_EQUAL_FATAL(
        mmcl__clip_loss_grad(ctx, &loss, &dlt, w, f1, f2, x1, x2, tau, GB),
        MMCL_OK);

    size_t np1 = f1->n_params, np2 = f2->n_params, n = np1 + np2 + 1;

    /* The same step on two workers (single-threaded BLAS): the same bits. */
    {
        float *g1 = malloc((np1 + np2) * sizeof(float));
        CU_ASSERT_PTR_NOT_NULL_FATAL(g1);
        memcpy(g1, f1->grads, np1 * sizeof(float));
        memcpy(g1 + np1, f2->grads, np2 * sizeof(float));
        int blas = mmcl__blas_set_threads(1);
        mmcl_clip_work *w2 = mmcl__clip_work_create(ctx, f1, f2, GB, 2);
        CU_ASSERT_PTR_NOT_NULL_FATAL(w2);
        double loss2 = 0.0;
        float dlt2 = 0.0f;
        CU_ASSERT_EQUAL(mmcl__clip_loss_grad(ctx, &loss2, &dlt2, w2, f1, f2, x1,
                                             x2, tau, GB),
                        MMCL_OK);
        mmcl__clip_work_destroy(w2);
        mmcl__blas_set_threads(blas);
        CU_ASSERT_EQUAL(memcmp(&loss, &loss2, sizeof(loss)), 0);
        CU_ASSERT_EQUAL(memcmp(&dlt, &dlt2, sizeof(dlt)), 0);
        CU_ASSERT_EQUAL(memcmp(g1, f1->grads, np1 * sizeof(float)), 0);
        CU_ASSERT_EQUAL(memcmp(g1 + np1, f2->grads, np2 * sizeof(float)), 0);
        free(g1);
    }
    double *theta = malloc(n * sizeof(double));
    double *numeric = malloc(n * sizeof(double));
    double *analytic = malloc(n * sizeof(double));
    for (size_t i = 0; i < np1; i++) {
        theta[i] = f1->params[i];
        analytic[i] = f1->grads[i];
    }
    for (size_t i = 0; i < np2; i++) {
        theta[np1 + i] = f2->params[i];
        analytic[np1 + i] = f2->grads[i];
    }
    theta[np1 + np2] = log((double)tau);
    analytic[np1 + np2] = dlt;

    double ref = ref_loss(n1, n2, theta, np1, np2, x1, x2);
    printf("\n  loss %.7f, double reference %.7f\n", loss, ref);
    CU_ASSERT_DOUBLE_EQUAL(loss, ref, 1e-5);

    /* Central differences in double, O(h^2) truncation. */
    const double h = 1e-6;
    double scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        double keep = theta[i];
        theta[i] = keep + h;
        double lp = ref_loss(n1, n2, theta, np1, np2, x1, x2);
        theta[i] = keep - h;
        double lm = ref_loss(n1, n2, theta, np1, np2, x1, x2);
        theta[i] = keep;
        numeric[i] = (lp - lm) / (2.0 * h);
        scale = fmax(scale, fabs(numeric[i]));
    }
    /* float32 pipeline against a double reference: relative 1e-4 of the
     * largest gradient component. */
    CU_ASSERT_TRUE(scale > 1e-3);
    CU_ASSERT_TRUE(
        test_check_tensor("f1 grads", analytic, numeric, np1, 1e-4 * scale));
    CU_ASSERT_TRUE(test_check_tensor("f2 grads", analytic + np1, numeric + np1,
                                     np2, 1e-4 * scale));
    CU_ASSERT_TRUE(test_check_tensor("dlog_tau", analytic + np1 + np2,
                                     numeric + np1 + np2, 1, 1e-4 * scale));
    free(theta);
    free(numeric);
    free(analytic);
    mmcl__clip_work_destroy(w);
    mmcl__mlp_destroy(f1);
    mmcl__mlp_destroy(f2);
    mmcl_context_destroy(ctx);
}

static void
clip_step_gradient_matches_double_finite_differences_relu_mlp(void)
{
    ref_net n1 = {2, {6, 8, 4}, MMCL_ACTIVATION_RELU};
    ref_net n2 = {2, {3, 7, 4}, MMCL_ACTIVATION_RELU};
    check_step_gradient(&n1, &n2, 100);
}

static void
clip_step_gradient_matches_double_finite_differences_gelu_and_linear(void)
{
    ref_net n1 = {3, {5, 6, 6, 3}, MMCL_ACTIVATION_GELU};
    ref_net n2 = {1, {4, 3}, MMCL_ACTIVATION_GELU}; /* linear encoder */
    check_step_gradient(&n1, &n2, 200);
}

/* ---- Control flow and errors -------------------------------------------- */

typedef struct counter {
    int calls;
    int cancel_at; /* return 0 on this call (1-based); 0 = never */
    double last;
} counter;

static int
count_progress(double complete, const char *msg, void *user)
{
    counter *c = user;
    (void)msg;
    c->calls++;
    c->last = complete;
    return c->cancel_at == 0 || c->calls < c->cancel_at;
}

static void
clip_progress_returning_zero_cancels(void)
{
    shared_problem p;
    CU_ASSERT_TRUE_FATAL(problem_open(&p));
    mmcl_clip_config cfg;
    test_config(&cfg);
    counter c = {0, 4, 0.0};
    float lt = 123.0f;
    CU_ASSERT_EQUAL(mmcl__clip_train(p.ctx, p.f1, p.f2, &lt, p.X1, p.X2, SN,
                                     &cfg, NULL, NULL, count_progress, &c),
                    MMCL_ERR_CANCELLED);
    CU_ASSERT_EQUAL(c.calls, 4);
    CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(p.ctx), "cancelled"));
    CU_ASSERT_EQUAL(lt, 123.0f); /* not written on failure */
    problem_close(&p);
}

static void
clip_drops_the_last_partial_batch(void)
{
    shared_problem p;
    CU_ASSERT_TRUE_FATAL(problem_open(&p));
    mmcl_clip_config cfg;
    test_config(&cfg);
    cfg.epochs = 2;
    cfg.batch = 600; /* 2048 = 3 * 600 + 248: three steps per epoch */
    counter c = {0, 0, 0.0};
    CU_ASSERT_EQUAL(mmcl__clip_train(p.ctx, p.f1, p.f2, NULL, p.X1, p.X2, SN,
                                     &cfg, NULL, NULL, count_progress, &c),
                    MMCL_OK);
    CU_ASSERT_EQUAL(c.calls, 1 + 2 * 3);
    CU_ASSERT_DOUBLE_EQUAL(c.last, 1.0, 0.0);

    /* Fewer rows than the batch: one step of all N rows per epoch. */
    c.calls = 0;
    cfg.batch = 64;
    CU_ASSERT_EQUAL(mmcl__clip_train(p.ctx, p.f1, p.f2, NULL, p.X1, p.X2, 10,
                                     &cfg, NULL, NULL, count_progress, &c),
                    MMCL_OK);
    CU_ASSERT_EQUAL(c.calls, 1 + 2 * 1);
    problem_close(&p);
}

static void
clip_loss_per_step_is_every_step_and_averages_to_the_epoch(void)
{
    shared_problem a, b;
    CU_ASSERT_TRUE_FATAL(problem_open(&a));
    CU_ASSERT_TRUE_FATAL(problem_open(&b));
    mmcl_clip_config cfg;
    test_config(&cfg);
    cfg.epochs = 2;
    cfg.batch = 600; /* three steps per epoch, 248 rows dropped */
    enum { STEPS = 3 };
    double curve[2], steps[2 * STEPS + 1], plain[2];
    steps[2 * STEPS] = -1.0; /* one past the end: must stay */
    CU_ASSERT_EQUAL_FATAL(mmcl__clip_train(a.ctx, a.f1, a.f2, NULL, a.X1, a.X2,
                                           SN, &cfg, curve, steps, NULL, NULL),
                          MMCL_OK);
    CU_ASSERT_EQUAL(steps[2 * STEPS], -1.0);
    for (int e = 0; e < 2; e++) {
        double sum = 0.0;
        for (int s = 0; s < STEPS; s++) {
            CU_ASSERT_TRUE(isfinite(steps[e * STEPS + s]) &&
                           steps[e * STEPS + s] > 0.0);
            sum += steps[e * STEPS + s];
        }
        CU_ASSERT_DOUBLE_EQUAL(sum / STEPS, curve[e], 1e-12);
    }
    /* Recording the steps does not change the training. */
    CU_ASSERT_EQUAL_FATAL(mmcl__clip_train(b.ctx, b.f1, b.f2, NULL, b.X1, b.X2,
                                           SN, &cfg, plain, NULL, NULL, NULL),
                          MMCL_OK);
    CU_ASSERT_EQUAL(memcmp(curve, plain, sizeof(curve)), 0);
    CU_ASSERT_EQUAL(
        memcmp(a.f1->params, b.f1->params, a.f1->n_params * sizeof(float)), 0);
    problem_close(&a);
    problem_close(&b);
}

static void
clip_non_finite_data_names_the_epoch_and_step(void)
{
    shared_problem p;
    CU_ASSERT_TRUE_FATAL(problem_open(&p));
    mmcl_clip_config cfg;
    test_config(&cfg);
    p.X1[100 * SD1 + 3] = NAN;
    double curve[8] = {0};
    CU_ASSERT_EQUAL(mmcl__clip_train(p.ctx, p.f1, p.f2, NULL, p.X1, p.X2, SN,
                                     &cfg, curve, NULL, NULL, NULL),
                    MMCL_ERR_NUMERIC);
    const char *msg = mmcl_context_errmsg(p.ctx);
    printf("\n  %s\n", msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "epoch 1, step "));
    CU_ASSERT_EQUAL(curve[0], 0.0); /* no epoch completed */
    /* The parameters stay finite: the bad step was not applied. */
    int finite = 1;
    for (size_t i = 0; i < p.f1->n_params; i++)
        finite &= isfinite(p.f1->params[i]) != 0;
    CU_ASSERT_TRUE(finite);
    problem_close(&p);
}

static void
clip_rejects_bad_arguments_with_a_message(void)
{
    shared_problem p;
    CU_ASSERT_TRUE_FATAL(problem_open(&p));
    mmcl_clip_config cfg;
    test_config(&cfg);

    /* Output widths differ. */
    static const int narrow[] = {SD2, SH, SD - 1};
    mmcl_mlp *f3 = make_mlp(p.ctx, narrow, 3, MMCL_ACTIVATION_RELU, 3);
    CU_ASSERT_EQUAL(mmcl__clip_train(p.ctx, p.f1, f3, NULL, p.X1, p.X2, SN,
                                     &cfg, NULL, NULL, NULL, NULL),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(p.ctx), "widths"));
    mmcl__mlp_destroy(f3);

    /* A frozen encoder. */
    mmcl_mlp *frozen =
        mmcl__mlp_create(p.ctx, sizes2, 3, MMCL_ACTIVATION_RELU, 0);
    CU_ASSERT_EQUAL(mmcl__clip_train(p.ctx, p.f1, frozen, NULL, p.X1, p.X2, SN,
                                     &cfg, NULL, NULL, NULL, NULL),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(p.ctx), "trainable"));
    mmcl__mlp_destroy(frozen);

    /* Settings out of range. */
    mmcl_clip_config bad = cfg;
    bad.batch = 1;
    CU_ASSERT_EQUAL(mmcl__clip_train(p.ctx, p.f1, p.f2, NULL, p.X1, p.X2, SN,
                                     &bad, NULL, NULL, NULL, NULL),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(p.ctx), "batch"));
    bad = cfg;
    bad.tau = 0.0f;
    CU_ASSERT_EQUAL(mmcl__clip_train(p.ctx, p.f1, p.f2, NULL, p.X1, p.X2, SN,
                                     &bad, NULL, NULL, NULL, NULL),
                    MMCL_ERR_INVALID_ARG);
    bad = cfg;
    bad.lr = NAN;
    CU_ASSERT_EQUAL(mmcl__clip_train(p.ctx, p.f1, p.f2, NULL, p.X1, p.X2, SN,
                                     &bad, NULL, NULL, NULL, NULL),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(mmcl__clip_train(p.ctx, p.f1, p.f2, NULL, p.X1, p.X2, 1,
                                     &cfg, NULL, NULL, NULL, NULL),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_STRING_NOT_EQUAL(mmcl_context_errmsg(p.ctx), "");
    problem_close(&p);
}

static void
clip_restores_the_blas_thread_count(void)
{
    shared_problem p;
    CU_ASSERT_TRUE_FATAL(problem_open(&p));
    int before = mmcl__blas_get_threads();
    mmcl_clip_config cfg;
    test_config(&cfg);
    cfg.epochs = 1;
    cfg.n_threads = before == 1 ? 2 : 1;
    CU_ASSERT_EQUAL(mmcl__clip_train(p.ctx, p.f1, p.f2, NULL, p.X1, p.X2, SN,
                                     &cfg, NULL, NULL, NULL, NULL),
                    MMCL_OK);
    CU_ASSERT_EQUAL(mmcl__blas_get_threads(), before);
    char describe[256];
    mmcl__blas_describe(describe, sizeof(describe));
    printf("\n  BLAS: %s\n", describe);
    CU_ASSERT_TRUE(describe[0] != '\0');
    problem_close(&p);
}

int
main(void)
{
    static const test_case cases[] = {
        {"clip_loss_starts_near_log_batch_and_falls_on_shared_signal",
         clip_loss_starts_near_log_batch_and_falls_on_shared_signal},
        {"clip_same_seed_gives_bitwise_identical_parameters_and_losses",
         clip_same_seed_gives_bitwise_identical_parameters_and_losses},
        {"clip_two_threads_give_bitwise_the_same_result_as_one",
         clip_two_threads_give_bitwise_the_same_result_as_one},
        {"clip_learned_temperature_moves_and_stays_in_bounds",
         clip_learned_temperature_moves_and_stays_in_bounds},
        {"clip_step_gradient_matches_double_finite_differences_relu_mlp",
         clip_step_gradient_matches_double_finite_differences_relu_mlp},
        {"clip_step_gradient_matches_double_finite_differences_gelu_and_"
         "linear",
         clip_step_gradient_matches_double_finite_differences_gelu_and_linear},
        {"clip_progress_returning_zero_cancels",
         clip_progress_returning_zero_cancels},
        {"clip_drops_the_last_partial_batch",
         clip_drops_the_last_partial_batch},
        {"clip_loss_per_step_is_every_step_and_averages_to_the_epoch",
         clip_loss_per_step_is_every_step_and_averages_to_the_epoch},
        {"clip_non_finite_data_names_the_epoch_and_step",
         clip_non_finite_data_names_the_epoch_and_step},
        {"clip_rejects_bad_arguments_with_a_message",
         clip_rejects_bad_arguments_with_a_message},
        {"clip_restores_the_blas_thread_count",
         clip_restores_the_blas_thread_count},
        {NULL, NULL}};
    return test_run_suite("clip", cases);
}
