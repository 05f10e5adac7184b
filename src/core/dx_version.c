/* dx_version.c - build identity; the values come from CMake (see
 * CMakeLists.txt and cmake/git_version.cmake). */
#include "core/dx_version.h"

#include "dx_git_version.h" /* DX_GIT_COMMIT, generated in the build tree */

#ifndef DX_VERSION
#define DX_VERSION "unknown"
#endif
#ifndef DX_BUILD_TYPE
#define DX_BUILD_TYPE "unknown"
#endif
#ifndef DX_BUILD_OPTIONS
#define DX_BUILD_OPTIONS "none"
#endif
#ifndef DX_GIT_COMMIT
#define DX_GIT_COMMIT "unknown"
#endif

#define DX_STR_(x) #x
#define DX_STR(x) DX_STR_(x)
#if defined(__clang__)
#define DX_COMPILER "Clang " DX_STR(__clang_major__) "." DX_STR(__clang_minor__) "." DX_STR(__clang_patchlevel__)
#elif defined(__GNUC__)
#define DX_COMPILER "GCC " __VERSION__
#else
#define DX_COMPILER "unknown compiler"
#endif

static const dx_build_info BUILD = {
    .version = DX_VERSION,
    .git_commit = DX_GIT_COMMIT,
    .build_type = DX_BUILD_TYPE,
    .options = DX_BUILD_OPTIONS,
    .compiler = DX_COMPILER,
};

const dx_build_info *dx_build(void) { return &BUILD; }

const char *dx_version_string(void) {
    return "dinox " DX_VERSION " (git " DX_GIT_COMMIT ", " DX_BUILD_TYPE ", " DX_COMPILER ")";
}
