/* gpu/cuda/cuda_backend.c — host side of the CUDA backend (C, compiled by $(CC)
 * against the runtime API).  For now: device discovery and a self-test that
 * runs one kernel; the op table arrives with the CUDA backend issue.  Every
 * runtime call goes through CUDA_TRY (cuda_check.h). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "gpu/cuda/cuda_check.h"
#include "gpu/cuda/kernels.h"
#include "gpu/cuda/cuda_impl.h"

int gpu_cuda_device_count(int *n, struct diag *d)
{
	cudaError_t err = cudaGetDeviceCount(n);

	if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver) {
		*n = 0;
		return 0; /* a CUDA build on a machine without a GPU/driver */
	}
	CUDA_TRY(err);
	return 0;
}

int gpu_cuda_device_name(int dev, char *name, size_t cap, struct diag *d)
{
	struct cudaDeviceProp prop;

	CUDA_TRY(cudaGetDeviceProperties(&prop, dev));
	snprintf(name, cap, "%s (sm_%d%d, %.1f GiB)", prop.name, prop.major,
		 prop.minor, (double)prop.totalGlobalMem / (1024.0 * 1024 * 1024));
	return 0;
}

int gpu_cuda_selftest(struct diag *d)
{
	enum { N = 1000 };
	float hx[N], hy[N];
	float *dx = NULL, *dy = NULL;
	int i, rc = 0;

	for (i = 0; i < N; i++) {
		hx[i] = (float)i;
		hy[i] = 1.0f;
	}
	CUDA_TRY(cudaMalloc((void **)&dx, sizeof hx));
	if (cudaMalloc((void **)&dy, sizeof hy) != cudaSuccess) {
		cudaFree(dx);
		return diag_fail(d, GPU_E_NOMEM, "cudaMalloc of %zu bytes failed", sizeof hy);
	}
	if (cudaMemcpy(dx, hx, sizeof hx, cudaMemcpyHostToDevice) != cudaSuccess ||
	    cudaMemcpy(dy, hy, sizeof hy, cudaMemcpyHostToDevice) != cudaSuccess ||
	    gpu_cuda_launch_axpy(NULL, 2.0f, dx, dy, N) != 0 ||
	    cudaMemcpy(hy, dy, sizeof hy, cudaMemcpyDeviceToHost) != cudaSuccess) {
		rc = diag_fail(d, GPU_E_DEVICE, "CUDA self-test: %s",
			       cudaGetErrorString(cudaGetLastError()));
	}
	cudaFree(dx);
	cudaFree(dy);
	if (rc)
		return rc;
	for (i = 0; i < N; i++)
		if (hy[i] != 2.0f * (float)i + 1.0f)
			return diag_fail(d, GPU_E_DEVICE,
					 "CUDA self-test: y[%d] = %g, expected %g", i,
					 (double)hy[i], 2.0 * i + 1.0);
	return 0;
}
