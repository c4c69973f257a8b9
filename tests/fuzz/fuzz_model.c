/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness of the model loader: the input is a model file's
 * bytes, in a memory file (memfd) loaded by mmcl_model_load() through
 * /proc/self/fd/N; what loads is then read back (tensors, metadata).
 */
#define _GNU_SOURCE /* memfd_create */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mmcl/context.h"
#include "mmcl/model.h"

static mmcl_context *ctx;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ctx = mmcl_context_create();
    return ctx ? 0 : 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("mmcl-fuzz-model", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    if (done == size) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        mmcl_model *m = NULL;
        if (mmcl_model_load(ctx, path, &m) == MMCL_OK) {
            size_t n = mmcl_model_tensor_count(m);
            volatile float sink = 0.0f;
            for (size_t i = 0; i < n; i++) {
                const char *name = mmcl_model_tensor_name(m, i);
                int ndim = 0;
                const int64_t *shape = NULL;
                const float *t = name ? mmcl_model_tensor(m, name, &ndim,
                                                          &shape)
                                      : NULL;
                size_t count = 1;
                for (int k = 0; k < ndim; k++)
                    count *= (size_t)shape[k];
                if (t && count > 0) /* the first and last values */
                    sink += t[0] + t[count - 1];
            }
            (void)sink;
            (void)mmcl_model_metadata_json(m);
            mmcl_model_destroy(m);
        }
    }
    close(fd);
    return 0;
}
