/* SPDX-License-Identifier: MIT */
/* Checks on parsed JSON: see json_internal.h. */
#include <stdlib.h>
#include <string.h>

#include "json_internal.h"

static int
key_cmp(const void *a, const void *b)
{
    const char *const *x = a;
    const char *const *y = b;
    return strcmp(*x, *y);
}

int
mmcl__json_find_duplicate(const cJSON *item, const char **dup)
{
    const cJSON *c;
    if (cJSON_IsObject(item)) {
        size_t n = 0, i = 0;
        for (c = item->child; c; c = c->next)
            n++;
        if (n > 1) {
            int found = 0;
            const char **keys = malloc(n * sizeof(*keys));
            if (!keys)
                return -1;
            for (c = item->child; c; c = c->next)
                keys[i++] = c->string ? c->string : "";
            qsort(keys, n, sizeof(*keys), key_cmp);
            for (i = 1; i < n && !found; i++) {
                if (strcmp(keys[i - 1], keys[i]) == 0) {
                    *dup = keys[i];
                    found = 1;
                }
            }
            free(keys);
            if (found)
                return 1;
        }
    }
    if (cJSON_IsObject(item) || cJSON_IsArray(item)) {
        for (c = item->child; c; c = c->next) {
            int r = mmcl__json_find_duplicate(c, dup);
            if (r)
                return r;
        }
    }
    return 0;
}
