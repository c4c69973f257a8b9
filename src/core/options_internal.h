/* SPDX-License-Identifier: MIT */
/*
 * Private: typed access to parsed options. Each operation reads its options
 * by name; a name missing from the operation's table is a programming error
 * (caught by the tests), so the getters return the type's zero for it.
 */
#ifndef MMCL_OPTIONS_INTERNAL_H
#define MMCL_OPTIONS_INTERNAL_H

#include "mmcl/options.h"

/* Fails with MMCL_ERR_INVALID_ARG unless @p opts was built for @p operation.
 * A NULL @p opts is replaced by defaults in *tmp (free it with
 * mmcl_options_free); *use receives the options to read. */
mmcl_status mmcl__options_resolve(mmcl_context *ctx, const mmcl_options *opts,
                                  const char *operation, mmcl_options **tmp,
                                  const mmcl_options **use);

/* The operation @p opts was built for ("embed", ...). */
const char *mmcl__options_operation(const mmcl_options *opts);

long long mmcl__opt_int(const mmcl_options *opts, const char *key);
double mmcl__opt_double(const mmcl_options *opts, const char *key);
int mmcl__opt_bool(const mmcl_options *opts, const char *key);
/* NULL when unset. */
const char *mmcl__opt_str(const mmcl_options *opts, const char *key);
/* NULL-terminated list (never NULL; may be empty), owned by @p opts. */
char **mmcl__opt_list(const mmcl_options *opts, const char *key);
/* 1 when the user gave the key (not just the default). */
int mmcl__opt_given(const mmcl_options *opts, const char *key);

mmcl_progress_fn mmcl__opt_progress(const mmcl_options *opts, void **user);

/*
 * How messages name option @p key (a table name, "DIM") for the front end
 * of @p ctx (mmcl_context_set_option_spelling): "DIM", or the program's
 * flag "--dim". mmcl__opt_setting spells it with a value: "DIM=0", or
 * "--dim 0"; a switch that sets the value is named alone ("--sar-db" for
 * SAR_TRANSFORM=db, "--overwrite" for OVERWRITE=YES, "--no-legend" for
 * LEGEND=NO). An option without a flag keeps its key. The strings live in
 * a small per-thread ring: valid for the next few calls, long enough to
 * format one message.
 */
const char *mmcl__opt_name(const mmcl_context *ctx, const char *key);
const char *mmcl__opt_setting(const mmcl_context *ctx, const char *key,
                              const char *value);

/* LAZY=YES: refuses the first of @p keys (NULL-terminated) given in
 * @p opts, as an option that does not apply to a lazy descriptor, "...:
 * @p why" ("the maps are computed when read"). */
mmcl_status mmcl__opt_refuse_for_lazy(mmcl_context *ctx,
                                      const mmcl_options *opts,
                                      const char *const *keys,
                                      const char *why);

/* Number of threads to use: THREADS, with 0 meaning every core. */
int mmcl__opt_threads(const mmcl_options *opts);

#endif /* MMCL_OPTIONS_INTERNAL_H */
