/* gpu/half.h — IEEE half <-> f32 conversions on the host, shared by the
 * gpu layer (random fill in gpu.c, the CPU backend, the EXL3 upload of the
 * CUDA backend).  Internal to gpu/. */
#ifndef TERN_GPU_HALF_H
#define TERN_GPU_HALF_H

#include <stdint.h>
#include <string.h>

/* IEEE half -> f32, exact (subnormals, inf, NaN). */
static inline float gpu_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t man = h & 0x3ff;
	uint32_t u;
	float f;

	if (exp == 0x1f) {
		u = sign | 0x7f800000u | (man << 13);
	} else if (exp != 0) {
		u = sign | ((exp + 112) << 23) | (man << 13);
	} else if (man == 0) {
		u = sign;
	} else {
		/* subnormal: value = man * 2^-24 */
		f = (float)man * (1.0f / 16777216.0f);
		memcpy(&u, &f, sizeof u);
		u |= sign;
	}
	memcpy(&f, &u, sizeof f);
	return f;
}

/* f32 -> IEEE half, round to nearest even; NaN stays NaN, overflow is
 * inf. */
static inline uint16_t gpu_f32_to_f16(float f)
{
	uint32_t u, sign, mag;

	memcpy(&u, &f, sizeof u);
	sign = (u >> 16) & 0x8000;
	mag = u & 0x7fffffff;
	if (mag > 0x7f800000u) /* NaN */
		return (uint16_t)(sign | 0x7e00);
	if (mag >= 0x477ff000u) /* rounds to >= 65520: inf */
		return (uint16_t)(sign | 0x7c00);
	if (mag < 0x38800000u) { /* subnormal or zero in half */
		float a;
		uint32_t r;

		memcpy(&a, &mag, sizeof a);
		/* a * 2^24 rounded to nearest even integer */
		a = a * 16777216.0f;
		r = (uint32_t)a;
		if (a - (float)r > 0.5f || (a - (float)r == 0.5f && (r & 1)))
			r++;
		return (uint16_t)(sign | r);
	}
	/* normal: rebias exponent, round mantissa from 23 to 10 bits */
	mag += 0xc8000000u; /* exponent -= 112 */
	mag += 0xfffu + ((mag >> 13) & 1);
	return (uint16_t)(sign | (mag >> 13));
}

#endif
