/* gpu/registry.c — which backends this build contains.
 *
 * The only #ifdef HAVE_CUDA in the tree: every other file calls backends
 * through gpu_backend_find and the vtable, so a CUDA build still runs on a
 * machine without a driver (gpu_open(GPU_KIND_AUTO) falls back to the CPU).
 */
#include "config.h"

#include "gpu/gpu_impl.h"

#include <stddef.h>

#ifdef HAVE_CUDA
/* Slot for the CUDA backend (gpu/cuda/backend.c, later work): once it
 * exists, declare it in gpu_impl.h and return it below. */
#endif

const struct gpu_backend *gpu_backend_find(enum gpu_kind kind)
{
	switch (kind) {
	case GPU_KIND_CPU:
		return &gpu_cpu_backend;
	case GPU_KIND_CUDA:
#ifdef HAVE_CUDA
		/* return &gpu_cuda_backend; -- not written yet */
		return NULL;
#else
		return NULL;
#endif
	case GPU_KIND_AUTO:
		break;
	}
	return NULL;
}
