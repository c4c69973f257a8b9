/* SPDX-License-Identifier: MIT */
/*
 * Fixed-shape matrix products on oneDNN's matmul, or on cblas_sgemm
 * (matmul.h). oneDNN is optional (MMCL_HAVE_DNNL): without it, or with
 * MMCL_ENGINE=openblas, every product is the cblas_sgemm of
 * nn.c's mmcl__linear_forward and bf16 is refused.
 */
#include "matmul.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <threads.h>

#include <cblas.h>

#include "nn.h"
#include "simd.h"

#ifdef MMCL_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#if DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_OMP
/* libgomp's, which oneDNN uses (CMake links it); declared here rather
 * than from <omp.h>, which a compiler without OpenMP support lacks. */
int omp_get_max_threads(void);
void omp_set_num_threads(int n);
#define MMCL_DNNL_OMP 1
#endif
#endif

#define ENGINE_ENV "MMCL_ENGINE"

const char *
mmcl__precision_name(mmcl__precision p)
{
    return p == MMCL__PRECISION_BF16 ? "bf16" : "f32";
}

int
mmcl__precision_from_name(const char *name, mmcl__precision *p)
{
    if (name && strcmp(name, "f32") == 0) {
        *p = MMCL__PRECISION_F32;
        return 1;
    }
    if (name && strcmp(name, "bf16") == 0) {
        *p = MMCL__PRECISION_BF16;
        return 1;
    }
    return 0;
}

/* Integer operations only: every clone (simd.h) gives the same bits. */
MMCL__VEC_CLONES void
mmcl__bf16_round(unsigned short *restrict dst, const float *restrict src,
                 size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], sizeof(u));
        /* NaN: keep it a (quiet) NaN; else round to nearest, ties to
         * even, on the 16 bits dropped. */
        uint32_t nan = (u & 0x7fffffffu) > 0x7f800000u;
        uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        dst[i] = (unsigned short)(nan ? ((u >> 16) | 0x40u) : r);
    }
}

/* ---- the engine, chosen once per process ----------------------------- */

static once_flag engine_once = ONCE_FLAG_INIT;
static mmcl_engine_info engine_info;
#ifdef MMCL_HAVE_DNNL
static dnnl_engine_t engine;
#endif

#ifdef MMCL_HAVE_DNNL
static const char *
isa_name(dnnl_cpu_isa_t isa)
{
    switch (isa) {
    case dnnl_cpu_isa_sse41:
        return "sse41";
    case dnnl_cpu_isa_avx:
        return "avx";
    case dnnl_cpu_isa_avx2:
        return "avx2";
    case dnnl_cpu_isa_avx2_vnni:
        return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic:
        return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops:
        return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core:
        return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni:
        return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16:
        return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx:
        return "avx512_core_amx";
    default:
        return "unknown";
    }
}

/* One thread for oneDNN's calls on this thread, until the matching
 * restore. With the OpenMP runtime (Debian's libdnnl2 links libgomp) a
 * call runs omp_get_max_threads() threads of the CALLING thread's team;
 * the thread count is an OpenMP per-thread setting, so each mmcl worker
 * sets its own, and a host's (QGIS') is put back after each call. */
static int
one_thread_begin(void)
{
#ifdef MMCL_DNNL_OMP
    int saved = omp_get_max_threads();
    if (saved != 1)
        omp_set_num_threads(1);
    return saved;
#else
    return 1;
#endif
}

static void
one_thread_end(int saved)
{
#ifdef MMCL_DNNL_OMP
    if (saved != 1)
        omp_set_num_threads(saved);
#else
    (void)saved;
#endif
}
#endif

static void
engine_init(void)
{
    mmcl_engine_info *e = &engine_info;
    memset(e, 0, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "OpenBLAS (cblas_sgemm)");
#ifdef MMCL_HAVE_DNNL
    const char *env = getenv(ENGINE_ENV);
    if (env && strcasecmp(env, "openblas") == 0) {
        snprintf(e->why, sizeof(e->why), "%s=%s", ENGINE_ENV, env);
        return;
    }
    int saved = one_thread_begin();
    dnnl_status_t s = dnnl_engine_create(&engine, dnnl_cpu, 0);
    one_thread_end(saved);
    if (s != dnnl_success) {
        snprintf(e->why, sizeof(e->why), "oneDNN has no CPU engine (%s)",
                 dnnl_status2str(s));
        engine = NULL;
        return;
    }
    const dnnl_version_t *v = dnnl_version();
    e->dnnl = 1;
    snprintf(e->name, sizeof(e->name), "oneDNN %d.%d.%d", v->major, v->minor,
             v->patch);
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    snprintf(e->isa, sizeof(e->isa), "%s", isa_name(isa));
    e->bf16 = (isa & dnnl_cpu_isa_avx512_core_bf16) ==
              dnnl_cpu_isa_avx512_core_bf16;
#ifdef MMCL_DNNL_OMP
    snprintf(e->runtime, sizeof(e->runtime), "OpenMP");
#elif DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_SEQ
    snprintf(e->runtime, sizeof(e->runtime), "sequential");
#else
    snprintf(e->runtime, sizeof(e->runtime), "other");
#endif
#else
    snprintf(e->why, sizeof(e->why), "mmcl was built without oneDNN");
#endif
}

void
mmcl__engine_info_get(mmcl_engine_info *info)
{
    call_once(&engine_once, engine_init);
    *info = engine_info;
}

mmcl_status
mmcl__precision_check(mmcl_context *ctx, mmcl__precision p,
                      const char *option)
{
    mmcl_engine_info e;
    mmcl__engine_info_get(&e);
    if (p == MMCL__PRECISION_F32 || e.bf16)
        return MMCL_OK;
    if (!e.dnnl)
        return mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                           "%s needs oneDNN's bf16 products; the "
                           "encoders run on %s here (%s): use f32",
                           option, e.name, e.why);
    const char *max = getenv("ONEDNN_MAX_CPU_ISA");
    if (!max)
        max = getenv("DNNL_MAX_CPU_ISA");
    return mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                       "%s needs a CPU with AVX-512 BF16 or AMX; oneDNN "
                       "runs %s here%s%s%s, where bf16 would be emulated "
                       "more slowly than f32: use f32",
                       option, e.isa, max ? " (ONEDNN_MAX_CPU_ISA=" : "",
                       max ? max : "", max ? ")" : "");
}

/* ---- products --------------------------------------------------------- */

struct mmcl__matmul {
    int M, K, N;
    mmcl__matmul_act act;
    mmcl__precision precision;
    mmcl__precision out; /* of y: bf16 only for a bf16 product */
    /* cblas_sgemm: borrowed */
    const float *W, *b;
#ifdef MMCL_HAVE_DNNL
    dnnl_primitive_t prim; /* NULL: cblas_sgemm */
    dnnl_memory_desc_t src_md, dst_md;
    dnnl_memory_t weights, bias; /* packed copies */
    size_t scratch_bytes;
#endif
};

#ifdef MMCL_HAVE_DNNL
/* A thread's memory objects for one product, made at its first run and
 * then only pointed at the run's buffers: creating them each time cost
 * about 5 us a run, a third of a 256 x 18 x 256 product. */
enum { EXEC_CACHE = 32 };
typedef struct exec_mems {
    const mmcl__matmul *mm;
    dnnl_memory_desc_t src_md, dst_md; /* what they were made for */
    dnnl_memory_t src, dst, scratch;
} exec_mems;
#endif

struct mmcl__matmul_exec {
    unsigned short *in_bf16; /* (max_in) */
    size_t max_in;
#ifdef MMCL_HAVE_DNNL
    dnnl_stream_t stream;
    void *scratch;
    size_t scratch_cap;
    exec_mems mems[EXEC_CACHE];
    int n_mems;
#endif
};

#ifdef MMCL_HAVE_DNNL
static mmcl_status
dnnl_fail(mmcl_context *ctx, const char *what, dnnl_status_t s)
{
    return mmcl__error(ctx, MMCL_ERR_UNSUPPORTED, "oneDNN: %s failed (%s)",
                       what, dnnl_status2str(s));
}

#define DNNL_TRY(call, what)                                                   \
    do {                                                                       \
        dnnl_status_t s_ = (call);                                             \
        if (s_ != dnnl_success) {                                              \
            st = dnnl_fail(ctx, what, s_);                                     \
            goto done;                                                         \
        }                                                                      \
    } while (0)

/* The oneDNN primitive of @p mm and its packed weights and bias. */
static mmcl_status
dnnl_build(mmcl_context *ctx, mmcl__matmul *mm, const float *W,
           const float *b)
{
    mmcl_status st = MMCL_OK;
    dnnl_data_type_t in_dt =
        mm->precision == MMCL__PRECISION_BF16 ? dnnl_bf16 : dnnl_f32;
    dnnl_data_type_t out_dt =
        mm->out == MMCL__PRECISION_BF16 ? dnnl_bf16 : dnnl_f32;
    dnnl_dims_t src_dims = {mm->M, mm->K}, w_dims = {mm->K, mm->N},
                dst_dims = {mm->M, mm->N}, b_dims = {1, mm->N};
    dnnl_dims_t w_user_strides = {1, mm->K}; /* W (N, K) row-major */
    dnnl_memory_desc_t w_any, w_user, b_md;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL, rpd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_stream_t stream = NULL;
    dnnl_memory_t w_mem = NULL;
    int saved = one_thread_begin();

    DNNL_TRY(dnnl_memory_desc_init_by_tag(&mm->src_md, 2, src_dims, in_dt,
                                          dnnl_ab),
             "source description");
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_any, 2, w_dims, in_dt,
                                          dnnl_format_tag_any),
             "weights description");
    DNNL_TRY(dnnl_memory_desc_init_by_strides(&w_user, 2, w_dims, dnnl_f32,
                                              w_user_strides),
             "weights description");
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&mm->dst_md, 2, dst_dims, out_dt,
                                          dnnl_ab),
             "output description");
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&b_md, 2, b_dims, dnnl_f32,
                                          dnnl_ab),
             "bias description");
    DNNL_TRY(dnnl_primitive_attr_create(&attr), "attributes");
    DNNL_TRY(dnnl_primitive_attr_set_scratchpad_mode(attr,
                                                     dnnl_scratchpad_mode_user),
             "scratchpad mode");
    if (mm->act == MMCL__MATMUL_RELU) {
        DNNL_TRY(dnnl_post_ops_create(&po), "post-ops");
        DNNL_TRY(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu,
                                              0.0f, 0.0f),
                 "ReLU post-op");
        DNNL_TRY(dnnl_primitive_attr_set_post_ops(attr, po), "post-ops");
    }
    dnnl_matmul_desc_t desc;
    DNNL_TRY(dnnl_matmul_desc_init(&desc, &mm->src_md, &w_any,
                                   b ? &b_md : NULL, &mm->dst_md),
             "matmul description");
    DNNL_TRY(dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL),
             "matmul kernel choice");
    DNNL_TRY(dnnl_primitive_create(&mm->prim, pd), "matmul kernel");
    const dnnl_memory_desc_t *w_md =
        dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *s_md =
        dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    mm->scratch_bytes = s_md ? dnnl_memory_desc_get_size(s_md) : 0;

    /* The weights, packed (and rounded to bf16) once. */
    DNNL_TRY(dnnl_memory_create(&mm->weights, w_md, engine,
                                DNNL_MEMORY_ALLOCATE),
             "weights memory");
    DNNL_TRY(dnnl_memory_create(&w_mem, &w_user, engine, (void *)W),
             "weights memory");
    DNNL_TRY(dnnl_reorder_primitive_desc_create(&rpd, &w_user, engine, w_md,
                                                engine, NULL),
             "weights packing");
    DNNL_TRY(dnnl_primitive_create(&reorder, rpd), "weights packing");
    DNNL_TRY(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags),
             "stream");
    dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, w_mem},
                                {DNNL_ARG_TO, mm->weights}};
    DNNL_TRY(dnnl_primitive_execute(reorder, stream, 2, rargs),
             "weights packing");
    DNNL_TRY(dnnl_stream_wait(stream), "weights packing");
    if (b) {
        DNNL_TRY(dnnl_memory_create(&mm->bias, &b_md, engine,
                                    DNNL_MEMORY_ALLOCATE),
                 "bias memory");
        void *h = NULL;
        DNNL_TRY(dnnl_memory_get_data_handle(mm->bias, &h), "bias memory");
        memcpy(h, b, sizeof(float) * (size_t)mm->N);
    }
done:
    one_thread_end(saved);
    if (stream)
        dnnl_stream_destroy(stream);
    if (reorder)
        dnnl_primitive_destroy(reorder);
    if (rpd)
        dnnl_primitive_desc_destroy(rpd);
    if (w_mem)
        dnnl_memory_destroy(w_mem);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (po)
        dnnl_post_ops_destroy(po);
    return st;
}
#endif

mmcl__matmul *
mmcl__matmul_create(mmcl_context *ctx, int M, int K, int N, const float *W,
                    const float *b, mmcl__matmul_act act, mmcl__precision p)
{
    return mmcl__matmul_create_out(ctx, M, K, N, W, b, act, p,
                                   MMCL__PRECISION_F32);
}

mmcl__matmul *
mmcl__matmul_create_out(mmcl_context *ctx, int M, int K, int N,
                        const float *W, const float *b, mmcl__matmul_act act,
                        mmcl__precision p, mmcl__precision out)
{
    if (M < 1 || K < 1 || N < 1) {
        mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                    "matmul: shape %d x %d x %d; sizes must be >= 1", M, K,
                    N);
        return NULL;
    }
    if (out == MMCL__PRECISION_BF16 && p != MMCL__PRECISION_BF16) {
        mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                    "matmul: a bf16 output needs a bf16 product");
        return NULL;
    }
    if (mmcl__precision_check(ctx, p, mmcl__precision_name(p)) != MMCL_OK)
        return NULL;
    mmcl__matmul *mm = mmcl__calloc_array(ctx, 1, 1, sizeof(*mm));
    if (!mm)
        return NULL;
    mm->M = M;
    mm->K = K;
    mm->N = N;
    mm->act = act;
    mm->precision = p;
    mm->out = out;
    mm->W = W;
    mm->b = b;
#ifdef MMCL_HAVE_DNNL
    mmcl_engine_info e;
    mmcl__engine_info_get(&e);
    if (e.dnnl && dnnl_build(ctx, mm, W, b) != MMCL_OK) {
        mmcl__matmul_destroy(mm);
        return NULL;
    }
#endif
    return mm;
}

mmcl__precision
mmcl__matmul_out_precision(const mmcl__matmul *mm)
{
    return mm->out;
}

void
mmcl__matmul_destroy(mmcl__matmul *mm)
{
    if (!mm)
        return;
#ifdef MMCL_HAVE_DNNL
    if (mm->prim)
        dnnl_primitive_destroy(mm->prim);
    if (mm->weights)
        dnnl_memory_destroy(mm->weights);
    if (mm->bias)
        dnnl_memory_destroy(mm->bias);
#endif
    free(mm);
}

mmcl__matmul_exec *
mmcl__matmul_exec_create(mmcl_context *ctx, size_t max_in)
{
    mmcl__matmul_exec *ex = mmcl__calloc_array(ctx, 1, 1, sizeof(*ex));
    if (!ex)
        return NULL;
    ex->max_in = max_in;
#ifdef MMCL_HAVE_DNNL
    mmcl_engine_info e;
    mmcl__engine_info_get(&e);
    if (e.dnnl) {
        int saved = one_thread_begin();
        dnnl_status_t s =
            dnnl_stream_create(&ex->stream, engine, dnnl_stream_default_flags);
        one_thread_end(saved);
        if (s != dnnl_success) {
            dnnl_fail(ctx, "stream", s);
            free(ex);
            return NULL;
        }
    }
    if (e.bf16 && max_in > 0) {
        ex->in_bf16 = mmcl__malloc_array(ctx, max_in, 1, sizeof(short));
        if (!ex->in_bf16) {
            mmcl__matmul_exec_destroy(ex);
            return NULL;
        }
    }
#endif
    return ex;
}

void
mmcl__matmul_exec_destroy(mmcl__matmul_exec *ex)
{
    if (!ex)
        return;
#ifdef MMCL_HAVE_DNNL
    for (int i = 0; i < ex->n_mems; i++) {
        dnnl_memory_destroy(ex->mems[i].src);
        dnnl_memory_destroy(ex->mems[i].dst);
        if (ex->mems[i].scratch)
            dnnl_memory_destroy(ex->mems[i].scratch);
    }
    if (ex->stream)
        dnnl_stream_destroy(ex->stream);
    free(ex->scratch);
#endif
    free(ex->in_bf16);
    free(ex);
}

#ifdef MMCL_HAVE_DNNL
/* The memory objects of @p mm on this thread, pointed at src, dst and the
 * thread's scratchpad; NULL on a oneDNN error (in @p ctx). */
static exec_mems *
exec_mems_for(mmcl_context *ctx, const mmcl__matmul *mm,
              mmcl__matmul_exec *ex, const void *src, void *dst,
              exec_mems *tmp)
{
    mmcl_status st = MMCL_OK;
    exec_mems *e = NULL;
    for (int i = 0; i < ex->n_mems && !e; i++)
        if (ex->mems[i].mm == mm &&
            dnnl_memory_desc_equal(&ex->mems[i].src_md, &mm->src_md) &&
            dnnl_memory_desc_equal(&ex->mems[i].dst_md, &mm->dst_md))
            e = &ex->mems[i];
    if (e) {
        DNNL_TRY(dnnl_memory_set_data_handle(e->src, (void *)src),
                 "input memory");
        DNNL_TRY(dnnl_memory_set_data_handle(e->dst, dst), "output memory");
        if (e->scratch)
            DNNL_TRY(dnnl_memory_set_data_handle(e->scratch, ex->scratch),
                     "scratchpad memory");
        return e;
    }
    /* New: kept when there is room, else made for this run only. */
    e = ex->n_mems < EXEC_CACHE ? &ex->mems[ex->n_mems] : tmp;
    memset(e, 0, sizeof(*e));
    e->mm = mm;
    e->src_md = mm->src_md;
    e->dst_md = mm->dst_md;
    DNNL_TRY(dnnl_memory_create(&e->src, &mm->src_md, engine, (void *)src),
             "input memory");
    DNNL_TRY(dnnl_memory_create(&e->dst, &mm->dst_md, engine, dst),
             "output memory");
    if (mm->scratch_bytes > 0) {
        dnnl_memory_desc_t scr_md;
        dnnl_dims_t scr_dims = {(dnnl_dim_t)mm->scratch_bytes};
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&scr_md, 1, scr_dims, dnnl_u8,
                                              dnnl_a),
                 "scratchpad description");
        DNNL_TRY(dnnl_memory_create(&e->scratch, &scr_md, engine,
                                    ex->scratch),
                 "scratchpad memory");
    }
    if (e != tmp)
        ex->n_mems++;
    return e;
done:
    if (e && e != tmp && e == &ex->mems[ex->n_mems]) {
        if (e->src)
            dnnl_memory_destroy(e->src);
        if (e->dst)
            dnnl_memory_destroy(e->dst);
        memset(e, 0, sizeof(*e));
    }
    (void)st;
    return NULL;
}

static mmcl_status
dnnl_run(mmcl_context *ctx, const mmcl__matmul *mm, mmcl__matmul_exec *ex,
         void *y, const void *x, mmcl__precision x_type)
{
    mmcl_status st = MMCL_OK;
    const void *src = x;
    size_t n_in = (size_t)mm->M * (size_t)mm->K;
    if (mm->precision == MMCL__PRECISION_BF16 &&
        x_type == MMCL__PRECISION_F32) {
        if (n_in > ex->max_in || !ex->in_bf16)
            return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                               "matmul: an input of %zu values, the bf16 "
                               "buffer holds %zu",
                               n_in, ex->in_bf16 ? ex->max_in : 0);
        mmcl__bf16_round(ex->in_bf16, x, n_in);
        src = ex->in_bf16;
    }
    if (mm->scratch_bytes > ex->scratch_cap) {
        /* A larger scratchpad: the memory objects pointing at the old one
         * are pointed at it at their next run. */
        free(ex->scratch);
        ex->scratch_cap = 0;
        ex->scratch = aligned_alloc(64, (mm->scratch_bytes + 63) / 64 * 64);
        if (!ex->scratch)
            return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        ex->scratch_cap = mm->scratch_bytes;
    }
    int saved = one_thread_begin();
    exec_mems tmp = {0};
    exec_mems *e = exec_mems_for(ctx, mm, ex, src, y, &tmp);
    if (!e) {
        one_thread_end(saved);
        return mmcl_context_errcode(ctx);
    }
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, e->src},
                               {DNNL_ARG_WEIGHTS, mm->weights},
                               {DNNL_ARG_DST, e->dst}};
    int n_args = 3;
    if (e->scratch)
        args[n_args++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, e->scratch};
    if (mm->bias)
        args[n_args++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mm->bias};
    DNNL_TRY(dnnl_primitive_execute(mm->prim, ex->stream, n_args, args),
             "matmul");
    DNNL_TRY(dnnl_stream_wait(ex->stream), "matmul");
done:
    one_thread_end(saved);
    if (e == &tmp) {
        dnnl_memory_destroy(tmp.src);
        dnnl_memory_destroy(tmp.dst);
        if (tmp.scratch)
            dnnl_memory_destroy(tmp.scratch);
    }
    return st;
}
#endif

mmcl_status
mmcl__matmul_run(mmcl_context *ctx, const mmcl__matmul *mm,
                 mmcl__matmul_exec *ex, float *y, const float *x)
{
    if (mm->out != MMCL__PRECISION_F32)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "matmul: this product's output is bf16");
    return mmcl__matmul_run_typed(ctx, mm, ex, y, x, MMCL__PRECISION_F32);
}

mmcl_status
mmcl__matmul_run_typed(mmcl_context *ctx, const mmcl__matmul *mm,
                       mmcl__matmul_exec *ex, void *y, const void *x,
                       mmcl__precision x_type)
{
    if (x_type == MMCL__PRECISION_BF16 && mm->precision != x_type)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "matmul: a bf16 input of an f32 product");
#ifdef MMCL_HAVE_DNNL
    if (mm->prim)
        return dnnl_run(ctx, mm, ex, y, x, x_type);
#endif
    (void)ex;
    /* cblas_sgemm: f32 only (bf16 is refused at creation). */
    mmcl__linear_forward(y, x, mm->W, mm->b, mm->M, mm->K, mm->N);
    if (mm->act == MMCL__MATMUL_RELU)
        mmcl__relu_forward(y, y, (size_t)mm->M * mm->N);
    return MMCL_OK;
}
