# SPDX-License-Identifier: MIT
# Every external dependency is found here, and nowhere else: GDAL, OpenBLAS
# (CBLAS), LAPACKE, cJSON, CUnit and threads. Each becomes an imported target
# (GDAL::GDAL, mmcl::blas, mmcl::lapacke, mmcl::cjson, mmcl::cunit).

find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(GDAL CONFIG QUIET)
if(NOT TARGET GDAL::GDAL)
    find_package(GDAL REQUIRED)
endif()

# OpenBLAS provides CBLAS (cblas.h, cblas_*); LAPACKE comes from its own
# package. pkg-config first, then the classic Find modules.
pkg_check_modules(MMCL_OPENBLAS IMPORTED_TARGET openblas)
if(MMCL_OPENBLAS_FOUND)
    add_library(mmcl::blas ALIAS PkgConfig::MMCL_OPENBLAS)
else()
    set(BLA_VENDOR OpenBLAS)
    find_package(BLAS REQUIRED)
    add_library(mmcl_blas INTERFACE)
    target_link_libraries(mmcl_blas INTERFACE BLAS::BLAS)
    add_library(mmcl::blas ALIAS mmcl_blas)
endif()

pkg_check_modules(MMCL_LAPACKE IMPORTED_TARGET lapacke)
if(MMCL_LAPACKE_FOUND)
    add_library(mmcl::lapacke ALIAS PkgConfig::MMCL_LAPACKE)
else()
    find_library(MMCL_LAPACKE_LIB lapacke REQUIRED)
    find_path(MMCL_LAPACKE_INC lapacke.h REQUIRED)
    add_library(mmcl_lapacke INTERFACE)
    target_link_libraries(mmcl_lapacke INTERFACE ${MMCL_LAPACKE_LIB})
    target_include_directories(mmcl_lapacke INTERFACE ${MMCL_LAPACKE_INC})
    add_library(mmcl::lapacke ALIAS mmcl_lapacke)
endif()

pkg_check_modules(MMCL_CJSON REQUIRED IMPORTED_TARGET libcjson)
add_library(mmcl::cjson ALIAS PkgConfig::MMCL_CJSON)

# FreeType draws the text of legends (Debian libfreetype-dev), in the
# DejaVu Sans font (Debian fonts-dejavu-core), looked for at run time.
pkg_check_modules(MMCL_FREETYPE REQUIRED IMPORTED_TARGET freetype2)
add_library(mmcl::freetype ALIAS PkgConfig::MMCL_FREETYPE)
set(MMCL_LEGEND_FONT "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    CACHE FILEPATH "TrueType font of legend text (DejaVu Sans)")

if(MMCL_BUILD_TESTS)
    pkg_check_modules(MMCL_CUNIT REQUIRED IMPORTED_TARGET cunit)
    add_library(mmcl::cunit ALIAS PkgConfig::MMCL_CUNIT)
endif()

find_library(MMCL_LIBM m)

# oneDNN (Debian libdnnl-dev) runs the encoders' matrix products
# (algorithms/matmul.c): optional, since OpenBLAS computes the same
# products (more slowly) and a build without oneDNN, or on a CPU it does
# not serve, must keep working. Found: the imported target mmcl::dnnl,
# and the library is compiled with MMCL_HAVE_DNNL. Debian's libdnnl2 threads with OpenMP (libgomp), whose
# per-thread count mmcl sets, so libgomp is linked too.
option(MMCL_WITH_ONEDNN "Run the encoders on oneDNN when it is found" ON)
if(MMCL_WITH_ONEDNN)
    find_path(MMCL_DNNL_INCLUDE_DIR oneapi/dnnl/dnnl.h)
    find_library(MMCL_DNNL_LIBRARY NAMES dnnl)
    find_library(MMCL_GOMP_LIBRARY NAMES gomp libgomp.so.1)
    if(MMCL_DNNL_INCLUDE_DIR AND MMCL_DNNL_LIBRARY AND MMCL_GOMP_LIBRARY)
        add_library(mmcl::dnnl INTERFACE IMPORTED)
        set_target_properties(mmcl::dnnl PROPERTIES
            INTERFACE_INCLUDE_DIRECTORIES "${MMCL_DNNL_INCLUDE_DIR}"
            INTERFACE_LINK_LIBRARIES
                "${MMCL_DNNL_LIBRARY};${MMCL_GOMP_LIBRARY}")
        message(STATUS "oneDNN: ${MMCL_DNNL_LIBRARY} (encoders on oneDNN)")
    else()
        message(STATUS "oneDNN not found (libdnnl-dev): the encoders run "
            "on OpenBLAS and --precision bf16 is refused")
    endif()
endif()
