/* gpu/cuda/pdl.cuh — programmatic dependent launch (sm_90 and later) for
 * every kernel of the CUDA backend.
 *
 * Kernels are launched through tern_launch, which (on a device of compute
 * capability 9.0 or later, for kernels whose code was built for it, and
 * unless TERN_PDL=0) sets cudaLaunchAttributeProgrammaticStreamSerialization:
 * the launch may begin before the previous kernel in the stream has
 * finished, so the launch latency between consecutive kernels (also inside
 * a CUDA graph, where the attribute becomes a programmatic edge) overlaps
 * the previous kernel's last blocks.  In exchange every kernel's FIRST
 * statement is tern_pdl_wait(), which returns once the previous grid has
 * completed and its memory is visible — so no kernel reads (or
 * overwrites) anything before its predecessor is done, exactly as with
 * ordinary stream order (the exceptions, marked TERN_PDL_LATE_WAIT, load
 * only what no kernel writes before their wait: exl3.cu's xl_tail_kernel
 * its weights, attention.cu's attn_decode_kernel its rows and pages,
 * which gpu_kv_batch says the host writes).  No kernel triggers
 * (griddepcontrol.launch_dependents) at its start — so a dependent grid
 * never takes SM slots its predecessor still needs — except the q/k/v
 * output launch with RoPE, whose 12-odd blocks leave room for the
 * decode attention after it; the long kernels (EXL3 GEMV, decode
 * attention) trigger after their main loop (tern_pdl_trigger), when all
 * their blocks are resident.  (Measured on an H200, llama3-8b bf16:
 * signalling at the start of every kernel, with the decode GEMV loading
 * its first weights before its wait, changed batch-1 decode by less than
 * the run-to-run noise — 5.16 / 5.16 ms against 5.12 / 5.17 ms — and made
 * batch 8 11% slower, 8.92 against 8.03 ms, as waiting blocks of the next
 * kernels held SM slots; pulling the next GEMV's rows into L2 before its
 * wait was slower still.  And an early-launched grid of fewer blocks than
 * the device has slots does not spread: its blocks land as slots free,
 * up to the kernel's occupancy on the first SMs freed — EXL3's o and down
 * GEMVs, 128 blocks, ran on a fraction of the SMs and the batch-1 step
 * went from 3.06 to 3.63 ms; see docs/PERFORMANCE.md, "the GEMV launched
 * early".)  Device code only (included by .cu files).
 */
#ifndef TERN_GPU_CUDA_PDL_CUH
#define TERN_GPU_CUDA_PDL_CUH

#include <cuda_runtime.h>
#include <stdlib.h>
#include <string.h>
#include <utility>

/* First statement of every kernel launched by tern_launch. */
__device__ __forceinline__ void tern_pdl_wait(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
	asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

/* Called by a long kernel's blocks once their main loop is done (the
 * EXL3 GEMV, the decode attention): when every block has called it or
 * exited, the next kernel in the stream may be scheduled, so its launch
 * overlaps this kernel's last reductions; the next kernel still waits
 * (tern_pdl_wait) for this one to complete.  By then every block of this
 * kernel is resident, so the next one takes no slot this one needs.
 * (Also called at the start of the q/k/v output launch with RoPE:
 * TERN_ATT_EARLY below.)  TERN_PDL_TRIGGER=0 at build time leaves every
 * call out (measurements). */
#ifndef TERN_PDL_TRIGGER
#define TERN_PDL_TRIGGER 1
#endif
/* 1: the q/k/v output launch with RoPE triggers at its start, so that the
 * decode attention after it reads its rows and pages (host-written)
 * before its wait; 0 at build time leaves that out (measurements). */
#ifndef TERN_ATT_EARLY
#define TERN_ATT_EARLY 1
#endif
__device__ __forceinline__ void tern_pdl_trigger(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && TERN_PDL_TRIGGER
	asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

/* The first statement of a kernel that loads data no kernel writes
 * (weights) before its tern_pdl_wait(), to overlap those loads with the
 * previous kernel's tail; it must still wait before touching anything a
 * kernel writes (scripts/check-kernels.sh checks that it waits at all).
 * Expands to nothing. */
#define TERN_PDL_LATE_WAIT() ((void)0)

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
