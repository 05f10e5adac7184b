/* dx_backend_info.h - what the compute side of this build is: the backends
 * compiled in and, for the CPU one, the oneDNN library it runs on (version,
 * the ISA its kernels dispatch to on this machine) and the OpenMP threads.
 * Used by `dinox --version` / `dinox info`. */
#ifndef DX_BACKEND_INFO_H
#define DX_BACKEND_INFO_H

typedef struct {
    const char *backends; /* compiled-in backends, space separated, e.g. "cpu" */
    char onednn[96];      /* "3.0.0 (git <hash>, CPU runtime OpenMP)" */
    char onednn_isa[64];  /* ISA oneDNN dispatches to here, e.g. "Intel AVX2" */
    int omp_max_threads;  /* omp_get_max_threads() */
    int omp_procs;        /* omp_get_num_procs() */
    const char *codecs;   /* optional DICOM decoders compiled in, e.g. "JPEG 2000 (OpenJPEG), JPEG-LS (CharLS)" */
} dx_backend_info;

void dx_backend_info_get(dx_backend_info *info);

#endif /* DX_BACKEND_INFO_H */
