# SPDX-License-Identifier: MIT
# The library's GDAL side, by layer (docs/architecture.md); each layer uses
# only those above it in this list, but for the exceptions named there.
# Paths relative to the project root.
set(MMCL_SRC_LAYERS
    core        # context and errors, options, GDAL helpers, the tile pool
                # (and the descriptor chain it hands to its workers), the
                # output rules and the raster writer
    grid        # rasters on the optical grid (the grid source), the optical
                # stack and the SAR, read by window
    model       # the model file, its schema, the encoders, input checks
    maps        # embeddings and losses of windows; training samples
    operations  # the mmcl_* operations: align, synth, train, embed, ...
    products    # lazy products: descriptors computed when read
)

set(MMCL_CORE_SOURCES
    src/core/context.c
    src/core/chain.c
    src/core/options.c
    src/core/json.c
    src/core/gdal_util.c
    src/core/blas_info.c
    src/core/tiles.c
    src/core/dist.c
    src/core/output.c
    src/core/writer.c
    src/grid/grid_source.c
    src/grid/pair.c
    src/grid/shift.c
    src/grid/sar.c
    src/grid/tile_reader.c
    src/grid/embedding_raster.c
    src/model/model.c
    src/model/model_schema.c
    src/model/encoder.c
    src/model/input_check.c
    src/maps/maps.c
    src/maps/map_compute.c
    src/maps/map_run.c
    src/maps/sample.c
    src/maps/noise.c
    src/maps/audit_fit.c
    src/operations/align.c
    src/operations/coreg.c
    src/operations/synth.c
    src/operations/train.c
    src/operations/embed.c
    src/operations/infoloss.c
    src/operations/audit.c
    src/operations/audit_lazy.c
    src/operations/probe.c
    src/operations/colormaps.c
    src/operations/rgb.c
    src/operations/rgb_coreg.c
    src/operations/style.c
    src/products/product.c
    src/products/product_map.c
    src/products/product_rgb.c
)

# The folders of the internal headers, for the library and for the tests,
# benchmarks and fuzz harnesses that reach internals.
set(MMCL_SRC_INCLUDE_DIRS)
foreach(layer IN LISTS MMCL_SRC_LAYERS)
    list(APPEND MMCL_SRC_INCLUDE_DIRS ${PROJECT_SOURCE_DIR}/src/${layer})
endforeach()
