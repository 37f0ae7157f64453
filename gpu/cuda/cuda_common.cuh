/* gpu/cuda/cuda_common.cuh — helpers shared by every kernel file. */
#ifndef TERN_GPU_CUDA_COMMON_CUH
#define TERN_GPU_CUDA_COMMON_CUH

#include <cuda_runtime.h>

static inline unsigned tern_div_up(size_t a, size_t b)
{
	return (unsigned)((a + b - 1) / b);
}

#endif
