/* dx_version.h - what this build is: version, git commit, build type,
 * compiler. One place for the CLI (`dinox --version`, `dinox info`), eval.json
 * and the HTML report. Runtime facts about the compute libraries (oneDNN
 * version and ISA, OpenMP threads, backends) are in backend/dx_backend_info.h. */
#ifndef DX_VERSION_H
#define DX_VERSION_H

typedef struct {
    const char *version;    /* project version, e.g. "0.1.0" */
    const char *git_commit; /* short commit, "-dirty" if tracked files differed at build time; "unknown" without git */
    const char *build_type; /* CMAKE_BUILD_TYPE, e.g. "Release" */
    const char *options;    /* build options in effect, e.g. "native" or "asan+ubsan" ("none" if none) */
    const char *compiler;   /* e.g. "GCC 12.2.0" */
} dx_build_info;

const dx_build_info *dx_build(void);
/* One line: "dinox 0.1.0 (git 1a2b3c4d5e6f, Release, GCC 12.2.0)". Static storage. */
const char *dx_version_string(void);

#endif /* DX_VERSION_H */
