/* SPDX-License-Identifier: MIT */
/* Context, error messages, log callback and checked allocation. */
#include <stdint.h>
#include <string.h>

#include "context_internal.h"
#include "test_util.h"

static void
errmsg_is_empty_until_an_error_is_set(void)
{
    mmcl_context *ctx = mmcl_context_create();
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    CU_ASSERT_STRING_EQUAL(mmcl_context_errmsg(ctx), "");
    CU_ASSERT_EQUAL(mmcl_context_errcode(ctx), MMCL_OK);
    CU_ASSERT_EQUAL(mmcl__error(ctx, MMCL_ERR_IO, "cannot read '%s'", "x.tif"),
                    MMCL_ERR_IO);
    CU_ASSERT_STRING_EQUAL(mmcl_context_errmsg(ctx), "cannot read 'x.tif'");
    CU_ASSERT_EQUAL(mmcl_context_errcode(ctx), MMCL_ERR_IO);
    mmcl__error_clear(ctx);
    CU_ASSERT_STRING_EQUAL(mmcl_context_errmsg(ctx), "");
    mmcl_context_destroy(ctx);
}

static void
null_context_is_safe_everywhere(void)
{
    CU_ASSERT_STRING_EQUAL(mmcl_context_errmsg(NULL), "");
    CU_ASSERT_EQUAL(mmcl__error(NULL, MMCL_ERR_NUMERIC, "x"), MMCL_ERR_NUMERIC);
    mmcl_context_destroy(NULL);
    mmcl_free(NULL);
}

static int log_calls;
static char log_last[256];
static void
log_fn(mmcl_log_level level, const char *msg, void *user)
{
    (void)level;
    (void)user;
    log_calls++;
    snprintf(log_last, sizeof(log_last), "%s", msg);
}

static void
log_callback_receives_errors_and_filters_by_level(void)
{
    mmcl_context *ctx = mmcl_context_create();
    mmcl_context_set_log(ctx, log_fn, NULL, MMCL_LOG_WARNING);
    log_calls = 0;
    mmcl__error(ctx, MMCL_ERR_IO, "boom %d", 7);
    CU_ASSERT_EQUAL(log_calls, 1);
    CU_ASSERT_STRING_EQUAL(log_last, "boom 7");
    mmcl__log(ctx, MMCL_LOG_DEBUG, "too verbose");
    CU_ASSERT_EQUAL(log_calls, 1);
    mmcl__log(ctx, MMCL_LOG_WARNING, "careful");
    CU_ASSERT_EQUAL(log_calls, 2);
    mmcl_context_destroy(ctx);
}

static void
malloc_array_rejects_overflow_with_a_message(void)
{
    mmcl_context *ctx = mmcl_context_create();
    void *p = mmcl__malloc_array(ctx, SIZE_MAX / 2, 3, 1);
    CU_ASSERT_PTR_NULL(p);
    CU_ASSERT_EQUAL(mmcl_context_errcode(ctx), MMCL_ERR_NO_MEMORY);
    CU_ASSERT_PTR_NOT_NULL(strstr(mmcl_context_errmsg(ctx), "overflow"));
    mmcl_context_destroy(ctx);
}

static void
status_strings_are_distinct_and_never_null(void)
{
    for (int a = 0; a <= MMCL_ERR_FORMAT; a++) {
        CU_ASSERT_PTR_NOT_NULL(mmcl_status_string((mmcl_status)a));
        for (int b = 0; b < a; b++)
            CU_ASSERT_STRING_NOT_EQUAL(mmcl_status_string((mmcl_status)a),
                                       mmcl_status_string((mmcl_status)b));
    }
    CU_ASSERT_PTR_NOT_NULL(mmcl_status_string((mmcl_status)999));
    CU_ASSERT_STRING_EQUAL(mmcl_version(), MMCL_VERSION_STRING);
}

int
main(void)
{
    static const test_case cases[] = {
        {"errmsg_is_empty_until_an_error_is_set",
         errmsg_is_empty_until_an_error_is_set},
        {"null_context_is_safe_everywhere", null_context_is_safe_everywhere},
        {"log_callback_receives_errors_and_filters_by_level",
         log_callback_receives_errors_and_filters_by_level},
        {"malloc_array_rejects_overflow_with_a_message",
         malloc_array_rejects_overflow_with_a_message},
        {"status_strings_are_distinct_and_never_null",
         status_strings_are_distinct_and_never_null},
        {NULL, NULL}};
    return test_run_suite("context", cases);
}
