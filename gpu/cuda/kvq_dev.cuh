/* gpu/cuda/kvq_dev.cuh — device helpers of the quantized KV cache (gpu.h,
 * struct gpu_kv_pool; the host reference is gpu/kvq.c): writing one group
 * of 32 values with a warp (lane = value), reading 8 consecutive values of
 * a group in the rotated domain, and the H32 rotation over values spread
 * across registers and lanes.
 *
 * Attention never rotates a stored key or value back: H32 / sqrt(32) is
 * orthonormal and symmetric, so q . k = (R q) . (R k) group by group, and
 * sum_t p_t v_t = R sum_t p_t (R v_t).  The kernels rotate q once, take
 * scores and the weighted sum against the stored (rotated) codes times
 * their scale, and rotate the output once.  Internal to gpu/cuda. */
#ifndef TERN_GPU_CUDA_KVQ_DEV_CUH
#define TERN_GPU_CUDA_KVQ_DEV_CUH

#include <cuda_fp16.h>
#include <stdint.h>

#define KVQ_NORM 0.17677669529663687f /* 1 / sqrt(32) */

/* The butterfly stage of bit h of a value's index in the group, when that
 * bit is the lane's bit `lm` (a power of two): the partner's value comes
 * by shuffle; the lower index gets a + b, the upper a - b (gpu/kvq.c's
 * order and roundings).  Every lane of the warp must call it. */
__device__ __forceinline__ float kvq_stage_lane(float x, unsigned lm)
{
	const float y = __shfl_xor_sync(0xffffffffu, x, lm);

	return (threadIdx.x & lm) ? y - x : x + y;
}

/* R x for a group held one value a lane (value index = lane): the five
 * stages in the host's order, then the 1 / sqrt(32). */
__device__ __forceinline__ float kvq_h32_lanes(float x)
{
#pragma unroll
	for (unsigned h = 1; h < 32; h <<= 1)
		x = kvq_stage_lane(x, h);
	return x * KVQ_NORM;
}

__device__ __forceinline__ uint32_t kvq_or_warp(uint32_t v)
{
#if __CUDA_ARCH__ >= 800
	return __reduce_or_sync(0xffffffffu, v);
#else
	for (int o = 16; o > 0; o >>= 1)
		v |= __shfl_xor_sync(0xffffffffu, v, o);
	return v;
#endif
}

/* Store group g of a pool half (words: bits u32 a group; scales: one
 * f16 a group) from x, this lane's value of the group (lane = index).
 * The whole warp calls it; lane 0 writes the scale, lanes 0..bits-1 the
 * words.  gpu_kvq_quantize's arithmetic (the same rotation order, max,
 * f16 scale and code formula), so the codes are the host's. */
__device__ __forceinline__ void kvq_put(uint32_t *words, __half *scales, size_t g,
					unsigned bits, float x)
{
	const unsigned lane = threadIdx.x & 31;
	const float r = kvq_h32_lanes(x);
	const float m = (float)(1u << (bits - 1));
	const int top = (1 << bits) - 1;
	float mx = fmaxf(0.0f, fabsf(r)), s, t; /* NaN -> 0: the host's max */
	unsigned code, shift = bits, off = 0, mine = 0;
	__half hs;

#pragma unroll
	for (int o = 16; o > 0; o >>= 1)
		mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
	s = mx + 1e-10f;
	if (!(s <= 65504.0f))
		s = 65504.0f;
	hs = __float2half_rn(s);
	s = __half2float(hs);
	t = floorf(__fadd_rn(__fmul_rn(__fdiv_rn(r, s), m), m));
	code = t >= 0.0f ? (t <= (float)top ? (unsigned)t : (unsigned)top) : 0u;
#pragma unroll
	for (unsigned w = 8; w >= 1; w >>= 1) {
		if (!(bits & w))
			continue;
		shift -= w;
		{
			const unsigned part = (code >> shift) & ((1u << w) - 1);
			const unsigned bit = lane * w;

			for (unsigned k = 0; k < w; k++) {
				const uint32_t word = kvq_or_warp(bit / 32 == k ?
								   part << (bit % 32) : 0u);

				if (lane == off + k)
					mine = word;
			}
		}
		off += w;
	}
	if (lane < bits)
		words[g * bits + lane] = mine;
	if (lane == 0)
		scales[g] = hs;
}

/* The Hadamard stages over N consecutive values in one thread's x
 * (index bits below log2 N), unnormalised, in the host's order. */
template <int N>
__device__ __forceinline__ void kvq_bfly(float *x)
{
#pragma unroll
	for (int h = 1; h < N; h <<= 1)
#pragma unroll
		for (int e = 0; e < N; e++)
			if (!(e & h)) {
				const float a = x[e], b = x[e + h];

				x[e] = a + b;
				x[e + h] = a - b;
			}
}

/* kvq_put for a warp holding four consecutive values a lane (lane l:
 * values 4 l .. 4 l + 3 of 128, i.e. groups g0 + l / 8, their value
 * 4 (l % 8) + e in y[e]): the same stages in the host's order (index bits
 * 0-1 in registers, 2-4 across lanes 1, 2, 4 apart), so the host's codes;
 * the lowest lane of each word's lanes writes it. */
__device__ __forceinline__ void kvq_put4(uint32_t *words, __half *scales, size_t g0,
					 unsigned bits, const float *y)
{
	const unsigned lane = threadIdx.x & 31, li = lane & 7;
	const size_t g = g0 + lane / 8;
	const float m = (float)(1u << (bits - 1));
	const int top = (1 << bits) - 1;
	float r[4], mx, s;
	unsigned c[4], shift = bits, off = 0;
	__half hs;

#pragma unroll
	for (int e = 0; e < 4; e++)
		r[e] = y[e];
	kvq_bfly<4>(r);
#pragma unroll
	for (unsigned lm = 1; lm < 8; lm <<= 1)
#pragma unroll
		for (int e = 0; e < 4; e++)
			r[e] = kvq_stage_lane(r[e], lm);
	mx = 0.0f;
#pragma unroll
	for (int e = 0; e < 4; e++) {
		r[e] *= KVQ_NORM;
		mx = fmaxf(mx, fabsf(r[e]));
	}
#pragma unroll
	for (int o = 1; o < 8; o <<= 1)
		mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
	s = mx + 1e-10f;
	if (!(s <= 65504.0f))
		s = 65504.0f;
	hs = __float2half_rn(s);
	s = __half2float(hs);
#pragma unroll
	for (int e = 0; e < 4; e++) {
		const float t = floorf(__fadd_rn(__fmul_rn(__fdiv_rn(r[e], s), m), m));

		c[e] = t >= 0.0f ? (t <= (float)top ? (unsigned)t : (unsigned)top) : 0u;
	}
#pragma unroll
	for (unsigned w = 8; w >= 1; w >>= 1) {
		if (!(bits & w))
			continue;
		shift -= w;
		{
			const unsigned bit0 = 4 * li * w, per = 8 / w; /* lanes a word */
			uint32_t mine = 0;

#pragma unroll
			for (int e = 0; e < 4; e++)
				mine |= ((c[e] >> shift) & ((1u << w) - 1)) <<
					(bit0 % 32 + (unsigned)e * w);
			for (unsigned o = 1; o < per; o <<= 1)
				mine |= __shfl_xor_sync(0xffffffffu, mine, o);
			if (li % per == 0)
				words[g * bits + off + bit0 / 32] = mine;
		}
		off += w;
	}
	if (li == 0)
		scales[g] = hs;
}

/* A raw code c as a float (exact: 2^23 + c by its bits, less 2^23), for
 * kernels that apply the step (s / m) and the offset (0.5 - m) once per
 * group instead of per value: value = step (c + 0.5 - m). */
__device__ __forceinline__ float kvq_cf(uint32_t c)
{
	return __int_as_float((int)(0x4b000000u | c)) - 8388608.0f;
}

/* The words holding values 8 p .. 8 p + 7 of group g, loaded for a later
 * kvq_raw_codes (a pipelined reader issues the next keys' loads before
 * decoding these): bits 8: r[0], r[1] the two words; else r[0] the 4-bit
 * plane's word, r[1] the 2-bit plane's, r[2] the 1-bit plane's (shifted
 * so the part starts at bit 0; 0 where the plane is absent). */
__device__ __forceinline__ void kvq_load_raw(const uint32_t *words, size_t g,
					     unsigned bits, unsigned p, uint32_t *r)
{
	const uint32_t *w0 = words + g * bits;
	unsigned off = 0;

	r[0] = r[1] = r[2] = 0;
	if (bits == 8) {
		const uint2 u = reinterpret_cast<const uint2 *>(w0)[p];

		r[0] = u.x;
		r[1] = u.y;
		return;
	}
	if (bits & 4) {
		r[0] = w0[p];
		off = 4;
	}
	if (bits & 2) {
		r[1] = w0[off + p / 2] >> (16 * (p & 1));
		off += 2;
	}
	if (bits & 1)
		r[2] = w0[off] >> (8 * p);
}

/* Code e (0..7) of kvq_load_raw's words for bits < 8: the 4-, 2- and
 * 1-bit planes' parts, high to low (an absent plane's word is 0). */
__device__ __forceinline__ unsigned kvq_code(const uint32_t *r, unsigned bits, int e)
{
	unsigned c = (r[0] >> (4 * e)) & 15u;

	if (bits & 2)
		c = (c << 2) | ((r[1] >> (2 * e)) & 3u);
	if (bits & 1)
		c = (c << 1) | ((r[2] >> e) & 1u);
	return c;
}

/* The 8 codes of kvq_load_raw's words as floats (kvq_cf). */
__device__ __forceinline__ void kvq_raw_codes(const uint32_t *r, unsigned bits,
					      float *y)
{
	if (bits == 8) {
#pragma unroll
		for (int e = 0; e < 8; e++)
			y[e] = kvq_cf(((e < 4 ? r[0] : r[1]) >> (8 * (e & 3))) & 255u);
		return;
	}
	if (bits == 4) {
#pragma unroll
		for (int e = 0; e < 8; e++)
			y[e] = kvq_cf((r[0] >> (4 * e)) & 15u);
		return;
	}
#pragma unroll
	for (int e = 0; e < 8; e++)
		y[e] = kvq_cf(kvq_code(r, bits, e));
}

/* kvq_load_raw then kvq_raw_codes: the codes of values 8 p .. 8 p + 7 of
 * group g as floats. */
__device__ __forceinline__ void kvq_codes8(const uint32_t *words, size_t g,
					   unsigned bits, unsigned p, float *y)
{
	uint32_t r[3];

	kvq_load_raw(words, g, bits, p, r);
	kvq_raw_codes(r, bits, y);
}

/* Values 8 p .. 8 p + 7 of group g (p = 0..3) in the rotated domain:
 * (c - m + 0.5) s / m, the host's read-back before its rotation. */
__device__ __forceinline__ void kvq_get8(const uint32_t *words, const __half *scales,
					 size_t g, unsigned bits, unsigned p, float *y)
{
	const float m = (float)(1u << (bits - 1));
	const float step = __fdiv_rn(__half2float(scales[g]), m);

	kvq_codes8(words, g, bits, p, y);
#pragma unroll
	for (int e = 0; e < 8; e++)
		y[e] = __fmul_rn(y[e] - m + 0.5f, step);
}

/* A group's step s / m (m = 2^(bits - 1): exact). */
__device__ __forceinline__ float kvq_step(const __half *scales, size_t g,
					  unsigned bits)
{
	return __half2float(scales[g]) * (1.0f / (float)(1u << (bits - 1)));
}

/* R over a group whose 32 values are 8 consecutive ones (index bits 0-2)
 * in x[0..7] of each of 4 lanes whose lane bits lb0, lb1 are index bits 3
 * and 4 (consecutive lanes 4a .. 4a + 3: lb0 = 1, lb1 = 2).  Every lane of
 * the warp calls it. */
__device__ __forceinline__ void kvq_h32_8x4(float *x, unsigned lb0, unsigned lb1)
{
	kvq_bfly<8>(x);
#pragma unroll
	for (int e = 0; e < 8; e++) {
		x[e] = kvq_stage_lane(x[e], lb0);
		x[e] = kvq_stage_lane(x[e], lb1);
		x[e] *= KVQ_NORM;
	}
}

#endif
