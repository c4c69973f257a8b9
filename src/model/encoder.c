/* SPDX-License-Identifier: MIT */
/*
 * A model's encoders and decoders, read from its tensors and metadata and
 * checked against each other, and the batched forward pass of an encoder.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cpl_string.h>

#include "context_internal.h"
#include "model_schema_internal.h"
#include "encoder_internal.h"
#include "model_internal.h"


struct mmcl__encoder_work {
    mmcl_mlp_acts *acts[2]; /* for MMCL__GEMM_ROWS rows */
    float *x_pad;           /* (GEMM_ROWS, max d, K): a short last block */
    float *y_pad;           /* (GEMM_ROWS, max K, B): its output */
    float *priv;            /* (GEMM_ROWS, max 2 kp + k) private-part
                               scratch */
    mmcl__matmul_exec *exec; /* this thread's oneDNN stream, bf16 input */
};

static int
json_int(const cJSON *obj, const char *key, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble)
        return 0;
    *out = (int)v->valuedouble;
    return 1;
}

static double *
json_doubles(mmcl_context *ctx, const cJSON *obj, const char *key, int n)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != n)
        return NULL;
    double *out = mmcl__malloc_array(ctx, (size_t)n, 1, sizeof(double));
    if (!out)
        return NULL;
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr)
    {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
            free(out);
            return NULL;
        }
        out[i++] = v->valuedouble;
    }
    return out;
}

/* The tensor @p name with shape (rows, cols) (cols 0: a vector of rows). */
static mmcl_status
get_tensor(mmcl_context *ctx, const mmcl_model *model, const char *name,
           int rows, int cols, const float **out)
{
    int64_t shape[2] = {rows, cols};
    mmcl_status st = mmcl__model_check_shape(ctx, model, name, cols ? 2 : 1,
                                             shape);
    if (st != MMCL_OK)
        return st;
    *out = mmcl_model_tensor(model, name, NULL, NULL);
    return MMCL_OK;
}

static mmcl_status
get_linear(mmcl_context *ctx, const mmcl_model *model, const char *prefix,
           int out_dim, int in_dim, mmcl__linear *l)
{
    char wname[MMCL__TENSOR_NAME_SIZE], bname[MMCL__TENSOR_NAME_SIZE];
    mmcl__linear_names(prefix, wname, bname);
    mmcl_status st = get_tensor(ctx, model, wname, out_dim, in_dim, &l->W);
    if (st != MMCL_OK)
        return st;
    st = get_tensor(ctx, model, bname, out_dim, 0, &l->b);
    l->in = in_dim;
    l->out = out_dim;
    return st;
}

static mmcl_status
bad_metadata(mmcl_context *ctx, const char *what)
{
    return mmcl__error(ctx, MMCL_ERR_FORMAT,
                       "model metadata is missing or has an invalid '%s'",
                       what);
}

/* The noise floors of a modality, when the model has them (models
 * trained before they were estimated have none): 0 when the record is
 * there but invalid. */
static int
load_noise(const cJSON *j, mmcl__modality *mod)
{
    mod->floor_infoloss = mod->floor_unimodal = NAN;
    const cJSON *noise = cJSON_GetObjectItemCaseSensitive(j, "noise");
    if (!noise)
        return 1;
    const cJSON *fa = cJSON_GetObjectItemCaseSensitive(noise, "floor_infoloss");
    const cJSON *fu = cJSON_GetObjectItemCaseSensitive(noise, "floor_unimodal");
    if (!cJSON_IsNumber(fa) || !cJSON_IsNumber(fu) ||
        !(fa->valuedouble >= 0) || !(fu->valuedouble >= 0) ||
        !isfinite(fa->valuedouble) || !isfinite(fu->valuedouble))
        return 0;
    mod->floor_infoloss = fa->valuedouble;
    mod->floor_unimodal = fu->valuedouble;
    return 1;
}

static mmcl_status make_products(mmcl_context *ctx, mmcl__encoder *enc,
                                 mmcl__precision p);

static mmcl_status
load_modality(mmcl_context *ctx, mmcl__encoder *enc, const cJSON *meta,
              int m)
{
    mmcl__modality *mod = &enc->mod[m];
    const char *name = mmcl__modality_name(m);
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(meta, name);
    char key[MMCL__TENSOR_NAME_SIZE];
    if (!cJSON_IsObject(j))
        return bad_metadata(ctx, name);
    if (!json_int(j, "bands", &mod->B) || mod->B < 1)
        return bad_metadata(ctx, "bands");
    if (!json_int(j, "private_dim", &mod->kp) || mod->kp < 0)
        mod->kp = 0;
    mod->k = enc->k;
    mod->K = mod->k + mod->kp;
    mod->d = mod->B * enc->P * enc->P;
    mod->Ku = mod->K < mod->d ? mod->K : mod->d;
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(j, "normalize");
    mod->normalize = cJSON_IsTrue(norm);
    if (!load_noise(j, mod))
        return bad_metadata(ctx, "noise");
    mod->mean = json_doubles(ctx, j, "mean", mod->B);
    mod->std = json_doubles(ctx, j, "std", mod->B);
    if (!mod->mean || !mod->std)
        return bad_metadata(ctx, "mean/std");
    /* Standardization divides by std: a std of 0 or less writes +-Inf or
     * NaN bands. */
    for (int b = 0; b < mod->B; b++)
        if (!(mod->std[b] > 0)) {
            const char *src = mmcl__model_source(enc->model);
            return mmcl__error(ctx, MMCL_ERR_FORMAT,
                               "model%s%s%s: the %s std of band %d is %g; "
                               "the standardization divides by it, so it "
                               "must be positive",
                               src ? " '" : "", src ? src : "",
                               src ? "'" : "", name, b + 1, mod->std[b]);
        }

    /* The aligned encoder: an MLP whose sizes are in the metadata. */
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(j, "layers");
    int sizes[MMCL_MLP_MAX_LAYERS + 1];
    int n_sizes = cJSON_GetArraySize(layers);
    if (!cJSON_IsArray(layers) || n_sizes < 2 ||
        n_sizes > MMCL_MLP_MAX_LAYERS + 1)
        return bad_metadata(ctx, "layers");
    for (int i = 0; i < n_sizes; i++) {
        const cJSON *v = cJSON_GetArrayItem(layers, i);
        if (!cJSON_IsNumber(v) || v->valuedouble < 1 ||
            v->valuedouble > 1e6)
            return bad_metadata(ctx, "layers");
        sizes[i] = (int)v->valuedouble;
    }
    if (sizes[0] != mod->d || sizes[n_sizes - 1] != mod->k)
        return mmcl__error(ctx, MMCL_ERR_FORMAT,
                           "model %s encoder maps %d to %d values; the "
                           "metadata says %d bands x %dx%d patch -> k = %d",
                           name, sizes[0], sizes[n_sizes - 1], mod->B, enc->P,
                           enc->P, mod->k);
    mmcl_activation act = MMCL_ACTIVATION_RELU;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "activation");
    if (cJSON_IsString(a) && !mmcl__activation_from_name(a->valuestring, &act))
        return bad_metadata(ctx, "activation");
    mod->mlp = mmcl__mlp_create(ctx, sizes, n_sizes, act, 0);
    if (!mod->mlp)
        return mmcl_context_errcode(ctx);
    for (int l = 0; l < n_sizes - 1; l++) {
        const float *W, *b;
        mmcl__tensor_name(key, MMCL__T_ENCODER, m, l, "weight");
        mmcl_status st = get_tensor(ctx, enc->model, key, sizes[l + 1],
                                    sizes[l], &W);
        if (st != MMCL_OK)
            return st;
        mmcl__tensor_name(key, MMCL__T_ENCODER, m, l, "bias");
        st = get_tensor(ctx, enc->model, key, sizes[l + 1], 0, &b);
        if (st != MMCL_OK)
            return st;
        memcpy(mod->mlp->W[l], W, sizeof(float) * sizes[l] * sizes[l + 1]);
        memcpy(mod->mlp->b[l], b, sizeof(float) * sizes[l + 1]);
    }

    mmcl_status st = MMCL_OK;
    if (mod->kp > 0) {
        mmcl__tensor_name(key, MMCL__T_PRIVATE_WX, m, 0, NULL);
        st = get_tensor(ctx, enc->model, key, mod->kp, mod->d,
                        &mod->priv_x.W);
        mmcl__tensor_name(key, MMCL__T_PRIVATE_BIAS, m, 0, NULL);
        if (st == MMCL_OK)
            st = get_tensor(ctx, enc->model, key, mod->kp, 0, &mod->priv_x.b);
        mod->priv_x.in = mod->d;
        mod->priv_x.out = mod->kp;
        mmcl__tensor_name(key, MMCL__T_PRIVATE_WH, m, 0, NULL);
        if (st == MMCL_OK)
            st = get_tensor(ctx, enc->model, key, mod->kp, mod->k,
                            &mod->priv_h.W);
        mod->priv_h.b = NULL;
        mod->priv_h.in = mod->k;
        mod->priv_h.out = mod->kp;
    }
    mmcl__tensor_name(key, MMCL__T_UNIMODAL, m, 0, NULL);
    if (st == MMCL_OK)
        st = get_linear(ctx, enc->model, key, mod->Ku, mod->d,
                        &mod->unimodal);
    mmcl__tensor_name(key, MMCL__T_DECODER_ALIGNED, m, 0, NULL);
    if (st == MMCL_OK)
        st = get_linear(ctx, enc->model, key, mod->B, mod->K,
                        &mod->dec_aligned);
    mmcl__tensor_name(key, MMCL__T_DECODER_UNIMODAL, m, 0, NULL);
    if (st == MMCL_OK)
        st = get_linear(ctx, enc->model, key, mod->B, mod->Ku,
                        &mod->dec_unimodal);
    return st;
}

/* The warnings training recorded (optional; models written before them
 * have none). */
static mmcl_status
load_warnings(mmcl_context *ctx, mmcl__encoder *enc, const cJSON *meta)
{
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(meta, "warnings");
    if (!ws)
        return MMCL_OK;
    if (!cJSON_IsArray(ws))
        return bad_metadata(ctx, "warnings");
    const cJSON *w;
    cJSON_ArrayForEach(w, ws)
    {
        const char *code = cJSON_GetStringValue(
            cJSON_GetObjectItemCaseSensitive(w, "code"));
        const char *msg = cJSON_GetStringValue(
            cJSON_GetObjectItemCaseSensitive(w, "message"));
        if (!code || !msg)
            return bad_metadata(ctx, "warnings");
        enc->warning_codes = CSLAddString(enc->warning_codes, code);
        enc->warning_messages = CSLAddString(enc->warning_messages, msg);
    }
    return MMCL_OK;
}

mmcl_status
mmcl__encoder_create(mmcl_context *ctx, const mmcl_model *model,
                     mmcl__encoder **out)
{
    *out = NULL;
    mmcl__encoder *enc = calloc(1, sizeof(*enc));
    if (!enc)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    enc->model = model;
    mmcl_status st = MMCL_OK;
    cJSON *meta = cJSON_Parse(mmcl_model_metadata_json(model));
    if (!cJSON_IsObject(meta)) {
        st = bad_metadata(ctx, "metadata");
        goto done;
    }
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(meta, "objective");
    if (!cJSON_IsString(obj) ||
        strlen(obj->valuestring) >= sizeof(enc->objective)) {
        st = bad_metadata(ctx, "objective");
        goto done;
    }
    snprintf(enc->objective, sizeof(enc->objective), "%s", obj->valuestring);
    if (!json_int(meta, "patch", &enc->P) || enc->P < 1 || enc->P % 2 == 0) {
        st = bad_metadata(ctx, "patch");
        goto done;
    }
    if (!json_int(meta, "k", &enc->k) || enc->k < 1) {
        st = bad_metadata(ctx, "k");
        goto done;
    }
    for (int m = 0; m < 2 && st == MMCL_OK; m++)
        st = load_modality(ctx, enc, meta, m);
    for (int m = 0; m < 2 && st == MMCL_OK; m++) {
        char key[MMCL__TENSOR_NAME_SIZE];
        mmcl__tensor_name(key, MMCL__T_DECODER_NONRED, m, 0, NULL);
        st = get_linear(ctx, model, key, enc->mod[m].B, enc->mod[1 - m].d,
                        &enc->mod[m].dec_nonred);
    }
    if (st == MMCL_OK)
        st = load_warnings(ctx, enc, meta);
    if (st == MMCL_OK)
        st = mmcl_model_hash(ctx, model, enc->hash);
    if (st == MMCL_OK)
        st = make_products(ctx, enc, MMCL__PRECISION_F32);
done:
    cJSON_Delete(meta);
    if (st == MMCL_OK)
        *out = enc;
    else
        mmcl__encoder_free(enc);
    return st;
}

/* The products of every linear map of @p mod that the encoder runs. */
static void
linears(mmcl__modality *mod, mmcl__linear *out[6])
{
    out[0] = &mod->priv_x;
    out[1] = &mod->priv_h;
    out[2] = &mod->unimodal;
    out[3] = &mod->dec_aligned;
    out[4] = &mod->dec_unimodal;
    out[5] = &mod->dec_nonred;
}

static void
free_products(mmcl__encoder *enc)
{
    for (int m = 0; m < 2; m++) {
        mmcl__modality *mod = &enc->mod[m];
        mmcl__linear *l[6];
        linears(mod, l);
        for (int i = 0; i < 6; i++) {
            mmcl__matmul_destroy(l[i]->mm);
            l[i]->mm = NULL;
        }
        for (int i = 0; i < MMCL_MLP_MAX_LAYERS; i++) {
            mmcl__matmul_destroy(mod->layer_mm[i]);
            mod->layer_mm[i] = NULL;
        }
    }
}

/*
 * Makes the products of @p enc in precision @p p. In bf16 only an MLP's
 * products from one hidden layer to the next run in bf16, each writing
 * its output in bf16 for the next one where that one is bf16 too and no
 * GELU sits between them. The others stay f32:
 * - those that read the standardized patch vectors (an MLP's first
 *   layer, the private part's wx, the unimodal PCA): rounding those
 *   inputs and weights to 8 bits is most of bf16's error where the
 *   weights cancel (a CCA's whitening), for a small share of an MLP's
 *   work;
 * - those that write the representation (an MLP's last layer, the
 *   private part's wh): rounding the last layer's weights and input was
 *   38-51 % of the information-loss maps' error (bench/README.md), for
 *   a layer of k outputs;
 * - the decoders.
 */
static mmcl_status
make_products(mmcl_context *ctx, mmcl__encoder *enc, mmcl__precision p)
{
    const int R = MMCL__GEMM_ROWS;
    const mmcl__precision F32 = MMCL__PRECISION_F32;
    free_products(enc);
    enc->precision = p;
    for (int m = 0; m < 2; m++) {
        mmcl__modality *mod = &enc->mod[m];
        const mmcl_mlp *mlp = mod->mlp;
        /* An encoder without layers (an audit's: the embedding is read,
         * not computed) still runs its unimodal PCA and decoders. */
        for (int l = 0; mlp && l < mlp->n_layers; l++) {
            /* ReLU is fused into the product; GELU follows it. */
            int hidden = l < mlp->n_layers - 1;
            mmcl__matmul_act act = hidden && mlp->act == MMCL_ACTIVATION_RELU
                                       ? MMCL__MATMUL_RELU
                                       : MMCL__MATMUL_NONE;
            /* The first and the last layer f32; a bf16 output only into
             * a bf16 layer. */
            mmcl__precision lp = l > 0 && hidden ? p : F32;
            mmcl__precision out = lp == MMCL__PRECISION_BF16 &&
                                          l + 1 < mlp->n_layers - 1 &&
                                          mlp->act != MMCL_ACTIVATION_GELU
                                      ? MMCL__PRECISION_BF16
                                      : F32;
            mod->layer_mm[l] = mmcl__matmul_create_out(
                ctx, R, mlp->sizes[l], mlp->sizes[l + 1], mlp->W[l],
                mlp->b[l], act, lp, out);
            if (!mod->layer_mm[l])
                return mmcl_context_errcode(ctx);
        }
        mmcl__linear *ls[6];
        linears(mod, ls);
        for (int i = 0; i < 6; i++) {
            mmcl__linear *l = ls[i];
            if (!l->W)
                continue;
            l->mm = mmcl__matmul_create(ctx, R, l->in, l->out, l->W, l->b,
                                        MMCL__MATMUL_NONE, F32);
            if (!l->mm)
                return mmcl_context_errcode(ctx);
        }
    }
    return MMCL_OK;
}

mmcl_status
mmcl__encoder_set_precision(mmcl_context *ctx, mmcl__encoder *enc,
                            mmcl__precision p, const char *option)
{
    if (p == enc->precision && enc->mod[0].layer_mm[0])
        return MMCL_OK;
    mmcl_status st = mmcl__precision_check(ctx, p, option);
    return st == MMCL_OK ? make_products(ctx, enc, p) : st;
}

void
mmcl__encoder_free(mmcl__encoder *enc)
{
    if (!enc)
        return;
    free_products(enc);
    for (int m = 0; m < 2; m++) {
        mmcl__mlp_destroy(enc->mod[m].mlp);
        free(enc->mod[m].mean);
        free(enc->mod[m].std);
    }
    CSLDestroy(enc->input_notes);
    CSLDestroy(enc->warning_codes);
    CSLDestroy(enc->warning_messages);
    free(enc);
}

mmcl__encoder_work *
mmcl__encoder_work_create(mmcl_context *ctx, const mmcl__encoder *enc)
{
    mmcl__encoder_work *w = calloc(1, sizeof(*w));
    if (!w) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    size_t dmax = 1, wide = 1, ymax = 1, widest_in = 1;
    for (int m = 0; m < 2; m++) {
        const mmcl__modality *mod = &enc->mod[m];
        size_t K = (size_t)mod->K, B = (size_t)mod->B;
        if ((size_t)mod->d > dmax)
            dmax = (size_t)mod->d;
        if (K > dmax)
            dmax = K;
        if ((size_t)(2 * mod->kp + mod->k) > wide)
            wide = (size_t)(2 * mod->kp + mod->k);
        if (K > ymax)
            ymax = K;
        if (B > ymax)
            ymax = B;
        for (int l = 0; mod->mlp && l < mod->mlp->n_layers; l++)
            if ((size_t)mod->mlp->sizes[l] > widest_in)
                widest_in = (size_t)mod->mlp->sizes[l];
    }
    if (dmax > widest_in)
        widest_in = dmax;
    w->x_pad = mmcl__calloc_array(ctx, MMCL__GEMM_ROWS, dmax, sizeof(float));
    w->y_pad = mmcl__malloc_array(ctx, MMCL__GEMM_ROWS, ymax, sizeof(float));
    w->priv = mmcl__malloc_array(ctx, MMCL__GEMM_ROWS, wide, sizeof(float));
    w->exec = mmcl__matmul_exec_create(
        ctx, enc->precision == MMCL__PRECISION_BF16
                 ? (size_t)MMCL__GEMM_ROWS * widest_in
                 : 0);
    int fail = !w->x_pad || !w->y_pad || !w->priv || !w->exec;
    /* An encoder without layers (an audit's) runs only linear maps. */
    for (int m = 0; m < 2 && !fail; m++) {
        if (!enc->mod[m].mlp)
            continue;
        w->acts[m] = mmcl__mlp_acts_create(ctx, enc->mod[m].mlp,
                                           MMCL__GEMM_ROWS, 0);
        fail = !w->acts[m];
    }
    if (fail) {
        mmcl__encoder_work_free(w);
        return NULL;
    }
    return w;
}

void
mmcl__encoder_work_free(mmcl__encoder_work *w)
{
    if (!w)
        return;
    for (int m = 0; m < 2; m++)
        mmcl__mlp_acts_destroy(w->acts[m]);
    free(w->x_pad);
    free(w->y_pad);
    free(w->priv);
    mmcl__matmul_exec_destroy(w->exec);
    free(w);
}

mmcl_status
mmcl__linear_apply(mmcl_context *ctx, mmcl__encoder_work *w, float *y,
                   const mmcl__linear *l, const float *x, int N)
{
    /* Blocks of exactly MMCL__GEMM_ROWS rows (see the header); a shorter
     * last block is padded with zero rows. */
    const int R = MMCL__GEMM_ROWS;
    mmcl_status st = MMCL_OK;
    for (int n0 = 0; n0 < N && st == MMCL_OK; n0 += R) {
        int n = N - n0 < R ? N - n0 : R;
        const float *xb = x + (size_t)n0 * l->in;
        float *yb = y + (size_t)n0 * l->out;
        if (n == R) {
            st = mmcl__matmul_run(ctx, l->mm, w->exec, yb, xb);
            continue;
        }
        memcpy(w->x_pad, xb, sizeof(float) * (size_t)n * l->in);
        memset(w->x_pad + (size_t)n * l->in, 0,
               sizeof(float) * (size_t)(R - n) * l->in);
        st = mmcl__matmul_run(ctx, l->mm, w->exec, w->y_pad, w->x_pad);
        if (st == MMCL_OK)
            memcpy(yb, w->y_pad, sizeof(float) * (size_t)n * l->out);
    }
    return st;
}

/* out (R, k) = the aligned encoder of modality m on x (R, d), R =
 * MMCL__GEMM_ROWS: the layers' products (ReLU fused), GELU after them. */
static mmcl_status
mlp_forward(mmcl_context *ctx, const mmcl__modality *mod,
            mmcl__encoder_work *w, mmcl_mlp_acts *acts, const float *x)
{
    const mmcl_mlp *mlp = mod->mlp;
    const void *h = x;
    mmcl__precision h_type = MMCL__PRECISION_F32;
    for (int l = 0; l < mlp->n_layers; l++) {
        /* A hidden output in bf16 (make_products) is the next layer's
         * input as it is. */
        const mmcl__matmul *mm = mod->layer_mm[l];
        mmcl_status st = mmcl__matmul_run_typed(ctx, mm, w->exec,
                                                acts->pre[l], h, h_type);
        if (st != MMCL_OK)
            return st;
        h_type = mmcl__matmul_out_precision(mm);
        if (l < mlp->n_layers - 1 && mlp->act == MMCL_ACTIVATION_GELU)
            mmcl__gelu_forward(acts->pre[l], acts->pre[l],
                               (size_t)MMCL__GEMM_ROWS * mlp->sizes[l + 1]);
        h = acts->pre[l];
    }
    return MMCL_OK;
}

mmcl_status
mmcl__encoder_embed(mmcl_context *ctx, const mmcl__encoder *enc,
                    mmcl__encoder_work *w, int m, const float *X, int N,
                    float *H)
{
    const mmcl__modality *mod = &enc->mod[m];
    const int R = MMCL__GEMM_ROWS;
    for (int n0 = 0; n0 < N; n0 += R) {
        int n = N - n0 < R ? N - n0 : R;
        const float *x = X + (size_t)n0 * mod->d;
        float *h = H + (size_t)n0 * mod->K;
        if (n < R) {
            /* A short block is padded with zero rows: every GEMM has R
             * rows, so a row's result does not depend on the others. */
            memcpy(w->x_pad, x, sizeof(float) * (size_t)n * mod->d);
            memset(w->x_pad + (size_t)n * mod->d, 0,
                   sizeof(float) * (size_t)(R - n) * mod->d);
            x = w->x_pad;
        }
        mmcl_status st = mlp_forward(ctx, mod, w, w->acts[m], x);
        if (st != MMCL_OK)
            return st;
        const float *out = w->acts[m]->out; /* (R, k) */
        for (int i = 0; i < n; i++) {
            const float *o = out + (size_t)i * mod->k;
            float *hi = h + (size_t)i * mod->K;
            if (mod->normalize) {
                double ss = 0;
                for (int j = 0; j < mod->k; j++)
                    ss += (double)o[j] * o[j];
                float sc = (float)(1.0 / sqrt(ss + 1e-12));
                for (int j = 0; j < mod->k; j++)
                    hi[j] = o[j] * sc;
            } else {
                memcpy(hi, o, sizeof(float) * mod->k);
            }
        }
        if (mod->kp > 0) {
            /* Private part p = wx x + bias + wh h, into columns k..K-1;
             * (R, kp), (R, kp) and (R, k) in the scratch. */
            float *p = w->priv, *q = w->priv + (size_t)R * mod->kp;
            float *hk = q + (size_t)R * mod->kp;
            for (int i = 0; i < R; i++)
                memcpy(hk + (size_t)i * mod->k,
                       i < n ? h + (size_t)i * mod->K : out + (size_t)i * mod->k,
                       sizeof(float) * mod->k);
            st = mmcl__matmul_run(ctx, mod->priv_x.mm, w->exec, p, x);
            if (st == MMCL_OK)
                st = mmcl__matmul_run(ctx, mod->priv_h.mm, w->exec, q, hk);
            if (st != MMCL_OK)
                return st;
            for (size_t i = 0; i < (size_t)R * mod->kp; i++)
                p[i] += q[i];
            for (int i = 0; i < n; i++)
                memcpy(h + (size_t)i * mod->K + mod->k,
                       p + (size_t)i * mod->kp, sizeof(float) * mod->kp);
        }
    }
    return MMCL_OK;
}
