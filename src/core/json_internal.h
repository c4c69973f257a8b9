/* SPDX-License-Identifier: MIT */
/*
 * Private: checks on parsed JSON shared by the readers of JSON that mmcl
 * accepts from files (model metadata in model.c, lazy descriptors in
 * product.c and rgb.c).
 */
#ifndef MMCL_JSON_INTERNAL_H
#define MMCL_JSON_INTERNAL_H

#include <cjson/cJSON.h>

/*
 * Looks for a key present twice in one object, at any depth of @p item
 * (cJSON keeps duplicates, and readers disagree on which one wins).
 * Returns 0 when there is none, 1 with the key in *dup (borrowed from
 * @p item), -1 when out of memory. Depth is bounded by cJSON's nesting limit.
 */
int mmcl__json_find_duplicate(const cJSON *item, const char **dup);

#endif /* MMCL_JSON_INTERNAL_H */
