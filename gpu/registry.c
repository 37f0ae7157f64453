/* gpu/registry.c — which backends this build contains.
 *
 * The only #ifdef HAVE_CUDA in the tree: every other file calls backends
 * through gpu_backend_find and the vtable, so a CUDA build still runs on a
 * machine without a driver: gpu_open(GPU_KIND_CUDA) then fails with
 * GPU_E_NODEVICE (gpu/cuda/cuda_backend.c), and gpu_open(GPU_KIND_AUTO)
 * (gpu/gpu.c) falls back to the CPU.
 */
#include "config.h"

#include "gpu/gpu_impl.h"

#include <stddef.h>

#ifdef HAVE_CUDA
#include "gpu/cuda/cuda_impl.h"
#endif

const struct gpu_backend *gpu_backend_find(enum gpu_kind kind)
{
	switch (kind) {
	case GPU_KIND_CPU:
		return &gpu_cpu_backend;
	case GPU_KIND_CUDA:
#ifdef HAVE_CUDA
		return &gpu_cuda_backend;
#else
		return NULL;
#endif
	case GPU_KIND_AUTO:
		break;
	}
	return NULL;
}
