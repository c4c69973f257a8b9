/* SPDX-License-Identifier: MIT */
/*
 * Symbol export and version macros. MMCL_API marks the functions of the
 * public API; everything else in the shared library is hidden.
 */
#ifndef MMCL_EXPORT_H
#define MMCL_EXPORT_H

#if defined(MMCL_STATIC)
#define MMCL_API
#elif defined(_WIN32)
#if defined(MMCL_BUILDING)
#define MMCL_API __declspec(dllexport)
#else
#define MMCL_API __declspec(dllimport)
#endif
#else
#define MMCL_API __attribute__((visibility("default")))
#endif

#define MMCL_VERSION_MAJOR 0
#define MMCL_VERSION_MINOR 1
#define MMCL_VERSION_PATCH 0
#define MMCL_VERSION_STRING "0.1.0"
/** Single number for compile-time comparisons: 10000*major + 100*minor + patch. */
#define MMCL_VERSION_NUM                                                       \
    (MMCL_VERSION_MAJOR * 10000 + MMCL_VERSION_MINOR * 100 + MMCL_VERSION_PATCH)

#ifdef __cplusplus
#define MMCL_BEGIN_DECLS extern "C" {
#define MMCL_END_DECLS }
#else
#define MMCL_BEGIN_DECLS
#define MMCL_END_DECLS
#endif

#endif /* MMCL_EXPORT_H */
