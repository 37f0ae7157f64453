/* gpu/kvq.c — one group of a quantized KV pool on the host (gpu.h,
 * struct gpu_kv_pool): the reference the CPU backend uses and the CUDA
 * kernels (gpu/cuda/attention.cu) follow.
 *
 * A group is 32 consecutive values x of one slot's head: rotated by the
 * orthonormal Hadamard transform H32 / sqrt(32) (which spreads an outlier
 * over the group, so one max-abs scale serves it), scaled by the largest
 * magnitude s (kept as f16) and quantized to 2^bits levels at the
 * midpoints (c - m + 0.5) s / m of a uniform grid, as ExLlamaV3's cache
 * (exl3-format.md 6.2).  Codes go to bit planes (6.3): bits = 8a + 4b +
 * 2c + d stores a plane of 8-bit, 4-bit, 2-bit, 1-bit parts for each set
 * bit, the widest holding the most significant bits, so every plane's
 * 32 parts fill whole words and a reader of 8 consecutive values finds
 * its parts of a w-bit plane at byte 8 w / 8 = w of the plane times its
 * index (aligned loads on the GPU).
 */
#include "config.h"

#include "gpu/gpu.h"
#include "gpu/half.h"

#include <math.h>
#include <string.h>

/* In-place Walsh-Hadamard transform in natural (Sylvester) order over
 * 32 values, times 1 / sqrt(32): orthonormal and its own inverse. */
static void h32(float *x)
{
	const float norm = 0.17677669529663687f; /* 1 / sqrt(32) */
	int h, i, j;

	for (h = 1; h < GPU_KVQ_GROUP; h <<= 1)
		for (i = 0; i < GPU_KVQ_GROUP; i += 2 * h)
			for (j = i; j < i + h; j++) {
				const float a = x[j], b = x[j + h];

				x[j] = a + b;
				x[j + h] = a - b;
			}
	for (i = 0; i < GPU_KVQ_GROUP; i++)
		x[i] *= norm;
}

void gpu_kvq_quantize(const float *x, unsigned bits, uint32_t *words,
		      uint16_t *scale)
{
	const float m = (float)(1u << (bits - 1));
	const int top = (1 << bits) - 1;
	float r[GPU_KVQ_GROUP], mx = 0.0f, s;
	unsigned code[GPU_KVQ_GROUP], w, shift = bits, j;
	uint32_t *pw = words;

	memcpy(r, x, sizeof r);
	h32(r);
	for (j = 0; j < GPU_KVQ_GROUP; j++)
		mx = fabsf(r[j]) > mx ? fabsf(r[j]) : mx;
	s = mx + 1e-10f; /* NaN values were skipped: a NaN group reads as 0 */
	if (!(s <= 65504.0f))
		s = 65504.0f; /* f16's largest */
	*scale = gpu_f32_to_f16(s);
	s = gpu_f16_to_f32(*scale);
	for (j = 0; j < GPU_KVQ_GROUP; j++) {
		const float t = floorf(r[j] / s * m + m);
		int c = t >= 0.0f ? (t <= (float)top ? (int)t : top) : 0;

		code[j] = (unsigned)c; /* NaN compares false: code 0 */
	}
	/* planes 8, 4, 2, 1 present in bits, most significant first */
	for (w = 8; w >= 1; w >>= 1) {
		unsigned k;

		if (!(bits & w))
			continue;
		shift -= w;
		for (k = 0; k < w; k++)
			pw[k] = 0;
		for (j = 0; j < GPU_KVQ_GROUP; j++)
			pw[j * w / 32] |= ((code[j] >> shift) & ((1u << w) - 1))
					  << (j * w % 32);
		pw += w;
	}
}

void gpu_kvq_rotate(float *x)
{
	h32(x);
}

void gpu_kvq_dequantize(const uint32_t *words, uint16_t scale, unsigned bits,
			float *x)
{
	gpu_kvq_values(words, scale, bits, x);
	h32(x);
}

void gpu_kvq_values(const uint32_t *words, uint16_t scale, unsigned bits,
		    float *x)
{
	const float m = (float)(1u << (bits - 1));
	const float s = gpu_f16_to_f32(scale), step = s / m;
	unsigned code[GPU_KVQ_GROUP] = { 0 }, w, j;
	const uint32_t *pw = words;

	/* one plane: straight loops (the common widths) */
	if (bits == 4) {
		for (j = 0; j < GPU_KVQ_GROUP; j++)
			x[j] = ((float)((pw[j / 8] >> (j % 8 * 4)) & 15u) - m + 0.5f) *
			       step;
		return;
	}
	if (bits == 8) {
		for (j = 0; j < GPU_KVQ_GROUP; j++)
			x[j] = ((float)((pw[j / 4] >> (j % 4 * 8)) & 255u) - m + 0.5f) *
			       step;
		return;
	}
	for (w = 8; w >= 1; w >>= 1) {
		if (!(bits & w))
			continue;
		for (j = 0; j < GPU_KVQ_GROUP; j++)
			code[j] = (code[j] << w) |
				  ((pw[j * w / 32] >> (j * w % 32)) & ((1u << w) - 1));
		pw += w;
	}
	for (j = 0; j < GPU_KVQ_GROUP; j++)
		x[j] = ((float)code[j] - m + 0.5f) * step;
}
