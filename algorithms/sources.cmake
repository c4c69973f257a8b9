# SPDX-License-Identifier: MIT
# Numerics only: no GDAL. Paths relative to the project root.
set(MMCL_ALGORITHM_SOURCES
    algorithms/rng.c
    algorithms/stats.c
    algorithms/linalg.c
    algorithms/cca.c
    algorithms/pca.c
    algorithms/ridge.c
    algorithms/nn.c
    algorithms/infonce.c
    algorithms/adamw.c
    algorithms/blas_threads.c
    algorithms/clip.c
)
