/* gpu/cuda/cuda_impl.h — what the CUDA backend offers the registry
 * (gpu/registry.c).  Internal to gpu/. */
#ifndef TERN_GPU_CUDA_IMPL_H
#define TERN_GPU_CUDA_IMPL_H

#include <stddef.h>

#include "common/diag.h"

/* Number of CUDA devices; 0 (and success) when there is no driver or GPU. */
int gpu_cuda_device_count(int *n, struct diag *d);
/* "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)" into name. */
int gpu_cuda_device_name(int dev, char *name, size_t cap, struct diag *d);
/* Runs one kernel on device 0 and checks its result. */
int gpu_cuda_selftest(struct diag *d);

#endif
