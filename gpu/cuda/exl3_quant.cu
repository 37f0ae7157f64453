/* gpu/cuda/exl3_quant.cu — the EXL3 quantizer's trellis search on the
 * device (gpu_exl3_encode_tiles with a CUDA handle; the host version and
 * the maths are gpu/exl3_quant.c's).
 *
 * One block of 1024 threads searches one tile at a time (grid-stride over
 * the tiles): the two cost rows of E = 2^(16-K) edges live in shared
 * memory (ping-pong), every thread takes edges tid, tid + 1024, ... and
 * tries their 2^K candidates in ascending hi, keeping the first minimum of
 * fma(df, df, cost[p]) with df = cb(s) - x_e, the codebook computed in
 * registers (xl_cb2, bit-exact to the host's table; exactly the host's
 * arithmetic, so the same costs, the same choices and the same states: the
 * suite exl3_quant holds the two to bit equality); the chosen hi goes to a
 * per-block back-pointer array in global memory ([256][E] bytes), which
 * thread 0 walks back after each pass.  Pass 1 starts at element 128 with
 * free costs, the lowest-index cheapest end edge is traced back to the edge
 * b before element 0; pass 2 starts at element 0 with only b allowed and
 * ends at b.  K = 1 (two 128 KB rows do not fit shared memory) stays on
 * the host.
 */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "gpu/cuda/cuda_exl3.h"
#include "gpu/cuda/exl3_dev.cuh"
#include "gpu/cuda/pdl.cuh"

#define XQ_THREADS 1024

template <int K, int CB>
__global__ void __launch_bounds__(XQ_THREADS)
xq_viterbi_kernel(const float *__restrict__ x, uint16_t *__restrict__ states,
		  uint8_t *__restrict__ back_all, int n_tiles)
{
	tern_pdl_wait();
	constexpr int E = 1 << (16 - K), J = E >> K, NH = 1 << K;
	extern __shared__ float rows[]; /* [2][E] */
	__shared__ float xs[256];
	__shared__ uint16_t st[256];
	__shared__ float red_v[XQ_THREADS / 32];
	__shared__ int red_i[XQ_THREADS / 32];
	__shared__ int s_end;
	const int tid = threadIdx.x;
	uint8_t *back = back_all + (size_t)blockIdx.x * 256 * E;

	for (int tile = blockIdx.x; tile < n_tiles; tile += gridDim.x) {
		if (tid < 256)
			xs[tid] = x[(size_t)tile * 256 + tid];
		for (int pass = 0; pass < 2; pass++) {
			const int start = pass ? 0 : 128;
			float *cp = rows, *cn = rows + E;
			int b;

			__syncthreads(); /* xs, s_end; the rows are free */
			b = pass ? s_end : -1; /* after the barrier: thread 0 wrote it */
			for (int o = tid; o < E; o += XQ_THREADS)
				cp[o] = (b < 0 || o == b) ? 0.0f : INFINITY;
			__syncthreads();
			for (int i = 0; i < 256; i++) {
				const int e = (start + i) & 255;
				const float xe = xs[e];
				uint8_t *bk = back + (size_t)e * E;

				for (int o = tid; o < E; o += XQ_THREADS) {
					const float *cph = cp + (o >> K);
					float best = INFINITY;
					int arg = 0;

					/* the codebook computed (xl_cb2, bit-exact to
					 * the host's table): no 256 KB table streamed
					 * from L2 every step */
#pragma unroll 4
					for (int hi = 0; hi < NH; hi += 2) {
						const uint32_t s0 = ((uint32_t)hi << (16 - K)) | (uint32_t)o;
						const uint32_t s1 = s0 + (1u << (16 - K));
						const uint32_t h2 = xl_cb2<CB>(s0, s1);
						const float2 f = __half22float2(
							*reinterpret_cast<const __half2 *>(&h2));
						const float d0 = __fsub_rn(f.x, xe);
						const float d1 = __fsub_rn(f.y, xe);
						const float v0 = __fmaf_rn(d0, d0, cph[hi * J]);
						const float v1 = __fmaf_rn(d1, d1, cph[(hi + 1) * J]);

						if (v0 < best) {
							best = v0;
							arg = hi;
						}
						if (v1 < best) {
							best = v1;
							arg = hi + 1;
						}
					}
					cn[o] = best;
					bk[o] = (uint8_t)arg;
				}
				__syncthreads();
				{
					float *t = cp;

					cp = cn;
					cn = t;
				}
			}
			/* the end edge: pass 1 the first cheapest, pass 2 b */
			if (pass == 0) {
				float bv = INFINITY;
				int bi = 0x7fffffff;

				for (int o = tid; o < E; o += XQ_THREADS)
					if (cp[o] < bv) {
						bv = cp[o];
						bi = o;
					}
				for (int m = 16; m > 0; m >>= 1) {
					const float ov = __shfl_xor_sync(0xffffffffu, bv, m);
					const int oi = __shfl_xor_sync(0xffffffffu, bi, m);

					if (ov < bv || (ov == bv && oi < bi)) {
						bv = ov;
						bi = oi;
					}
				}
				if ((tid & 31) == 0) {
					red_v[tid >> 5] = bv;
					red_i[tid >> 5] = bi;
				}
				__syncthreads();
				if (tid == 0) {
					bv = red_v[0];
					bi = red_i[0];
					for (int w = 1; w < XQ_THREADS / 32; w++)
						if (red_v[w] < bv || (red_v[w] == bv && red_i[w] < bi)) {
							bv = red_v[w];
							bi = red_i[w];
						}
					/* every end infinite (inputs past f32's
					 * squares): edge 0, as the host takes */
					s_end = bi < E ? bi : 0;
				}
			}
			__syncthreads(); /* back pointers and s_end visible */
			if (tid == 0) {
				int o = s_end;

				for (int i = 255; i >= 0; i--) {
					const int e = (start + i) & 255;
					const int hi = back[(size_t)e * E + o];
					const uint32_t s = ((uint32_t)hi << (16 - K)) | (uint32_t)o;

					st[e] = (uint16_t)s;
					o = (int)(s >> K);
				}
				/* pass 1: the edge before element 0 closes the ring */
				if (pass == 0)
					s_end = st[0] >> K;
			}
		}
		__syncthreads();
		if (tid < 256)
			states[(size_t)tile * 256 + tid] = st[tid];
	}
}

template <int K, int CB>
static cudaError_t xq_launch(cudaStream_t s, const float *x, uint16_t *states,
			     uint8_t *back, int grid, int n_tiles)
{
	const size_t smem = 2 * ((size_t)1 << (16 - K)) * sizeof(float);
	cudaError_t e = cudaFuncSetAttribute(xq_viterbi_kernel<K, CB>,
					     cudaFuncAttributeMaxDynamicSharedMemorySize,
					     (int)smem);

	if (e != cudaSuccess)
		return e;
	return tern_launch(xq_viterbi_kernel<K, CB>, dim3((unsigned)grid),
			   dim3(XQ_THREADS), smem, s, x, states, back, n_tiles);
}

template <int K>
static cudaError_t xq_launch_cb(int cb, cudaStream_t s, const float *x,
				uint16_t *states, uint8_t *back, int grid, int n_tiles)
{
	switch (cb) {
	case 0: return xq_launch<K, 0>(s, x, states, back, grid, n_tiles);
	case 1: return xq_launch<K, 1>(s, x, states, back, grid, n_tiles);
	default: return xq_launch<K, 2>(s, x, states, back, grid, n_tiles);
	}
}

extern "C" int gpu_cuda_exl3_encode_run(void *stream, const float *x_host,
					size_t n_tiles, int bits, int cb, int n_sm,
					uint16_t *states_host)
{
	cudaStream_t s = (cudaStream_t)stream;
	const size_t E = (size_t)1 << (16 - bits);
	float *x = NULL;
	uint16_t *st = NULL;
	uint8_t *back = NULL;
	size_t grid = (size_t)(n_sm > 0 ? n_sm : 1) * 2;
	cudaError_t e;

	if (bits < 2 || bits > 8 || n_tiles == 0 || n_tiles > (1u << 30))
		return (int)cudaErrorInvalidValue;
	if (grid > n_tiles)
		grid = n_tiles;
	/* back pointers: at most 1 GiB */
	while (grid > 1 && grid * 256 * E > ((size_t)1 << 30))
		grid /= 2;
	e = cudaMallocAsync((void **)&x, n_tiles * 256 * sizeof(float), s);
	if (e == cudaSuccess)
		e = cudaMallocAsync((void **)&st, n_tiles * 256 * sizeof(uint16_t), s);
	if (e == cudaSuccess)
		e = cudaMallocAsync((void **)&back, grid * 256 * E, s);
	if (e == cudaSuccess)
		e = cudaMemcpyAsync(x, x_host, n_tiles * 256 * sizeof(float),
				    cudaMemcpyHostToDevice, s);
	if (e == cudaSuccess) {
		const int g = (int)grid, nt = (int)n_tiles;

		switch (bits) {
		case 2: e = xq_launch_cb<2>(cb, s, x, st, back, g, nt); break;
		case 3: e = xq_launch_cb<3>(cb, s, x, st, back, g, nt); break;
		case 4: e = xq_launch_cb<4>(cb, s, x, st, back, g, nt); break;
		case 5: e = xq_launch_cb<5>(cb, s, x, st, back, g, nt); break;
		case 6: e = xq_launch_cb<6>(cb, s, x, st, back, g, nt); break;
		case 7: e = xq_launch_cb<7>(cb, s, x, st, back, g, nt); break;
		default: e = xq_launch_cb<8>(cb, s, x, st, back, g, nt); break;
		}
	}
	if (e == cudaSuccess)
		e = cudaMemcpyAsync(states_host, st, n_tiles * 256 * sizeof(uint16_t),
				    cudaMemcpyDeviceToHost, s);
	if (x)
		cudaFreeAsync(x, s);
	if (st)
		cudaFreeAsync(st, s);
	if (back)
		cudaFreeAsync(back, s);
	if (e == cudaSuccess)
		e = cudaStreamSynchronize(s);
	return (int)e;
}
