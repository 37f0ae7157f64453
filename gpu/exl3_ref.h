/* gpu/exl3_ref.h — internals of EXL3 support in the compute layer (gpu/
 * only, and tests/gpu): the scalar reference pieces of the format and the
 * CPU backend's vtable entries.  Implemented in gpu/cpu/exl3.c; the public
 * op is declared in gpu/gpu.h ("EXL3" block), validated in gpu/exl3.c.
 *
 * Everything here follows docs/exl3-format.md (sections 1.7, 1.8, 2, 3):
 *   - a 16x16 tile of W_hat is a cyclic bitstream of 256*K bits stored as
 *     16*K little-endian int16 (pairs read as uint32, MSB-first);
 *   - element e's 16-bit trellis state is the window of stream bits
 *     [(e+1)K - 16, (e+1)K) (mod 256K), mapped to an fp16 value by one of
 *     three codebooks, and placed at (r, c) of the tile by the tensor-core
 *     fragment order;
 *   - W = diag(suh) . H128 . W_hat . H128 . diag(svh) with H128 the
 *     normalised Sylvester Hadamard matrix, blockwise.
 * The functions are pure (no state but the codebook tables, built once and
 * immutable afterwards) and thread-safe.
 */
#ifndef TERN_GPU_EXL3_REF_H
#define TERN_GPU_EXL3_REF_H

#include <stddef.h>
#include <stdint.h>

#include "gpu/gpu_impl.h"

/* Stream bits per tile element range and tile geometry. */
#define GPU_EXL3_TILE 16          /* tile side */
#define GPU_EXL3_HAD 128          /* Hadamard block */

/* fp16 bits of codebook CB (enum gpu_exl3_cb) for a 16-bit trellis STATE,
 * computed straight from the formulas of exl3-format.md §2 (integer
 * hashing, then one round-to-nearest-even fp16 add or fma). */
uint16_t gpu_exl3_codebook(uint32_t state, int cb);

/* The whole codebook CB as f32: table[s] = f16_to_f32(gpu_exl3_codebook(s,
 * cb)) for s in [0, 65536).  Built on first use (pthread_once), never
 * freed, read-only afterwards.  NULL for a bad cb. */
const float *gpu_exl3_lut(int cb);

/* 16-bit state of element E (0..255) of one tile record T16 (16*BITS
 * uint16, any alignment is fine: read with memcpy), BITS in 1..8.
 * The scalar formula of exl3-format.md §1.8, tail-biting included. */
uint32_t gpu_exl3_state(const void *t16, int bits, int e);

/* Decode one tile record into dst[r * ld + c], r, c in [0, 16), row r =
 * input channel (k direction), column c = output channel (n), with codebook
 * table LUT (gpu_exl3_lut).  Values are exact fp16 values held in f32. */
void gpu_exl3_tile_decode(const void *t16, int bits, const float *lut,
			  float *dst, size_t ld);

/* The same decode as gpu_exl3_tile_decode with ld = 128 and codebook CB
 * (enum gpu_exl3_cb), by the CPU linear's faster route (per-K index
 * tables; MUL1 through its byte-sum table).  Exposed for the test that
 * holds it to the reference bit for bit. */
void gpu_exl3_tile_decode_fast(const void *t16, int bits, int cb, float *dst);
/* For the tests: turn the AVX2 route of that decode on (where the CPU has
 * it; the default) or off; returns whether the CPU has it. */
int gpu_exl3_set_simd(int on);

/* In-place normalised Walsh-Hadamard transform of 128 floats, natural
 * (Sylvester) order: v <- H128 v / sqrt(128).  H128 is symmetric and
 * orthonormal after scaling, so the transform is its own inverse. */
void gpu_exl3_fwht128(float *v);

/* ---- CPU backend vtable entries (gpu/cpu/exl3.c) ---------------------- */

int cpu_exl3_upload(struct gpu *g, struct gpu_exl3_weight *w,
		    const struct gpu_exl3_desc *desc, struct diag *d);
void cpu_exl3_release(struct gpu *g, struct gpu_exl3_weight *w);
int cpu_exl3_matmul(struct gpu *g, struct gpu_buf *out,
		    const struct gpu_buf *x, const struct gpu_exl3_weight *w,
		    size_t n_rows, size_t k_in, size_t n_out, struct diag *d);
/* The same on host pointers (moe.c runs EXL3 experts on its scratch):
 * out f32 [n_rows, n_out], x f32 [n_rows, k_in], validated as
 * gpu_exl3_matmul validates them; out must not overlap x. */
int cpu_exl3_matmul_host(struct gpu *g, float *out, const float *x,
			 const struct gpu_exl3_weight *w, size_t n_rows,
			 size_t k_in, size_t n_out, struct diag *d);

#endif
