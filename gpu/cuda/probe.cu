/* gpu/cuda/probe.cu — the smallest kernel: proves the nvcc build path and the
 * device at start-up (gpu_cuda_selftest in cuda_backend.c). */
#include "gpu/cuda/kernels.h"
#include "gpu/cuda/cuda_common.cuh"

__global__ static void axpy_kernel(float a, const float *x, float *y, size_t n)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		y[i] = a * x[i] + y[i];
}

extern "C" int gpu_cuda_launch_axpy(void *stream, float a, const float *x, float *y, size_t n)
{
	if (n == 0)
		return 0;
	axpy_kernel<<<tern_div_up(n, 256), 256, 0, (cudaStream_t)stream>>>(a, x, y, n);
	return (int)cudaGetLastError();
}
