/* gpu/cuda/kernels.h — extern "C" launch wrappers exported by the .cu files,
 * called by the host C code of the CUDA backend.  Each returns the launch's
 * cudaError_t as an int (0 = success); the caller wraps it in CUDA_TRY. */
#ifndef TERN_GPU_CUDA_KERNELS_H
#define TERN_GPU_CUDA_KERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* probe.cu: y[i] = a * x[i] + y[i] for i < n, on stream (cudaStream_t). */
int gpu_cuda_launch_axpy(void *stream, float a, const float *x, float *y, size_t n);

#ifdef __cplusplus
}
#endif
#endif
