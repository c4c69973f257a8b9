# SPDX-License-Identifier: MIT
# Compiler warnings for the project's own targets. -Wconversion is left out:
# BLAS takes int dimensions and GDAL int offsets, and the casts it would ask
# for everywhere hide the size checks done once at each operation boundary.
# -Wcast-qual is left out too: GDAL's C API takes non-const buffers.
set(MMCL_C_WARNINGS
    -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes
    -Wmissing-prototypes -Wformat=2 -Wundef -Wpointer-arith
    -Wno-unused-parameter)
set(MMCL_CXX_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wno-unused-parameter)

function(mmcl_set_warnings target)
    target_compile_options(${target} PRIVATE
        $<$<COMPILE_LANGUAGE:C>:${MMCL_C_WARNINGS}>
        $<$<COMPILE_LANGUAGE:CXX>:${MMCL_CXX_WARNINGS}>)
    if(MMCL_WERROR)
        target_compile_options(${target} PRIVATE -Werror)
    endif()
endfunction()
