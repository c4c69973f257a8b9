/* SPDX-License-Identifier: MIT */
/*
 * Tests of the model layer (src/model/model.c): round trips, the file layout,
 * overwrite rules, the hash, and the reader's rejection of malformed files,
 * which are crafted byte by byte here (hand-written headers, truncations,
 * patched lengths, and a sweep of single-byte corruptions that must never
 * crash, for the sanitizer build).
 *
 * With "--write-fixture DIR" the program instead writes DIR/fixture.mmcl and
 * DIR/fixture_expected.json (the values it put in, as bit patterns), which
 * tests/check_model_file.py, an independent Python reader, checks.
 */
#define _POSIX_C_SOURCE 200809L /* mkdir, opendir */

#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mmcl/context.h"
#include "mmcl/model.h"
#include "model_internal.h"
#include "test_util.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* Metadata the sample model carries (nested, arrays, non-ASCII text). */
static const char SAMPLE_METADATA[] =
    "{\"objective\":\"infonce\",\"k\":8,\"patch\":5,"
    "\"bands\":{\"optical\":[\"B02\",\"B03\",\"B04\"],\"sar\":[\"VV\",\"VH\"]},"
    "\"sar_transform\":\"dB\",\"norm\":{\"mean\":[0.125,-3.5],"
    "\"std\":[1.5,0.25]},\"note\":\"\xcf\x83\xe2\x81\xb0 in dB\","
    "\"seed\":42,\"loss\":[2.5,1.75,1.0625]}";

static int
contains(const char *hay, const char *needle)
{
    return hay && needle && strstr(hay, needle) != NULL;
}

/* Deterministic values with awkward bit patterns for exact round trips
 * (finite only: a model holding NaN or Inf is neither saved nor loaded). */
static float
sample_value(size_t i)
{
    static const float special[] = {-0.0f,       1e-45f /* denormal */,
                                    FLT_MAX,     -FLT_MIN,
                                    1.0f / 3.0f, -FLT_MAX,
                                    FLT_MIN,     16777217.0f};
    if (i < sizeof(special) / sizeof(special[0]))
        return special[i];
    return (float)i * 0.1f - 3.0f;
}

/* A model with tensors of 0 to 4 dimensions, one empty, one non-ASCII name. */
static mmcl_model *
sample_model(mmcl_context *ctx)
{
    float w0[2 * 3], b0[3] = {0.5f, -1.25f, 3.0f}, head[2 * 1 * 2 * 2];
    float scalar = 42.0f, sigma = -7.5f;
    const int64_t w0_shape[] = {2, 3}, b0_shape[] = {3};
    const int64_t head_shape[] = {2, 1, 2, 2}, zero_shape[] = {0, 4};
    const int64_t sigma_shape[] = {1};
    mmcl_model *m = mmcl_model_create(ctx);

    if (!m)
        return NULL;
    for (size_t i = 0; i < 6; i++)
        w0[i] = (float)i * 0.1f - 0.3f;
    for (size_t i = 0; i < 8; i++)
        head[i] = sample_value(i);
    if (mmcl_model_set_tensor(ctx, m, "enc1.w0", w0, 2, w0_shape) ||
        mmcl_model_set_tensor(ctx, m, "enc1.b0", b0, 1, b0_shape) ||
        mmcl_model_set_tensor(ctx, m, "head.w", head, 4, head_shape) ||
        mmcl_model_set_tensor(ctx, m, "scalar", &scalar, 0, NULL) ||
        mmcl_model_set_tensor(ctx, m, "zero", NULL, 2, zero_shape) ||
        mmcl_model_set_tensor(ctx, m, "\xcf\x83.scale", &sigma, 1,
                              sigma_shape) ||
        mmcl_model_set_metadata_json(ctx, m, SAMPLE_METADATA)) {
        mmcl_model_destroy(m);
        return NULL;
    }
    return m;
}

static void
write_file(const char *path, const void *bytes, size_t n)
{
    FILE *fp;
    /* A new file rather than a truncated one: ext4 flushes a file that was
     * truncated and rewritten on close, which made the sweeps below slow. */
    remove(path);
    fp = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    if (n)
        CU_ASSERT_EQUAL(fwrite(bytes, 1, n, fp), n);
    CU_ASSERT_EQUAL(fclose(fp), 0);
}

/* Whole file, malloc'ed; NULL when it cannot be read. */
static unsigned char *
read_file(const char *path, size_t *n)
{
    unsigned char *buf = NULL;
    long size;
    FILE *fp = fopen(path, "rb");
    *n = 0;
    if (!fp)
        return NULL;
    if (fseek(fp, 0, SEEK_END) == 0 && (size = ftell(fp)) >= 0 &&
        fseek(fp, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)size + 1);
        if (buf && fread(buf, 1, (size_t)size, fp) == (size_t)size) {
            *n = (size_t)size;
        } else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(fp);
    return buf;
}

static void
put_le64(unsigned char *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

/* 8-byte LE header length, @p header as is (no padding), data_len zeros. */
static void
write_raw_model(const char *path, const char *header, size_t data_len)
{
    size_t hlen = strlen(header);
    unsigned char *buf = calloc(1, 8 + hlen + data_len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    put_le64(buf, hlen);
    memcpy(buf + 8, header, hlen);
    write_file(path, buf, 8 + hlen + data_len);
    free(buf);
}

/* Loading @p path must fail with MMCL_ERR_FORMAT naming it and @p word. */
static void
expect_load_rejected(const char *path, const char *word)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *m = NULL;
    mmcl_status st;
    const char *msg;

    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    st = mmcl_model_load(ctx, path, &m);
    msg = mmcl_context_errmsg(ctx);
    CU_ASSERT_EQUAL(st, MMCL_ERR_FORMAT);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT(msg[0] != '\0');
    CU_ASSERT(contains(msg, path));
    CU_ASSERT(contains(msg, word));
    if (st != MMCL_ERR_FORMAT || !contains(msg, word))
        printf("\n    expected a rejection mentioning '%s'; got status %d: "
               "%s\n",
               word, (int)st, msg);
    mmcl_model_destroy(m);
    mmcl_context_destroy(ctx);
}

static void
expect_header_rejected(const char *file, const char *header, size_t data_len,
                       const char *word)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s", test_path(file));
    write_raw_model(path, header, data_len);
    expect_load_rejected(path, word);
}

/* Saves the sample model to @p file; returns its bytes (malloc'ed). */
static unsigned char *
saved_sample(const char *path, size_t *n)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *m = sample_model(ctx);
    unsigned char *bytes = NULL;
    *n = 0;
    CU_ASSERT_PTR_NOT_NULL(m);
    if (m && mmcl_model_save(ctx, m, path, 1) == MMCL_OK)
        bytes = read_file(path, n);
    CU_ASSERT_PTR_NOT_NULL(bytes);
    mmcl_model_destroy(m);
    mmcl_context_destroy(ctx);
    return bytes;
}

static uint64_t
fnv1a64(const unsigned char *b, size_t n)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

/* Number of directory entries of test_tmpdir() containing @p needle. */
static int
count_dir_entries(const char *needle)
{
    int count = 0;
    struct dirent *d;
    DIR *dir = opendir(test_tmpdir());
    if (!dir)
        return -1;
    while ((d = readdir(dir)) != NULL)
        if (strstr(d->d_name, needle))
            count++;
    closedir(dir);
    return count;
}

/* Header fragments for hand-written files. */
#define META_WITH(inner)                                                       \
    "\"__metadata__\":{\"format\":\"mmcl\",\"mmcl\":\"" inner "\"}"
#define META_OK META_WITH("{\\\"format_version\\\":1}")
#define T_A "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"
#define T_B(b, e)                                                              \
    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" #b "," #e "]}"

/* ------------------------------------------------------------------------ */
/* Round trips, layout, hash                                                */
/* ------------------------------------------------------------------------ */

static void
model_save_then_load_gives_identical_tensors_and_metadata(void)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *m = sample_model(ctx), *back = NULL;
    const char *path = test_path("roundtrip.mmcl");

    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL_FATAL(mmcl_model_save(ctx, m, path, 0), MMCL_OK);
    CU_ASSERT_EQUAL_FATAL(mmcl_model_load(ctx, path, &back), MMCL_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(back);

    CU_ASSERT_EQUAL(mmcl_model_tensor_count(back), mmcl_model_tensor_count(m));
    for (size_t i = 0; i < mmcl_model_tensor_count(m); i++) {
        const char *name = mmcl_model_tensor_name(m, i);
        int nd_a = -1, nd_b = -2;
        const int64_t *sh_a = NULL, *sh_b = NULL;
        const float *a = mmcl_model_tensor(m, name, &nd_a, &sh_a);
        const float *b = mmcl_model_tensor(back, name, &nd_b, &sh_b);
        size_t count = 1;

        CU_ASSERT_STRING_EQUAL(mmcl_model_tensor_name(back, i), name);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_EQUAL_FATAL(nd_a, nd_b);
        for (int d = 0; d < nd_a; d++) {
            CU_ASSERT_EQUAL(sh_a[d], sh_b[d]);
            count *= (size_t)sh_a[d];
        }
        /* Bitwise: -0.0, denormals, infinities must survive. */
        if (count)
            CU_ASSERT_EQUAL(memcmp(a, b, count * sizeof(float)), 0);
    }
    CU_ASSERT_STRING_EQUAL(mmcl_model_metadata_json(back),
                           mmcl_model_metadata_json(m));
    mmcl_model_destroy(back);
    mmcl_model_destroy(m);
    mmcl_context_destroy(ctx);
}

static void
model_file_has_the_safetensors_layout(void)
{
    size_t n = 0;
    unsigned char *b = saved_sample(test_path("layout.mmcl"), &n);
    uint64_t hlen = 0;
    size_t data_len;

    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_FATAL(n >= 8);
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | b[i];
    CU_ASSERT_FATAL(8 + hlen <= n);
    CU_ASSERT_EQUAL((8 + hlen) % 8, 0);
    CU_ASSERT_EQUAL(b[8], '{');
    /* Padding is spaces after the closing brace. */
    {
        size_t last = 8 + (size_t)hlen - 1;
        while (last > 8 && b[last] == ' ')
            last--;
        CU_ASSERT_EQUAL(b[last], '}');
    }
    /* Data: 6 + 3 + 8 + 1 + 0 + 1 floats, little-endian. */
    data_len = n - 8 - (size_t)hlen;
    CU_ASSERT_EQUAL(data_len, (6 + 3 + 8 + 1 + 0 + 1) * 4);
    /* Name order: enc1.b0 first, whose first value 0.5f is 0x3f000000. */
    CU_ASSERT(b[8 + hlen] == 0x00 && b[8 + hlen + 1] == 0x00 &&
              b[8 + hlen + 2] == 0x00 && b[8 + hlen + 3] == 0x3f);
    /* The metadata is one string value, as safetensors requires. */
    b[8 + hlen - 1] = '\0';
    CU_ASSERT(contains((const char *)b + 8,
                       "\"__metadata__\":{\"format\":\"mmcl\",\"mmcl\":\""
                       "{\\\"format_version\\\":1,"));
    free(b);
}

static void
model_hash_is_stable_for_identical_content(void)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *a = sample_model(ctx), *b = sample_model(ctx), *back = NULL;
    const char *path = test_path("hash.mmcl");
    char ha[17], hb[17], hback[17], hfile[17];
    unsigned char *bytes;
    size_t n = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(mmcl_model_hash(ctx, a, ha), MMCL_OK);
    CU_ASSERT_EQUAL(mmcl_model_hash(ctx, b, hb), MMCL_OK);
    CU_ASSERT_EQUAL(strlen(ha), 16);
    CU_ASSERT_EQUAL(strspn(ha, "0123456789abcdef"), 16);
    CU_ASSERT_STRING_EQUAL(ha, hb);

    /* It is the FNV-1a of the file, and survives a round trip. */
    CU_ASSERT_EQUAL_FATAL(mmcl_model_save(ctx, a, path, 1), MMCL_OK);
    bytes = read_file(path, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
    snprintf(hfile, sizeof(hfile), "%016" PRIx64, fnv1a64(bytes, n));
    CU_ASSERT_STRING_EQUAL(ha, hfile);
    CU_ASSERT_EQUAL_FATAL(mmcl_model_load(ctx, path, &back), MMCL_OK);
    CU_ASSERT_EQUAL(mmcl_model_hash(ctx, back, hback), MMCL_OK);
    CU_ASSERT_STRING_EQUAL(ha, hback);

    free(bytes);
    mmcl_model_destroy(back);
    mmcl_model_destroy(a);
    mmcl_model_destroy(b);
    mmcl_context_destroy(ctx);
}

static void
model_hash_changes_when_a_tensor_value_changes(void)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *m = sample_model(ctx);
    const int64_t shape[] = {3};
    float b0[3] = {0.5f, -1.25f, 3.0f};
    char before[17], after[17], meta[17], back_again[17];

    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(mmcl_model_hash(ctx, m, before), MMCL_OK);
    b0[1] = nextafterf(b0[1], 0.0f); /* one ulp */
    CU_ASSERT_EQUAL(mmcl_model_set_tensor(ctx, m, "enc1.b0", b0, 1, shape),
                    MMCL_OK);
    CU_ASSERT_EQUAL(mmcl_model_hash(ctx, m, after), MMCL_OK);
    CU_ASSERT_STRING_NOT_EQUAL(before, after);

    /* Metadata is part of the content too. */
    CU_ASSERT_EQUAL(mmcl_model_set_metadata_json(ctx, m, "{\"k\":9}"), MMCL_OK);
    CU_ASSERT_EQUAL(mmcl_model_hash(ctx, m, meta), MMCL_OK);
    CU_ASSERT_STRING_NOT_EQUAL(after, meta);

    /* And putting the value back gives the old hash. */
    b0[1] = -1.25f;
    CU_ASSERT_EQUAL(mmcl_model_set_tensor(ctx, m, "enc1.b0", b0, 1, shape),
                    MMCL_OK);
    CU_ASSERT_EQUAL(mmcl_model_set_metadata_json(ctx, m, SAMPLE_METADATA),
                    MMCL_OK);
    CU_ASSERT_EQUAL(mmcl_model_hash(ctx, m, back_again), MMCL_OK);
    CU_ASSERT_STRING_EQUAL(before, back_again);
    mmcl_model_destroy(m);
    mmcl_context_destroy(ctx);
}

static void
model_tensors_are_listed_in_name_order(void)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *m = mmcl_model_create(ctx);
    const char *names[] = {"zeta", "alpha", "mid", "alpha2", "Beta"};
    const char *sorted[] = {"Beta", "alpha", "alpha2", "mid", "zeta"};
    const int64_t shape[] = {1};
    float v = 1.0f;

    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    for (size_t i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(mmcl_model_set_tensor(ctx, m, names[i], &v, 1, shape),
                        MMCL_OK);
    CU_ASSERT_EQUAL_FATAL(mmcl_model_tensor_count(m), 5);
    for (size_t i = 0; i < 5; i++)
        CU_ASSERT_STRING_EQUAL(mmcl_model_tensor_name(m, i), sorted[i]);
    CU_ASSERT_PTR_NULL(mmcl_model_tensor_name(m, 5));
    CU_ASSERT_PTR_NULL(mmcl_model_tensor(m, "absent", NULL, NULL));
    mmcl_model_destroy(m);
    mmcl_context_destroy(ctx);
}

static void
model_set_tensor_replaces_an_existing_name(void)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *m = mmcl_model_create(ctx);
    const int64_t s1[] = {2}, s2[] = {2, 2};
    const float v1[] = {1, 2}, v2[] = {5, 6, 7, 8};
    const float *got;
    const int64_t *shape = NULL;
    int ndim = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(mmcl_model_set_tensor(ctx, m, "w", v1, 1, s1), MMCL_OK);
    CU_ASSERT_EQUAL(mmcl_model_set_tensor(ctx, m, "w", v2, 2, s2), MMCL_OK);
    CU_ASSERT_EQUAL(mmcl_model_tensor_count(m), 1);
    got = mmcl_model_tensor(m, "w", &ndim, &shape);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    CU_ASSERT_EQUAL(ndim, 2);
    CU_ASSERT(shape[0] == 2 && shape[1] == 2);
    CU_ASSERT(test_check_tensor_f("replaced tensor", got, v2, 4, 0.0));
    mmcl_model_destroy(m);
    mmcl_context_destroy(ctx);
}

static void
model_set_tensor_rejects_bad_arguments(void)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *m = mmcl_model_create(ctx);
    const int64_t five[] = {1, 1, 1, 1, 1}, neg[] = {-1}, two[] = {2};
    const float v[] = {1, 2};

    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(mmcl_model_set_tensor(ctx, m, "x", v, 5, five),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT(contains(mmcl_context_errmsg(ctx), "dimensions"));
    CU_ASSERT_EQUAL(mmcl_model_set_tensor(ctx, m, "x", v, 1, neg),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT(contains(mmcl_context_errmsg(ctx), "negative"));
    CU_ASSERT_EQUAL(mmcl_model_set_tensor(ctx, m, "x", NULL, 1, two),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(mmcl_model_set_tensor(ctx, m, "x", v, 1, NULL),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(mmcl_model_set_tensor(ctx, m, "", v, 1, two),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(mmcl_model_set_tensor(ctx, m, "__metadata__", v, 1, two),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(mmcl_model_set_tensor(ctx, m, "a\nb", v, 1, two),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(mmcl_model_set_tensor(ctx, m, "bad\xff", v, 1, two),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT(contains(mmcl_context_errmsg(ctx), "UTF-8"));
    CU_ASSERT_EQUAL(mmcl_model_set_tensor(ctx, m, NULL, v, 1, two),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(mmcl_model_set_tensor(ctx, NULL, "x", v, 1, two),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT(mmcl_context_errmsg(ctx)[0] != '\0');
    CU_ASSERT_EQUAL(mmcl_model_tensor_count(m), 0);
    mmcl_model_destroy(m);
    mmcl_context_destroy(ctx);
}

static void
model_set_metadata_json_rejects_non_objects(void)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *m = mmcl_model_create(ctx);
    const char *before;

    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(mmcl_model_set_metadata_json(ctx, m, "{\"k\":3}"), MMCL_OK);
    before = mmcl_model_metadata_json(m);
    CU_ASSERT_EQUAL(mmcl_model_set_metadata_json(ctx, m, "[1,2]"),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT(contains(mmcl_context_errmsg(ctx), "object"));
    CU_ASSERT_EQUAL(mmcl_model_set_metadata_json(ctx, m, "{\"k\":"),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT(contains(mmcl_context_errmsg(ctx), "JSON"));
    CU_ASSERT_EQUAL(mmcl_model_set_metadata_json(ctx, m, "{} trailing"),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(
        mmcl_model_set_metadata_json(ctx, m, "{\"a\":{\"k\":1,\"k\":2}}"),
        MMCL_ERR_INVALID_ARG);
    CU_ASSERT(contains(mmcl_context_errmsg(ctx), "'k' twice"));
    CU_ASSERT_EQUAL(mmcl_model_set_metadata_json(ctx, m, "{\"\xc0\":1}"),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(mmcl_model_set_metadata_json(ctx, m, NULL),
                    MMCL_ERR_INVALID_ARG);
    /* Failures leave the metadata as it was. */
    CU_ASSERT_PTR_EQUAL(mmcl_model_metadata_json(m), before);
    CU_ASSERT_STRING_EQUAL(mmcl_model_metadata_json(m),
                           "{\"format_version\":1,\"k\":3}");
    mmcl_model_destroy(m);
    mmcl_context_destroy(ctx);
}

static void
model_metadata_format_version_is_set_by_the_library(void)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *m = mmcl_model_create(ctx);

    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(mmcl_model_metadata_json(m),
                           "{\"format_version\":1}");
    CU_ASSERT_EQUAL(mmcl_model_set_metadata_json(
                        ctx, m,
                        "{ \"a\" : [1, 2.5],\n \"format_version\": 7,"
                        " \"b\": \"x\" }"),
                    MMCL_OK);
    CU_ASSERT_STRING_EQUAL(mmcl_model_metadata_json(m),
                           "{\"format_version\":1,\"a\":[1,2.5],\"b\":\"x\"}");
    mmcl_model_destroy(m);
    mmcl_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Overwrite rules, temporary files                                         */
/* ------------------------------------------------------------------------ */

static void
model_save_keeps_existing_output_without_overwrite(void)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *m = sample_model(ctx);
    char path[1024];
    unsigned char *bytes;
    size_t n = 0;

    snprintf(path, sizeof(path), "%s", test_path("keep.mmcl"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    write_file(path, "precious", 8);
    CU_ASSERT_EQUAL(mmcl_model_save(ctx, m, path, 0), MMCL_ERR_EXISTS);
    CU_ASSERT(contains(mmcl_context_errmsg(ctx), path));
    CU_ASSERT(contains(mmcl_context_errmsg(ctx), "--overwrite"));
    bytes = read_file(path, &n);
    CU_ASSERT(bytes && n == 8 && memcmp(bytes, "precious", 8) == 0);
    CU_ASSERT_EQUAL(count_dir_entries("keep.mmcl.mmcl-tmp-"), 0);
    free(bytes);
    mmcl_model_destroy(m);
    mmcl_context_destroy(ctx);
}

static void
model_save_replaces_existing_output_with_overwrite(void)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *m = sample_model(ctx), *back = NULL;
    char path[1024];
    unsigned char *bytes;
    size_t n = 0;

    snprintf(path, sizeof(path), "%s", test_path("replace.mmcl"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    /* A file that is no model is not replaced, even with overwrite. */
    write_file(path, "precious", 8);
    CU_ASSERT_EQUAL(mmcl_model_save(ctx, m, path, 1), MMCL_ERR_EXISTS);
    CU_ASSERT(contains(mmcl_context_errmsg(ctx), path));
    CU_ASSERT(contains(mmcl_context_errmsg(ctx), "replaces only"));
    bytes = read_file(path, &n);
    CU_ASSERT(bytes && n == 8 && memcmp(bytes, "precious", 8) == 0);
    free(bytes);
    /* A model is. */
    CU_ASSERT_EQUAL_FATAL(remove(path), 0);
    CU_ASSERT_EQUAL(mmcl_model_save(ctx, m, path, 0), MMCL_OK);
    CU_ASSERT_EQUAL(mmcl_model_save(ctx, m, path, 1), MMCL_OK);
    CU_ASSERT_EQUAL(mmcl_model_load(ctx, path, &back), MMCL_OK);
    CU_ASSERT_PTR_NOT_NULL(back);
    CU_ASSERT_EQUAL(mmcl_model_tensor_count(back), 6);
    /* The file a model was loaded from is not written over. */
    CU_ASSERT_EQUAL(mmcl_model_save(ctx, back, path, 1),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT(contains(mmcl_context_errmsg(ctx), "input"));
    CU_ASSERT_EQUAL(count_dir_entries("replace.mmcl.mmcl-tmp-"), 0);
    mmcl_model_destroy(back);
    mmcl_model_destroy(m);
    mmcl_context_destroy(ctx);
}

static void
model_save_failure_leaves_no_file_behind(void)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *m = sample_model(ctx);
    char dir[1024], missing[1024];

    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    /* A folder is never replaced, even with overwrite. */
    snprintf(dir, sizeof(dir), "%s", test_path("adir.mmcl"));
    CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0700), 0);
    CU_ASSERT_EQUAL(mmcl_model_save(ctx, m, dir, 1), MMCL_ERR_EXISTS);
    CU_ASSERT(contains(mmcl_context_errmsg(ctx), dir));
    CU_ASSERT(contains(mmcl_context_errmsg(ctx), "folder"));
    CU_ASSERT_EQUAL(count_dir_entries("adir.mmcl.mmcl-tmp-"), 0);
    /* A folder that does not exist: nothing can be created. */
    snprintf(missing, sizeof(missing), "%s",
             test_path("no/such/folder/m.mmcl"));
    CU_ASSERT_EQUAL(mmcl_model_save(ctx, m, missing, 0), MMCL_ERR_IO);
    CU_ASSERT(mmcl_context_errmsg(ctx)[0] != '\0');
    mmcl_model_destroy(m);
    mmcl_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Hand-written files the reader accepts                                    */
/* ------------------------------------------------------------------------ */

static void
model_load_accepts_a_hand_written_unpadded_file(void)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *m = NULL;
    char path[1024];
    int ndim = -1;
    const int64_t *shape = NULL;

    snprintf(path, sizeof(path), "%s", test_path("minimal.mmcl"));
    /* Tensor order in the header does not matter; a zero-size tensor and
     * extra string metadata are fine. */
    write_raw_model(path,
                    "{\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],"
                    "\"data_offsets\":[8,8]}," T_A ","
                    "\"__metadata__\":{\"license\":\"MIT\",\"format\":\"mmcl\","
                    "\"mmcl\":\"{\\\"k\\\":2,\\\"format_version\\\":1}\"}}",
                    8);
    CU_ASSERT_EQUAL_FATAL(mmcl_model_load(ctx, path, &m), MMCL_OK);
    CU_ASSERT_EQUAL(mmcl_model_tensor_count(m), 2);
    CU_ASSERT_PTR_NOT_NULL(mmcl_model_tensor(m, "z", &ndim, &shape));
    CU_ASSERT(ndim == 2 && shape && shape[0] == 0 && shape[1] == 3);
    CU_ASSERT_STRING_EQUAL(mmcl_model_metadata_json(m),
                           "{\"format_version\":1,\"k\":2}");
    mmcl_model_destroy(m);
    mmcl_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Malformed files                                                          */
/* ------------------------------------------------------------------------ */

static void
model_load_rejects_file_shorter_than_8_bytes(void)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s", test_path("short.mmcl"));
    write_file(path, "\x10\x00\x00", 3);
    expect_load_rejected(path, "shorter");
    write_file(path, "", 0);
    expect_load_rejected(path, "shorter");
}

static void
model_load_rejects_header_length_past_end_of_file(void)
{
    char path[1024];
    size_t n = 0;
    unsigned char *b;

    snprintf(path, sizeof(path), "%s", test_path("hlen.mmcl"));
    b = saved_sample(path, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    put_le64(b, n - 7); /* one byte too many */
    write_file(path, b, n);
    expect_load_rejected(path, "past the end");
    put_le64(b, UINT64_C(1) << 40); /* absurd */
    write_file(path, b, n);
    expect_load_rejected(path, "100 MB");
    put_le64(b, UINT64_MAX);
    write_file(path, b, n);
    expect_load_rejected(path, "100 MB");
    free(b);
}

static void
model_load_rejects_truncated_or_extended_data(void)
{
    char path[1024];
    size_t n = 0;
    unsigned char *b, *longer;

    snprintf(path, sizeof(path), "%s", test_path("trunc.mmcl"));
    b = saved_sample(path, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    write_file(path, b, n - 4);
    expect_load_rejected(path, "truncated");
    write_file(path, b, n / 2); /* inside the header */
    expect_load_rejected(path, "past the end");
    longer = calloc(1, n + 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(longer);
    memcpy(longer, b, n);
    write_file(path, longer, n + 4);
    expect_load_rejected(path, "do not cover");
    free(longer);
    free(b);
}

static void
model_load_rejects_every_truncation(void)
{
    char path[1024];
    size_t n = 0;
    unsigned char *b;

    snprintf(path, sizeof(path), "%s", test_path("every.mmcl"));
    b = saved_sample(path, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    for (size_t len = 0; len < n; len++) {
        mmcl_context *ctx = mmcl_context_create();
        mmcl_model *m = NULL;
        write_file(path, b, len);
        CU_ASSERT_EQUAL(mmcl_model_load(ctx, path, &m), MMCL_ERR_FORMAT);
        CU_ASSERT_PTR_NULL(m);
        mmcl_model_destroy(m);
        mmcl_context_destroy(ctx);
    }
    free(b);
}

static void
model_load_survives_single_byte_corruption(void)
{
    static const unsigned char values[] = {0x00, 0x01, ' ', '"', ',',  '-',
                                           '.',  '0',  '9', ':', '[',  ']',
                                           '\\', '{',  '}', 'e', 0x80, 0xff};
    char path[1024];
    size_t n = 0, header_end;
    unsigned char *b;
    int accepted = 0, rejected = 0, other = 0;

    snprintf(path, sizeof(path), "%s", test_path("fuzz.mmcl"));
    b = saved_sample(path, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    header_end = 8 + (size_t)(b[0] | b[1] << 8 | b[2] << 16);
    CU_ASSERT_FATAL(header_end <= n);
    /* Every byte of the length and header; a few of the data. */
    for (size_t i = 0; i < header_end + 8; i++) {
        unsigned char orig = b[i];
        for (size_t v = 0; v < sizeof(values); v++) {
            mmcl_context *ctx;
            mmcl_model *m = NULL;
            mmcl_status st;
            if (values[v] == orig)
                continue;
            ctx = mmcl_context_create();
            b[i] = values[v];
            write_file(path, b, n);
            st = mmcl_model_load(ctx, path, &m);
            if (st == MMCL_OK && m) {
                accepted++;
            } else if (st == MMCL_ERR_FORMAT && !m &&
                       mmcl_context_errmsg(ctx)[0]) {
                rejected++;
            } else {
                other++;
                printf("\n    byte %zu = 0x%02x: status %d, %s\n", i, values[v],
                       (int)st, mmcl_context_errmsg(ctx));
            }
            mmcl_model_destroy(m);
            mmcl_context_destroy(ctx);
        }
        b[i] = orig;
    }
    printf("  %d corrupted files accepted (still valid), %d rejected ",
           accepted, rejected);
    CU_ASSERT_EQUAL(other, 0);
    CU_ASSERT(rejected > 0);
    free(b);
}

/* A model file holding a NaN or an Inf is refused, naming the tensor and
 * the element; saving such a model is refused too (nothing written). */
static void
model_load_rejects_non_finite_values(void)
{
    char path[1024], saved[1024];
    size_t n = 0, at;
    unsigned char *b;
    const unsigned char *hit;
    float one = 1.0f / 3.0f; /* sample_value(4), head.w element 4 */
    unsigned char le[4], nan_le[4] = {0x00, 0x00, 0xc0, 0x7f};
    unsigned char inf_le[4] = {0x00, 0x00, 0x80, 0xff};
    uint32_t u;

    snprintf(path, sizeof(path), "%s", test_path("nan.mmcl"));
    b = saved_sample(path, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    memcpy(&u, &one, 4);
    for (int i = 0; i < 4; i++)
        le[i] = (unsigned char)(u >> (8 * i));
    hit = NULL;
    for (at = 8; at + 4 <= n; at++)
        if (memcmp(b + at, le, 4) == 0) {
            hit = b + at;
            break;
        }
    CU_ASSERT_PTR_NOT_NULL_FATAL(hit);
    memcpy(b + at, nan_le, 4);
    write_file(path, b, n);
    expect_load_rejected(path, "tensor 'head.w' holds NaN at element 4");
    memcpy(b + at, inf_le, 4);
    write_file(path, b, n);
    expect_load_rejected(path, "tensor 'head.w' holds -Inf at element 4");
    free(b);

    {
        mmcl_context *ctx = mmcl_context_create();
        mmcl_model *m = sample_model(ctx);
        const float w[3] = {1.0f, 2.0f, NAN};
        const int64_t shape[] = {3};
        struct stat sb;
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_EQUAL(mmcl_model_set_tensor(ctx, m, "bad", w, 1, shape),
                        MMCL_OK);
        snprintf(saved, sizeof(saved), "%s", test_path("nan_saved.mmcl"));
        unlink(saved);
        CU_ASSERT_EQUAL(mmcl_model_save(ctx, m, saved, 1), MMCL_ERR_NUMERIC);
        CU_ASSERT(contains(mmcl_context_errmsg(ctx),
                           "tensor 'bad' holds NaN at element 2"));
        CU_ASSERT_NOT_EQUAL(stat(saved, &sb), 0);
        mmcl_model_destroy(m);
        mmcl_context_destroy(ctx);
    }
}

/* A file that is no model is named for what it is, and its first bytes
 * are never printed as a header length. */
static void
model_load_says_what_a_non_model_file_is(void)
{
    char path[1024];
    static const unsigned char tiff[16] = {'I', 'I', 42, 0, 8, 0, 0, 0};
    static const unsigned char bigtiff[16] = {'M', 'M', 0, 43, 0, 8, 0, 0};
    static const char passwd[] = "root:x:0:0:root:/root:/bin/bash\n"
                                 "daemon:x:1:1:daemon:/usr/sbin\n";
    static const char descriptor[] =
        "{\n\t\"mmcl_descriptor\":\t1,\n\t\"product\":\t\"embedding\",\n"
        "\t\"model\":\t\"m.mmcl\",\n\t\"optical\":\t\"o.tif\",\n"
        "\t\"sar\":\t\"s.tif\"\n}\n";

    snprintf(path, sizeof(path), "%s", test_path("notamodel"));
    write_file(path, tiff, sizeof(tiff));
    expect_load_rejected(path, "is a raster (GTiff), not an mmcl model");
    write_file(path, bigtiff, sizeof(bigtiff));
    expect_load_rejected(path,
                         "is a raster (GTiff, BigTIFF), not an mmcl model");
    write_file(path, passwd, strlen(passwd));
    expect_load_rejected(path, "not an mmcl model (it starts with text, "
                               "\"root:x:0:0:root:/root:/bin/bash\")");
    write_file(path, descriptor, strlen(descriptor));
    expect_load_rejected(path, "is an mmcl lazy descriptor (an embedding "
                               "computed when read, with the model "
                               "'m.mmcl'), not an mmcl model");
    {
        mmcl_context *ctx = mmcl_context_create();
        mmcl_model *m = NULL;
        write_file(path, passwd, strlen(passwd));
        CU_ASSERT_EQUAL(mmcl_model_load(ctx, path, &m), MMCL_ERR_FORMAT);
        CU_ASSERT(!contains(mmcl_context_errmsg(ctx), "header length"));
        mmcl_model_destroy(m);
        mmcl_context_destroy(ctx);
    }
}

static void
model_load_rejects_invalid_json_header(void)
{
    expect_header_rejected("json1.mmcl", "{" META_OK "," T_A, 8, "JSON");
    expect_header_rejected("json2.mmcl", "", 0, "JSON");
    expect_header_rejected("json3.mmcl", "{" META_OK "," T_A "} xyz", 8,
                           "after the JSON");
    expect_header_rejected("json4.mmcl", "[1,2,3]", 0, "not a JSON object");
    expect_header_rejected("json5.mmcl",
                           "{" META_OK ",\"a\xff\":{\"dtype\":\"F32\","
                           "\"shape\":[2],\"data_offsets\":[0,8]}}",
                           8, "UTF-8");
    expect_header_rejected("json6.mmcl",
                           "{" META_OK ",\"a\x01\":{\"dtype\":\"F32\","
                           "\"shape\":[2],\"data_offsets\":[0,8]}}",
                           8, "control character");
}

static void
model_load_rejects_tensor_entry_missing_a_field(void)
{
    expect_header_rejected("miss1.mmcl",
                           "{" META_OK ",\"a\":{\"shape\":[2],"
                           "\"data_offsets\":[0,8]}}",
                           8, "no \"dtype\"");
    expect_header_rejected("miss2.mmcl",
                           "{" META_OK ",\"a\":{\"dtype\":\"F32\","
                           "\"data_offsets\":[0,8]}}",
                           8, "no \"shape\"");
    expect_header_rejected("miss3.mmcl",
                           "{" META_OK ",\"a\":{\"dtype\":\"F32\","
                           "\"shape\":[2]}}",
                           8, "no \"data_offsets\"");
}

static void
model_load_rejects_fields_of_wrong_json_type(void)
{
    expect_header_rejected("type1.mmcl", "{" META_OK ",\"a\":5}", 0,
                           "not a JSON object");
    expect_header_rejected("type2.mmcl",
                           "{" META_OK ",\"a\":{\"dtype\":32,\"shape\":[2],"
                           "\"data_offsets\":[0,8]}}",
                           8, "dtype");
    expect_header_rejected("type3.mmcl",
                           "{" META_OK ",\"a\":{\"dtype\":\"F32\","
                           "\"shape\":\"2\",\"data_offsets\":[0,8]}}",
                           8, "shape");
    expect_header_rejected("type4.mmcl",
                           "{" META_OK ",\"a\":{\"dtype\":\"F32\","
                           "\"shape\":[2],\"data_offsets\":{\"b\":0}}}",
                           8, "data_offsets");
    expect_header_rejected("type5.mmcl",
                           "{" META_OK ",\"a\":{\"dtype\":\"F32\","
                           "\"shape\":[2],\"data_offsets\":[0]}}",
                           8, "data_offsets");
    expect_header_rejected("type6.mmcl",
                           "{" META_OK ",\"a\":{\"dtype\":\"F32\","
                           "\"shape\":[2],\"data_offsets\":[0,\"8\"]}}",
                           8, "data_offsets");
    expect_header_rejected("type7.mmcl",
                           "{" META_OK ",\"a\":{\"dtype\":\"F32\","
                           "\"shape\":[2],\"data_offsets\":[0,8,16]}}",
                           16, "data_offsets");
    expect_header_rejected("type8.mmcl",
                           "{" META_OK ",\"a\":{\"dtype\":\"F32\","
                           "\"shape\":[2],\"data_offsets\":[0,8],"
                           "\"offsets\":[0,8]}}",
                           8, "unexpected key 'offsets'");
    expect_header_rejected("type9.mmcl",
                           "{" META_OK ",\"a\":{\"dtype\":\"F32\","
                           "\"dtype\":\"F32\",\"shape\":[2],"
                           "\"data_offsets\":[0,8]}}",
                           8, "duplicate key 'dtype'");
    expect_header_rejected("type10.mmcl",
                           "{" META_OK ",\"\":{\"dtype\":\"F32\","
                           "\"shape\":[2],\"data_offsets\":[0,8]}}",
                           8, "name '' is empty");
}

static void
model_load_rejects_dtype_other_than_f32(void)
{
    expect_header_rejected("f16.mmcl",
                           "{" META_OK ",\"x\":{\"dtype\":\"F16\","
                           "\"shape\":[2],\"data_offsets\":[0,4]}}",
                           4,
                           "unsupported dtype 'F16' for tensor 'x' (mmcl "
                           "reads F32)");
    expect_header_rejected("f64.mmcl",
                           "{" META_OK ",\"x\":{\"dtype\":\"F64\","
                           "\"shape\":[1],\"data_offsets\":[0,8]}}",
                           8, "unsupported dtype 'F64'");
}

static void
model_load_rejects_bad_shape_entries(void)
{
    expect_header_rejected("neg.mmcl",
                           "{" META_OK ",\"a\":{\"dtype\":\"F32\","
                           "\"shape\":[-2],\"data_offsets\":[0,8]}}",
                           8, "shape");
    expect_header_rejected("frac.mmcl",
                           "{" META_OK ",\"a\":{\"dtype\":\"F32\","
                           "\"shape\":[2.5],\"data_offsets\":[0,8]}}",
                           8, "non-negative integer");
    expect_header_rejected("bool.mmcl",
                           "{" META_OK ",\"a\":{\"dtype\":\"F32\","
                           "\"shape\":[true],\"data_offsets\":[0,4]}}",
                           4, "non-negative integer");
    expect_header_rejected("huge.mmcl",
                           "{" META_OK ",\"a\":{\"dtype\":\"F32\","
                           "\"shape\":[1e300],\"data_offsets\":[0,4]}}",
                           4, "non-negative integer");
    expect_header_rejected("fivedims.mmcl",
                           "{" META_OK ",\"a\":{\"dtype\":\"F32\","
                           "\"shape\":[1,1,1,1,2],\"data_offsets\":[0,8]}}",
                           8, "dimensions");
    expect_header_rejected("overflow.mmcl",
                           "{" META_OK ",\"a\":{\"dtype\":\"F32\","
                           "\"shape\":[4294967296,4294967296,4294967296],"
                           "\"data_offsets\":[0,8]}}",
                           8, "overflow");
    expect_header_rejected("bytes.mmcl",
                           "{" META_OK ",\"a\":{\"dtype\":\"F32\","
                           "\"shape\":[3],\"data_offsets\":[0,8]}}",
                           8, "needs 12");
}

static void
model_load_rejects_bad_data_offsets(void)
{
    expect_header_rejected("range.mmcl",
                           "{" META_OK ",\"a\":{\"dtype\":\"F32\","
                           "\"shape\":[4],\"data_offsets\":[0,16]}}",
                           8, "out of range");
    expect_header_rejected("backwards.mmcl",
                           "{" META_OK ",\"a\":{\"dtype\":\"F32\","
                           "\"shape\":[2],\"data_offsets\":[8,0]}}",
                           8, "begin after");
    expect_header_rejected("negoff.mmcl",
                           "{" META_OK ",\"a\":{\"dtype\":\"F32\","
                           "\"shape\":[2],\"data_offsets\":[-8,0]}}",
                           8, "data_offsets");
    expect_header_rejected(
        "overlap.mmcl", "{" META_OK "," T_A "," T_B(4, 12) "}", 12, "overlaps");
    expect_header_rejected("same.mmcl", "{" META_OK "," T_A "," T_B(0, 8) "}",
                           8, "overlaps");
    expect_header_rejected("gap.mmcl", "{" META_OK "," T_A "," T_B(12, 20) "}",
                           20, "gap");
    expect_header_rejected("start.mmcl", "{" META_OK "," T_B(4, 12) "}", 12,
                           "gap");
    expect_header_rejected("cover.mmcl", "{" META_OK "," T_A "}", 12,
                           "do not cover");
    expect_header_rejected("nodata.mmcl", "{" META_OK "}", 4, "do not cover");
}

static void
model_load_rejects_duplicate_names(void)
{
    expect_header_rejected("dup.mmcl",
                           "{" META_OK "," T_A ",\"a\":{\"dtype\":\"F32\","
                           "\"shape\":[2],\"data_offsets\":[8,16]}}",
                           16, "duplicate tensor name 'a'");
    expect_header_rejected("dupmeta.mmcl", "{" META_OK "," T_A "," META_OK "}",
                           8, "duplicate key '__metadata__'");
}

static void
model_load_rejects_foreign_or_broken_metadata(void)
{
    expect_header_rejected("nometa.mmcl", "{" T_A "}", 8, "__metadata__");
    expect_header_rejected("metanotobj.mmcl", "{\"__metadata__\":[]," T_A "}",
                           8, "__metadata__ is not a JSON object");
    expect_header_rejected("noformat.mmcl",
                           "{\"__metadata__\":{\"mmcl\":\"{\\\"format_"
                           "version\\\":1}\"}," T_A "}",
                           8, "no \"format\"");
    expect_header_rejected("torch.mmcl",
                           "{\"__metadata__\":{\"format\":\"pt\"}," T_A "}", 8,
                           "not an mmcl model file");
    expect_header_rejected("nommcl.mmcl",
                           "{\"__metadata__\":{\"format\":\"mmcl\"}," T_A "}",
                           8, "no \"mmcl\"");
    expect_header_rejected("metanum.mmcl",
                           "{\"__metadata__\":{\"format\":\"mmcl\","
                           "\"mmcl\":{\"format_version\":1}}," T_A "}",
                           8, "not a string");
    expect_header_rejected("metajson.mmcl",
                           "{" META_WITH("{format_version:1}") "," T_A "}", 8,
                           "not valid JSON");
    expect_header_rejected("metaarray.mmcl", "{" META_WITH("[1]") "," T_A "}",
                           8, "not a JSON object");
    expect_header_rejected("metadup.mmcl",
                           "{" META_WITH("{\\\"format_version\\\":1,"
                                         "\\\"k\\\":1,\\\"k\\\":2}") "," T_A
                                                                     "}",
                           8, "'k' twice");
    expect_header_rejected("metactl.mmcl",
                           "{" META_WITH("{\\\"format_version\\\":1,"
                                         "\\\"k\\\":\\\"\\u0001\\\"}") "," T_A
                                                                       "}",
                           8, "control character");
}

static void
model_load_rejects_missing_or_bad_format_version(void)
{
    expect_header_rejected("nover.mmcl", "{" META_WITH("{}") "," T_A "}", 8,
                           "format_version");
    expect_header_rejected(
        "ver0.mmcl", "{" META_WITH("{\\\"format_version\\\":0}") "," T_A "}", 8,
        "format_version");
    expect_header_rejected("verfrac.mmcl",
                           "{" META_WITH("{\\\"format_version\\\":1.5}") "," T_A
                                                                         "}",
                           8, "format_version");
    expect_header_rejected(
        "verstr.mmcl",
        "{" META_WITH("{\\\"format_version\\\":\\\"1\\\"}") "," T_A "}", 8,
        "format_version");
}

static void
model_load_rejects_newer_format_version(void)
{
    expect_header_rejected(
        "ver2.mmcl", "{" META_WITH("{\\\"format_version\\\":2}") "," T_A "}", 8,
        "was written by a newer mmcl (format version 2; "
        "this mmcl reads up to 1)");
}

/* ------------------------------------------------------------------------ */
/* Architecture check, NULL arguments                                       */
/* ------------------------------------------------------------------------ */

static void
model_check_shape_accepts_the_right_shape(void)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *m = sample_model(ctx);
    const int64_t w0[] = {2, 3}, head[] = {2, 1, 2, 2};

    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(mmcl__model_check_shape(ctx, m, "enc1.w0", 2, w0), MMCL_OK);
    CU_ASSERT_EQUAL(mmcl__model_check_shape(ctx, m, "head.w", 4, head),
                    MMCL_OK);
    CU_ASSERT_EQUAL(mmcl__model_check_shape(ctx, m, "scalar", 0, NULL),
                    MMCL_OK);
    mmcl_model_destroy(m);
    mmcl_context_destroy(ctx);
}

static void
model_check_shape_rejects_a_wrong_shape_or_missing_tensor(void)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *m = mmcl_model_create(ctx);
    float w[64 * 117];
    const int64_t have[] = {64, 117}, want[] = {64, 118},
                  want3[] = {64, 117, 1};

    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    memset(w, 0, sizeof(w));
    CU_ASSERT_EQUAL(mmcl_model_set_tensor(ctx, m, "enc1.w0", w, 2, have),
                    MMCL_OK);
    CU_ASSERT_EQUAL(mmcl__model_check_shape(ctx, m, "enc1.w0", 2, want),
                    MMCL_ERR_FORMAT);
    CU_ASSERT_STRING_EQUAL(mmcl_context_errmsg(ctx),
                           "model tensor 'enc1.w0' has shape [64,117], "
                           "expected [64,118]");
    CU_ASSERT_EQUAL(mmcl__model_check_shape(ctx, m, "enc1.w0", 3, want3),
                    MMCL_ERR_FORMAT);
    CU_ASSERT(contains(mmcl_context_errmsg(ctx), "expected [64,117,1]"));
    CU_ASSERT_EQUAL(mmcl__model_check_shape(ctx, m, "enc1.b0", 1, want),
                    MMCL_ERR_FORMAT);
    CU_ASSERT(contains(mmcl_context_errmsg(ctx), "no tensor 'enc1.b0'"));
    CU_ASSERT_EQUAL(mmcl__model_check_shape(ctx, NULL, "x", 0, NULL),
                    MMCL_ERR_INVALID_ARG);
    mmcl_model_destroy(m);
    mmcl_context_destroy(ctx);
}

static void
model_functions_handle_null_arguments(void)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *m = mmcl_model_create(ctx);
    mmcl_model *out = m; /* non-NULL: load must reset it */
    char hash[17] = "x";

    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    mmcl_model_destroy(NULL);
    CU_ASSERT_EQUAL(mmcl_model_load(ctx, NULL, &out), MMCL_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(out);
    CU_ASSERT(mmcl_context_errmsg(ctx)[0] != '\0');
    CU_ASSERT_EQUAL(mmcl_model_load(ctx, test_path("x.mmcl"), NULL),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(mmcl_model_load(NULL, NULL, NULL), MMCL_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(mmcl_model_save(ctx, NULL, test_path("x.mmcl"), 1),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(mmcl_model_save(ctx, m, NULL, 1), MMCL_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(mmcl_model_hash(ctx, NULL, hash), MMCL_ERR_INVALID_ARG);
    CU_ASSERT_STRING_EQUAL(hash, "");
    CU_ASSERT_EQUAL(mmcl_model_hash(ctx, m, NULL), MMCL_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(mmcl_model_tensor(NULL, "x", NULL, NULL));
    CU_ASSERT_PTR_NULL(mmcl_model_tensor(m, NULL, NULL, NULL));
    CU_ASSERT_EQUAL(mmcl_model_tensor_count(NULL), 0);
    CU_ASSERT_PTR_NULL(mmcl_model_tensor_name(NULL, 0));
    CU_ASSERT_PTR_NULL(mmcl_model_metadata_json(NULL));
    mmcl_model_destroy(m);
    mmcl_context_destroy(ctx);
}

static void
model_load_reports_a_missing_file_as_io_error(void)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *m = NULL;
    char path[1024];

    snprintf(path, sizeof(path), "%s", test_path("absent.mmcl"));
    CU_ASSERT_EQUAL(mmcl_model_load(ctx, path, &m), MMCL_ERR_IO);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT(contains(mmcl_context_errmsg(ctx), path));
    /* A folder is not a model either. */
    CU_ASSERT_EQUAL(mmcl_model_load(ctx, test_tmpdir(), &m), MMCL_ERR_IO);
    CU_ASSERT_PTR_NULL(m);
    mmcl_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Fixture for tests/check_model_file.py                                    */
/* ------------------------------------------------------------------------ */

/*
 * Writes DIR/fixture.mmcl (the sample model) and DIR/fixture_expected.json:
 *   {"metadata_input": <what was given to set_metadata_json>,
 *    "tensors": {"<name>": {"shape": [...], "bits": [<uint32>, ...]}}}
 * The expected values come from the arrays the test put in, not from the
 * library, which the Python side reads independently.
 */
static int
write_fixture(const char *dir)
{
    char model_path[4096], json_path[4096];
    mmcl_context *ctx = mmcl_context_create();
    mmcl_model *m = NULL;
    FILE *fp = NULL;
    int rc = EXIT_FAILURE;

    if (!ctx)
        goto done;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "cannot create '%s': %s\n", dir, strerror(errno));
        goto done;
    }
    snprintf(model_path, sizeof(model_path), "%s/fixture.mmcl", dir);
    snprintf(json_path, sizeof(json_path), "%s/fixture_expected.json", dir);
    m = sample_model(ctx);
    if (!m || mmcl_model_save(ctx, m, model_path, 1) != MMCL_OK) {
        fprintf(stderr, "cannot write the fixture: %s\n",
                mmcl_context_errmsg(ctx));
        goto done;
    }
    fp = fopen(json_path, "w");
    if (!fp) {
        fprintf(stderr, "cannot create '%s': %s\n", json_path, strerror(errno));
        goto done;
    }
    fprintf(fp, "{\"metadata_input\": %s,\n \"tensors\": {", SAMPLE_METADATA);
    {
        /* The same values sample_model() stores, rebuilt here. */
        float w0[6], b0[3] = {0.5f, -1.25f, 3.0f}, head[8];
        float scalar = 42.0f, sigma = -7.5f;
        struct {
            const char *name;
            const char *shape;
            const float *v;
            size_t n;
        } t[] = {
            {"enc1.w0", "[2,3]", w0, 6},
            {"enc1.b0", "[3]", b0, 3},
            {"head.w", "[2,1,2,2]", head, 8},
            {"scalar", "[]", &scalar, 1},
            {"zero", "[0,4]", NULL, 0},
            {"\xcf\x83.scale", "[1]", &sigma, 1},
        };
        for (size_t i = 0; i < 6; i++)
            w0[i] = (float)i * 0.1f - 0.3f;
        for (size_t i = 0; i < 8; i++)
            head[i] = sample_value(i);
        for (size_t k = 0; k < sizeof(t) / sizeof(t[0]); k++) {
            fprintf(fp, "%s\n  \"%s\": {\"shape\": %s, \"bits\": [",
                    k ? "," : "", t[k].name, t[k].shape);
            for (size_t i = 0; i < t[k].n; i++) {
                uint32_t u;
                memcpy(&u, &t[k].v[i], sizeof(u));
                fprintf(fp, "%s%" PRIu32, i ? ", " : "", u);
            }
            fprintf(fp, "]}");
        }
    }
    fprintf(fp, "}}\n");
    if (fclose(fp) != 0) {
        fp = NULL;
        fprintf(stderr, "cannot write '%s'\n", json_path);
        goto done;
    }
    fp = NULL;
    printf("wrote %s and %s\n", model_path, json_path);
    rc = EXIT_SUCCESS;
done:
    if (fp)
        fclose(fp);
    mmcl_model_destroy(m);
    mmcl_context_destroy(ctx);
    return rc;
}

int
main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"model_save_then_load_gives_identical_tensors_and_metadata",
         model_save_then_load_gives_identical_tensors_and_metadata},
        {"model_file_has_the_safetensors_layout",
         model_file_has_the_safetensors_layout},
        {"model_hash_is_stable_for_identical_content",
         model_hash_is_stable_for_identical_content},
        {"model_hash_changes_when_a_tensor_value_changes",
         model_hash_changes_when_a_tensor_value_changes},
        {"model_tensors_are_listed_in_name_order",
         model_tensors_are_listed_in_name_order},
        {"model_set_tensor_replaces_an_existing_name",
         model_set_tensor_replaces_an_existing_name},
        {"model_set_tensor_rejects_bad_arguments",
         model_set_tensor_rejects_bad_arguments},
        {"model_set_metadata_json_rejects_non_objects",
         model_set_metadata_json_rejects_non_objects},
        {"model_metadata_format_version_is_set_by_the_library",
         model_metadata_format_version_is_set_by_the_library},
        {"model_save_keeps_existing_output_without_overwrite",
         model_save_keeps_existing_output_without_overwrite},
        {"model_save_replaces_existing_output_with_overwrite",
         model_save_replaces_existing_output_with_overwrite},
        {"model_save_failure_leaves_no_file_behind",
         model_save_failure_leaves_no_file_behind},
        {"model_load_accepts_a_hand_written_unpadded_file",
         model_load_accepts_a_hand_written_unpadded_file},
        {"model_load_rejects_file_shorter_than_8_bytes",
         model_load_rejects_file_shorter_than_8_bytes},
        {"model_load_rejects_header_length_past_end_of_file",
         model_load_rejects_header_length_past_end_of_file},
        {"model_load_rejects_truncated_or_extended_data",
         model_load_rejects_truncated_or_extended_data},
        {"model_load_rejects_every_truncation",
         model_load_rejects_every_truncation},
        {"model_load_survives_single_byte_corruption",
         model_load_survives_single_byte_corruption},
        {"model_load_rejects_non_finite_values",
         model_load_rejects_non_finite_values},
        {"model_load_says_what_a_non_model_file_is",
         model_load_says_what_a_non_model_file_is},
        {"model_load_rejects_invalid_json_header",
         model_load_rejects_invalid_json_header},
        {"model_load_rejects_tensor_entry_missing_a_field",
         model_load_rejects_tensor_entry_missing_a_field},
        {"model_load_rejects_fields_of_wrong_json_type",
         model_load_rejects_fields_of_wrong_json_type},
        {"model_load_rejects_dtype_other_than_f32",
         model_load_rejects_dtype_other_than_f32},
        {"model_load_rejects_bad_shape_entries",
         model_load_rejects_bad_shape_entries},
        {"model_load_rejects_bad_data_offsets",
         model_load_rejects_bad_data_offsets},
        {"model_load_rejects_duplicate_names",
         model_load_rejects_duplicate_names},
        {"model_load_rejects_foreign_or_broken_metadata",
         model_load_rejects_foreign_or_broken_metadata},
        {"model_load_rejects_missing_or_bad_format_version",
         model_load_rejects_missing_or_bad_format_version},
        {"model_load_rejects_newer_format_version",
         model_load_rejects_newer_format_version},
        {"model_check_shape_accepts_the_right_shape",
         model_check_shape_accepts_the_right_shape},
        {"model_check_shape_rejects_a_wrong_shape_or_missing_tensor",
         model_check_shape_rejects_a_wrong_shape_or_missing_tensor},
        {"model_functions_handle_null_arguments",
         model_functions_handle_null_arguments},
        {"model_load_reports_a_missing_file_as_io_error",
         model_load_reports_a_missing_file_as_io_error},
        {NULL, NULL}};

    if (argc == 3 && strcmp(argv[1], "--write-fixture") == 0)
        return write_fixture(argv[2]);
    if (argc != 1) {
        fprintf(stderr, "usage: %s [--write-fixture DIR]\n", argv[0]);
        return EXIT_FAILURE;
    }
    return test_run_suite("model", cases);
}
