/* gpu/cuda/pdl.cuh — programmatic dependent launch (sm_90 and later) for
 * every kernel of the CUDA backend.
 *
 * Kernels are launched through tern_launch, which (on a device of compute
 * capability 9.0 or later, for kernels whose code was built for it, and
 * unless TERN_PDL=0) sets cudaLaunchAttributeProgrammaticStreamSerialization:
 * the launch may begin before the previous kernel in the stream has
 * finished (also inside a CUDA graph, where the attribute becomes a
 * programmatic edge).  The rules that keep this exactly as safe as
 * ordinary stream order:
 *
 *   - every kernel's first statement is tern_pdl_wait(): it signals that
 *     the next kernel may be scheduled (griddepcontrol.launch_dependents;
 *     the next grid starts once every block of this one has signalled or
 *     exited, so it only takes SM slots this grid no longer needs) and
 *     then returns once the previous grid has completed and its memory is
 *     visible (griddepcontrol.wait).  Nothing is read or written before
 *     that, so a kernel sees its predecessor's results, and — because a
 *     grid completes only after its own wait returned — everything
 *     earlier in the stream too;
 *   - the one exception: a kernel may start with tern_pdl_trigger(), read
 *     memory that no kernel ever writes (model weights, uploaded before
 *     any launch) into registers or L2, and then call
 *     tern_pdl_wait_only() before touching anything else.  The decode
 *     GEMVs do this (gpu/cuda/gemv.cu): their weights stream in while
 *     the small kernels before them (norms, RoPE, attention) run, instead
 *     of the DRAM idling through those.
 *
 * Because every kernel signals at once, the next few kernels of a decode
 * step are resident and waiting (or prefetching weights) while the current
 * one runs; the chain is bounded by SM resources.  Both rules are checked
 * by scripts/check-kernels.sh.  TERN_PDL_TRIGGER=0 at build time leaves
 * the signal out (dependents then start as the previous grid's blocks
 * exit), for measurements.  Device code only (included by .cu files).
 */
#ifndef TERN_GPU_CUDA_PDL_CUH
#define TERN_GPU_CUDA_PDL_CUH

#include <cuda_runtime.h>
#include <stdlib.h>
#include <string.h>
#include <utility>

#ifndef TERN_PDL_TRIGGER
#define TERN_PDL_TRIGGER 1
#endif

/* Let the next kernel in the stream be scheduled (see the rules above). */
__device__ __forceinline__ void tern_pdl_trigger(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && TERN_PDL_TRIGGER
	asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

/* Wait for the previous grid (after tern_pdl_trigger and a prefetch of
 * read-only weights only). */
__device__ __forceinline__ void tern_pdl_wait_only(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
	asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

/* First statement of every kernel launched by tern_launch: signal, wait. */
__device__ __forceinline__ void tern_pdl_wait(void)
{
	tern_pdl_trigger();
	tern_pdl_wait_only();
}

/* Whether the current device and this kernel's loaded code support the
 * programmatic launch (compute capability >= 9.0, code built for sm_90+:
 * a kernel JIT-compiled from older PTX has no griddepcontrol.wait), and
 * TERN_PDL is not "0".  Cached per kernel signature and thread-safe
 * enough: racing first calls compute the same answer. */
template <typename... KArgs>
static inline bool tern_pdl_ok(void (*kernel)(KArgs...))
{
	static int ok = -1;

	if (ok < 0) {
		const char *env = getenv("TERN_PDL");
		cudaFuncAttributes fa;
		int dev = 0, major = 0, v = 0;

		if (!(env && !strcmp(env, "0")) && cudaGetDevice(&dev) == cudaSuccess &&
		    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor,
					   dev) == cudaSuccess &&
		    major >= 9 &&
		    cudaFuncGetAttributes(&fa, (const void *)kernel) == cudaSuccess &&
		    fa.binaryVersion >= 90 && fa.ptxVersion >= 90)
			v = 1;
		(void)cudaGetLastError();
		ok = v;
	}
	return ok == 1;
}

/* kernel<<<grid, block, smem, stream>>>(args...), with the programmatic
 * attribute where tern_pdl_ok; returns the launch error (also left for
 * cudaGetLastError). */
template <typename... KArgs, typename... Args>
static inline cudaError_t tern_launch(void (*kernel)(KArgs...), dim3 grid,
				      dim3 block, size_t smem, cudaStream_t st,
				      Args &&...args)
{
	cudaLaunchConfig_t cfg;
	cudaLaunchAttribute at[1];

	if (!tern_pdl_ok(kernel)) {
		kernel<<<grid, block, smem, st>>>(std::forward<Args>(args)...);
		return cudaGetLastError();
	}
	memset(&cfg, 0, sizeof cfg);
	memset(at, 0, sizeof at);
	cfg.gridDim = grid;
	cfg.blockDim = block;
	cfg.dynamicSmemBytes = smem;
	cfg.stream = st;
	at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
	at[0].val.programmaticStreamSerializationAllowed = 1;
	cfg.attrs = at;
	cfg.numAttrs = 1;
	return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

#endif
