/* gpu/cuda/cuda_check.h — CUDA_TRY / CUBLAS_TRY: every runtime and cuBLAS call
 * goes through these.  On failure they record the failing statement, file:line
 * and the library's own error text in the diag and return GPU_E_DEVICE from
 * the enclosing function (which must have a `struct diag *d` in scope). */
#ifndef TERN_GPU_CUDA_CHECK_H
#define TERN_GPU_CUDA_CHECK_H

#include <cuda_runtime.h>

#include "gpu/gpu.h"

#define CUDA_TRY(stmt)                                                     \
	do {                                                               \
		cudaError_t err_ = (stmt);                                 \
		if (err_ != cudaSuccess)                                   \
			return diag_fail(d, GPU_E_DEVICE, "%s:%d: %s: %s", \
					 __FILE__, __LINE__, #stmt,        \
					 cudaGetErrorString(err_));        \
	} while (0)

#define CUBLAS_TRY(stmt)                                                    \
	do {                                                                \
		cublasStatus_t st_ = (stmt);                                \
		if (st_ != CUBLAS_STATUS_SUCCESS)                           \
			return diag_fail(d, GPU_E_DEVICE, "%s:%d: %s: %s",  \
					 __FILE__, __LINE__, #stmt,         \
					 cublasGetStatusString(st_));       \
	} while (0)

#endif
