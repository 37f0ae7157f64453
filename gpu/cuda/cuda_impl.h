/* gpu/cuda/cuda_impl.h — what the CUDA backend offers the registry
 * (gpu/registry.c) and the rest of gpu/.  Internal to gpu/.  Free of CUDA
 * types, so that including it needs no CUDA headers. */
#ifndef TERN_GPU_CUDA_IMPL_H
#define TERN_GPU_CUDA_IMPL_H

#include <stddef.h>

#include "common/diag.h"
#include "gpu/gpu_impl.h"

/* The backend's vtable (cuda_backend.c) is declared in gpu/gpu_impl.h. */

/* Number of CUDA devices; 0 (and success) when there is no driver or GPU
 * (the reason is left in d when d is not NULL). */
int gpu_cuda_device_count(int *n, struct diag *d);
/* "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)" into name. */
int gpu_cuda_device_name(int dev, char *name, size_t cap, struct diag *d);
/* The stream every op of handle G runs on (a cudaStream_t) and its
 * device ordinal; for the backend's other files (EXL3). */
void *gpu_cuda_stream(struct gpu *g);
int gpu_cuda_device(struct gpu *g);
/* The handle's cuBLAS handle (a cublasHandle_t, bound to its stream;
 * owned by the handle, valid until gpu_close); for the EXL3 prefill path. */
void *gpu_cuda_blas(struct gpu *g);
/* Whether gpu_matmul_swiglu / gpu_exl3_swiglu apply the SwiGLU inside
 * their decode launch (1), or run the products and the swiglu kernel
 * apart (0: TERN_FUSE_SWIGLU=0, for A/B timing; same bits either way). */
int gpu_cuda_fuse_swiglu(void);
/* For the tests, process-wide counts of gpu_moe_ffn's host-planned
 * grouped path: chunks run, and grouped cuBLAS calls made (0 where cuBLAS
 * has none for the experts' type, or TERN_MOE_GROUPED=0: one GemmEx per
 * expert instead).  Either pointer may be NULL. */
void gpu_cuda_moe_grouped_stats(unsigned long *chunks, unsigned long *calls);
/* Runs one kernel on the current device and checks its result. */
int gpu_cuda_selftest(struct diag *d);

#endif
