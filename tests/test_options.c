/* SPDX-License-Identifier: MIT */
/* KEY=VALUE option parsing driven by the per-operation tables. */
#include <string.h>

#include "options_internal.h"
#include "test_util.h"

static void
defaults_apply_when_nothing_is_given(void)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_options *o = mmcl_options_new(ctx, "align", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT_STRING_EQUAL(mmcl_options_get(o, "RESAMPLING"), "auto");
    CU_ASSERT_EQUAL(mmcl__opt_int(o, "TILE"), 256);
    CU_ASSERT_DOUBLE_EQUAL(mmcl__opt_double(o, "ERROR_THRESHOLD"), 0.125, 0);
    CU_ASSERT_EQUAL(mmcl__opt_bool(o, "OVERWRITE"), 0);
    CU_ASSERT_PTR_NULL(mmcl__opt_list(o, "CO")[0]);
    CU_ASSERT_FALSE(mmcl__opt_given(o, "TILE"));
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
}

static void
values_are_parsed_and_canonicalized(void)
{
    mmcl_context *ctx = mmcl_context_create();
    const char *kv[] = {"resampling=Bilinear", "TILE=64", "OVERWRITE=yes",
                        "CO=COMPRESS=LZW", "CO=TILED=YES", NULL};
    mmcl_options *o = mmcl_options_new(ctx, "align", kv);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT_STRING_EQUAL(mmcl_options_get(o, "RESAMPLING"), "bilinear");
    CU_ASSERT_EQUAL(mmcl__opt_int(o, "TILE"), 64);
    CU_ASSERT_TRUE(mmcl__opt_given(o, "TILE"));
    CU_ASSERT_STRING_EQUAL(mmcl_options_get(o, "OVERWRITE"), "YES");
    char **co = mmcl__opt_list(o, "CO");
    CU_ASSERT_STRING_EQUAL(co[0], "COMPRESS=LZW");
    CU_ASSERT_STRING_EQUAL(co[1], "TILED=YES");
    CU_ASSERT_PTR_NULL(co[2]);
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
}

/* Builds options from one KEY=VALUE and expects a failure whose message
 * contains @p needle. */
static void
expect_rejected(const char *op, const char *item, const char *needle)
{
    mmcl_context *ctx = mmcl_context_create();
    const char *kv[] = {item, NULL};
    mmcl_options *o = mmcl_options_new(ctx, op, kv);
    CU_ASSERT_PTR_NULL(o);
    CU_ASSERT_EQUAL(mmcl_context_errcode(ctx), MMCL_ERR_INVALID_ARG);
    if (!strstr(mmcl_context_errmsg(ctx), needle))
        printf("  message '%s' lacks '%s'\n", mmcl_context_errmsg(ctx),
               needle);
    CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(ctx), needle));
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
}

static void
unknown_keys_are_rejected_naming_the_key_and_valid_ones(void)
{
    expect_rejected("align", "TILES=64", "unknown option 'TILES'");
    expect_rejected("align", "TILES=64", "RESAMPLING");
}

static void
bad_values_are_rejected_naming_the_problem(void)
{
    expect_rejected("align", "TILE=abc", "expects an integer");
    expect_rejected("align", "TILE=8", "out of range");
    expect_rejected("align", "ERROR_THRESHOLD=nan", "expects a number");
    expect_rejected("align", "RESAMPLING=fancy", "must be one of");
    expect_rejected("align", "OVERWRITE=perhaps", "YES or NO");
    expect_rejected("align", "TILE", "KEY=VALUE");
    expect_rejected("synth", "SIZE=1", "out of range");
}

static void
unknown_operation_fails_and_tables_cover_every_operation(void)
{
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_PTR_NULL(mmcl_options_new(ctx, "nope", NULL));
    CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(ctx), "nope"));
    size_t n = 99;
    CU_ASSERT_PTR_NULL(mmcl_option_defs("nope", &n));
    CU_ASSERT_EQUAL(n, 0);
    for (const char *const *op = mmcl_operations(); *op; op++) {
        const mmcl_option_def *defs = mmcl_option_defs(*op, &n);
        CU_ASSERT_PTR_NOT_NULL(defs);
        CU_ASSERT_TRUE(n > 0);
        /* Every default must itself pass the parser. */
        mmcl_options *o = mmcl_options_new(ctx, *op, NULL);
        CU_ASSERT_PTR_NOT_NULL(o);
        for (size_t i = 0; i < n; i++) {
            CU_ASSERT_PTR_NOT_NULL(defs[i].help);
            CU_ASSERT_PTR_NOT_NULL(defs[i].flags);
        }
        mmcl_options_free(o);
    }
    mmcl_context_destroy(ctx);
}

static void
options_built_for_one_operation_are_refused_by_another(void)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_options *o = mmcl_options_new(ctx, "synth", NULL);
    mmcl_options *tmp = NULL;
    const mmcl_options *use = NULL;
    CU_ASSERT_EQUAL(mmcl__options_resolve(ctx, o, "align", &tmp, &use),
                    MMCL_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(ctx), "synth"));
    CU_ASSERT_EQUAL(mmcl__options_resolve(ctx, NULL, "align", &tmp, &use),
                    MMCL_OK);
    CU_ASSERT_PTR_NOT_NULL(tmp);
    CU_ASSERT_PTR_EQUAL(tmp, use);
    mmcl_options_free(tmp);
    mmcl_options_free(o);
    mmcl_options_free(NULL);
    mmcl_context_destroy(ctx);
}

/* Who reads each option: the library or the program (one of the two);
 * the output options are exactly those that say how and where a file is
 * written; the lazy products' open options are THREADS of the maps. */
static void
every_option_says_who_reads_it(void)
{
    const unsigned known = MMCL_OPT_USAGE_LIBRARY | MMCL_OPT_USAGE_PROGRAM |
                           MMCL_OPT_USAGE_OUTPUT | MMCL_OPT_USAGE_OPEN;
    static const char *const output[] = {"FORMAT", "CO", "OVERWRITE",
                                         "REPORT", "LAZY", "CSV", "MAP",
                                         "RESUME"};
    for (const char *const *op = mmcl_operations(); *op; op++) {
        size_t n = 0;
        const mmcl_option_def *defs = mmcl_option_defs(*op, &n);
        for (size_t i = 0; i < n; i++) {
            unsigned u = defs[i].usage;
            int lib = (u & MMCL_OPT_USAGE_LIBRARY) != 0;
            int prog = (u & MMCL_OPT_USAGE_PROGRAM) != 0;
            int is_output = 0;
            for (size_t k = 0; k < sizeof(output) / sizeof(output[0]); k++)
                is_output |= strcmp(defs[i].name, output[k]) == 0;
            /* Only THREADS overrides a descriptor when it is opened. */
            int open = strcmp(defs[i].name, "THREADS") == 0 &&
                       strcmp(*op, "synth") != 0;
            if ((u & ~known) || lib == prog ||
                is_output != ((u & MMCL_OPT_USAGE_OUTPUT) != 0) ||
                open != ((u & MMCL_OPT_USAGE_OPEN) != 0))
                printf("  -> %s %s: usage %#x\n", *op, defs[i].name, u);
            CU_ASSERT_EQUAL(u & ~known, 0);
            CU_ASSERT_NOT_EQUAL(lib, prog);
            CU_ASSERT_EQUAL(is_output, (u & MMCL_OPT_USAGE_OUTPUT) != 0);
            CU_ASSERT_EQUAL(open, (u & MMCL_OPT_USAGE_OPEN) != 0);
        }
    }
    /* What only the program reads: LAZY of the maps (the program writes a
     * descriptor instead) and OVERWRITE of train (the program saves). */
    static const struct {
        const char *op, *key;
        unsigned usage;
    } expect[] = {
        {"embed", "LAZY", MMCL_OPT_USAGE_PROGRAM | MMCL_OPT_USAGE_OUTPUT},
        {"infoloss", "LAZY", MMCL_OPT_USAGE_PROGRAM | MMCL_OPT_USAGE_OUTPUT},
        {"rgb", "LAZY", MMCL_OPT_USAGE_LIBRARY | MMCL_OPT_USAGE_OUTPUT},
        {"train", "OVERWRITE", MMCL_OPT_USAGE_PROGRAM | MMCL_OPT_USAGE_OUTPUT},
        {"embed", "OVERWRITE", MMCL_OPT_USAGE_LIBRARY | MMCL_OPT_USAGE_OUTPUT},
        {"embed", "THREADS", MMCL_OPT_USAGE_LIBRARY | MMCL_OPT_USAGE_OPEN},
        {"embed", "TILE", MMCL_OPT_USAGE_LIBRARY},
    };
    for (size_t k = 0; k < sizeof(expect) / sizeof(expect[0]); k++) {
        size_t n = 0;
        const mmcl_option_def *defs = mmcl_option_defs(expect[k].op, &n);
        int found = 0;
        for (size_t i = 0; i < n; i++)
            if (strcmp(defs[i].name, expect[k].key) == 0) {
                found = 1;
                CU_ASSERT_EQUAL(defs[i].usage, expect[k].usage);
            }
        CU_ASSERT_TRUE(found);
    }
}

/* The message of options built from one KEY=VALUE with @p spelling. */
static void
expect_message(mmcl_option_spelling spelling, const char *op,
               const char *item, const char *want)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_context_set_option_spelling(ctx, spelling);
    const char *kv[] = {item, NULL};
    mmcl_options *o = mmcl_options_new(ctx, op, kv);
    CU_ASSERT_PTR_NULL(o);
    if (strcmp(mmcl_context_errmsg(ctx), want) != 0)
        printf("  message '%s', want '%s'\n", mmcl_context_errmsg(ctx), want);
    CU_ASSERT_STRING_EQUAL(mmcl_context_errmsg(ctx), want);
    mmcl_options_free(o);
    mmcl_context_destroy(ctx);
}

static void
messages_name_options_as_the_front_end_spells_them(void)
{
    /* C callers and GDAL open options: the keys they gave. */
    expect_message(MMCL_OPTION_SPELLING_KEY, "train", "DIM=0",
                   "train: option DIM=0 is out of range [1, 1024]");
    expect_message(MMCL_OPTION_SPELLING_KEY, "embed", "MODALITY=foo",
                   "embed: option MODALITY must be one of "
                   "optical|sar|joint, got 'foo'");
    /* The program: the flags its user typed. */
    expect_message(MMCL_OPTION_SPELLING_FLAG, "train", "DIM=0",
                   "--dim 0 is out of range [1, 1024]");
    expect_message(MMCL_OPTION_SPELLING_FLAG, "embed", "MODALITY=foo",
                   "--modality must be one of optical|sar|joint, got 'foo'");
    expect_message(MMCL_OPTION_SPELLING_FLAG, "align",
                   "ERROR_THRESHOLD=x", "-et expects a number, got 'x'");

    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_STRING_EQUAL(mmcl__opt_name(ctx, "SAR_TRANSFORM"),
                           "SAR_TRANSFORM");
    CU_ASSERT_STRING_EQUAL(mmcl__opt_setting(ctx, "LEGEND", "NO"),
                           "LEGEND=NO");
    CU_ASSERT_STRING_EQUAL(mmcl__opt_setting(NULL, "DIM", "3"), "DIM=3");
    mmcl_context_set_option_spelling(ctx, MMCL_OPTION_SPELLING_FLAG);
    CU_ASSERT_STRING_EQUAL(mmcl__opt_name(ctx, "SAR_TRANSFORM"),
                           "--sar-transform");
    CU_ASSERT_STRING_EQUAL(mmcl__opt_setting(ctx, "SAR_TRANSFORM", "db"),
                           "--sar-db");
    CU_ASSERT_STRING_EQUAL(mmcl__opt_setting(ctx, "SAR_TRANSFORM", "none"),
                           "--sar-transform none");
    CU_ASSERT_STRING_EQUAL(mmcl__opt_setting(ctx, "LEGEND", "NO"),
                           "--no-legend");
    CU_ASSERT_STRING_EQUAL(mmcl__opt_setting(ctx, "OVERWRITE", "YES"),
                           "--overwrite");
    CU_ASSERT_STRING_EQUAL(mmcl__opt_name(ctx, "ERROR_THRESHOLD"), "-et");
    CU_ASSERT_STRING_EQUAL(mmcl__opt_name(ctx, "NO_SUCH_KEY"), "NO_SUCH_KEY");
    mmcl_context_destroy(ctx);
}

/* Messages look an option up by its key alone: a key must have the same
 * flags in every table. */
static void
a_key_has_the_same_flags_in_every_table(void)
{
    const char *const *ops = mmcl_operations();
    for (size_t a = 0; ops[a]; a++) {
        size_t na = 0;
        const mmcl_option_def *da = mmcl_option_defs(ops[a], &na);
        for (size_t b = a + 1; ops[b]; b++) {
            size_t nb = 0;
            const mmcl_option_def *db = mmcl_option_defs(ops[b], &nb);
            for (size_t i = 0; i < na; i++)
                for (size_t j = 0; j < nb; j++) {
                    if (strcmp(da[i].name, db[j].name) != 0)
                        continue;
                    const char *fa = da[i].flags ? da[i].flags : "";
                    const char *fb = db[j].flags ? db[j].flags : "";
                    if (strcmp(fa, fb) != 0)
                        printf("  %s: '%s' in %s, '%s' in %s\n", da[i].name,
                               fa, ops[a], fb, ops[b]);
                    CU_ASSERT_STRING_EQUAL(fa, fb);
                }
        }
    }
}

int
main(void)
{
    static const test_case cases[] = {
        {"defaults_apply_when_nothing_is_given",
         defaults_apply_when_nothing_is_given},
        {"values_are_parsed_and_canonicalized",
         values_are_parsed_and_canonicalized},
        {"unknown_keys_are_rejected_naming_the_key_and_valid_ones",
         unknown_keys_are_rejected_naming_the_key_and_valid_ones},
        {"bad_values_are_rejected_naming_the_problem",
         bad_values_are_rejected_naming_the_problem},
        {"unknown_operation_fails_and_tables_cover_every_operation",
         unknown_operation_fails_and_tables_cover_every_operation},
        {"options_built_for_one_operation_are_refused_by_another",
         options_built_for_one_operation_are_refused_by_another},
        {"every_option_says_who_reads_it", every_option_says_who_reads_it},
        {"messages_name_options_as_the_front_end_spells_them",
         messages_name_options_as_the_front_end_spells_them},
        {"a_key_has_the_same_flags_in_every_table",
         a_key_has_the_same_flags_in_every_table},
        {NULL, NULL}};
    return test_run_suite("options", cases);
}
