/* gpu/cuda/exl3_dev.cuh — device helpers shared by the EXL3 kernels
 * (gpu/cuda/exl3.cu: decode GEMV, input/output rotations; gpu/cuda/
 * exl3_dq.cu: the prefill path's dequantisation and output): the 128-point
 * Hadamard on a warp (docs/exl3-format.md §3.1) and the three codebooks on
 * two states at once (§2), bit-exact to gpu_exl3_codebook.  Internal to
 * gpu/cuda.  The codebooks' constants are gpu/exl3_cb.h's (shared with the
 * CPU backend).
 */
#ifndef TERN_GPU_CUDA_EXL3_DEV_CUH
#define TERN_GPU_CUDA_EXL3_DEV_CUH

#include <cuda_fp16.h>
#include <stdint.h>

#include "gpu/exl3_cb.h"

/* ---- the 128-point Hadamard on a warp ----------------------------------- */

/* v: lane's 4 consecutive elements 4l .. 4l+3 of a 128-block; natural-order
 * FWHT (§3.1) times 1/sqrt(128): two butterflies in registers, five across
 * lanes (partner l ^ m; the upper partner takes a - b). */
__device__ __forceinline__ void xl_fwht128(float v[4])
{
	const int lane = threadIdx.x & 31;
	float a, b;

	a = v[0]; b = v[1]; v[0] = a + b; v[1] = a - b;
	a = v[2]; b = v[3]; v[2] = a + b; v[3] = a - b;
	a = v[0]; b = v[2]; v[0] = a + b; v[2] = a - b;
	a = v[1]; b = v[3]; v[1] = a + b; v[3] = a - b;
#pragma unroll
	for (int m = 1; m < 32; m <<= 1) {
#pragma unroll
		for (int q = 0; q < 4; q++) {
			float p = __shfl_xor_sync(0xffffffffu, v[q], m);

			v[q] = (lane & m) ? p - v[q] : v[q] + p;
		}
	}
#pragma unroll
	for (int q = 0; q < 4; q++)
		v[q] *= 0.088388347648f;
}


/* v[0..3] rounded to f16 (RNE) and stored at dst (8-byte aligned): the
 * rotated activations' one rounding. */
__device__ __forceinline__ void xl_store_h4(__half *dst, const float v[4])
{
	__half2 h01 = __floats2half2_rn(v[0], v[1]);
	__half2 h23 = __floats2half2_rn(v[2], v[3]);
	uint2 u;

	u.x = *reinterpret_cast<uint32_t *>(&h01);
	u.y = *reinterpret_cast<uint32_t *>(&h23);
	*reinterpret_cast<uint2 *>(dst) = u;
}

/* Codebook (§2) of two 16-bit states -> half2 (s0 in .x), bit-exact. */
template <int CB>
__device__ __forceinline__ uint32_t xl_cb2(uint32_t s0, uint32_t s1)
{
	if (CB == 2) { /* MUL1: fp16(h * K_INV + K_BIAS), h = 1024 + bytesum */
		const uint32_t h0 = __dp4a(s0 * EXL3_MUL1_MUL, 0x01010101u, 0x6400u);
		const uint32_t h1 = __dp4a(s1 * EXL3_MUL1_MUL, 0x01010101u, 0x6400u);
		const uint32_t hh = __byte_perm(h0, h1, 0x5410);
		const __half2 kinv = __halves2half2(__ushort_as_half(EXL3_MUL1_KINV),
						    __ushort_as_half(EXL3_MUL1_KINV));
		const __half2 kbias = __halves2half2(__ushort_as_half(EXL3_MUL1_KBIAS),
						     __ushort_as_half(EXL3_MUL1_KBIAS));
		__half2 v = __hfma2(*reinterpret_cast<const __half2 *>(&hh), kinv,
				    kbias);

		return *reinterpret_cast<uint32_t *>(&v);
	} else { /* 3INST (LCG) or MCG, then the two-halves sum */
		uint32_t x0, x1, lo, hi;
		__half2 v;

		if (CB == 0) {
			x0 = s0 * EXL3_3INST_MUL + EXL3_3INST_ADD;
			x1 = s1 * EXL3_3INST_MUL + EXL3_3INST_ADD;
		} else {
			x0 = s0 * EXL3_MCG_MUL;
			x1 = s1 * EXL3_MCG_MUL;
		}
		x0 = (x0 & EXL3_CB_MASK) ^ EXL3_CB_XOR;
		x1 = (x1 & EXL3_CB_MASK) ^ EXL3_CB_XOR;
		lo = __byte_perm(x0, x1, 0x5410);
		hi = __byte_perm(x0, x1, 0x7632);
		v = __hadd2(*reinterpret_cast<const __half2 *>(&lo),
			    *reinterpret_cast<const __half2 *>(&hi));
		return *reinterpret_cast<uint32_t *>(&v);
	}
}

/* MUL1 without its last step: half2 of h = 1024 + byte sum for two
 * states (s0 in .x), exact (h <= 2044); xl_cb2<2> is h * K_INV + K_BIAS
 * rounded to f16. */
__device__ __forceinline__ uint32_t xl_mul1_h(uint32_t s0, uint32_t s1)
{
	const uint32_t h0 = __dp4a(s0 * EXL3_MUL1_MUL, 0x01010101u, 0x6400u);
	const uint32_t h1 = __dp4a(s1 * EXL3_MUL1_MUL, 0x01010101u, 0x6400u);

	return __byte_perm(h0, h1, 0x5410);
}

#endif
