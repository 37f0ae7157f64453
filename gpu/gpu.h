/* gpu/gpu.h — the one public header of the compute layer (prefix gpu_).
 *
 * Device memory and numeric ops; knows nothing about models.  Implemented
 * twice behind a vtable (gpu/gpu_impl.h): gpu/cpu/ (plain multithreaded C, the
 * oracle and the fallback) and gpu/cuda/ (kernels + cuBLAS).  The backend is
 * chosen at run time (gpu/registry.c holds the only #ifdef HAVE_CUDA).
 *
 * Errors: 0 or a negative GPU_E_* code, context in an optional struct diag.
 * After a device error a handle is poisoned: every later call returns
 * GPU_E_DEVICE.
 */
#ifndef TERN_GPU_GPU_H
#define TERN_GPU_GPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"

#ifdef __cplusplus
extern "C" {
#endif

enum gpu_err {
	GPU_OK = 0,
	GPU_E_NOMEM = -1,      /* host or device allocation failed */
	GPU_E_INVALID = -2,    /* bad shape, dtype or argument */
	GPU_E_UNSUPPORTED = -3, /* op/dtype not implemented by this backend */
	GPU_E_DEVICE = -4,     /* driver/runtime/library error (see diag) */
	GPU_E_NODEVICE = -5,   /* requested backend not available here */
};

enum gpu_kind {
	GPU_KIND_AUTO = 0, /* CUDA when compiled in and a device exists, else CPU */
	GPU_KIND_CPU,
	GPU_KIND_CUDA,
};

/* Static English text for a GPU_E_* code; never NULL. */
const char *gpu_strerror(int err);

/* Name of a kind ("auto", "cpu", "cuda"); parse with gpu_kind_parse, which
 * returns 0 or GPU_E_INVALID. */
const char *gpu_kind_name(enum gpu_kind kind);
int gpu_kind_parse(const char *s, enum gpu_kind *out);

/* 1 when this build includes the backend (not whether a device exists). */
int gpu_kind_compiled(enum gpu_kind kind);


/* ==== Backend handle ==================================================== */

/* Element types of device buffers.  Activations are F32; weights may be
 * F32, F16 or BF16 (matmul and row lookups convert on the fly); I32 holds
 * token ids, positions and page tables. */
enum gpu_dtype {
	GPU_DTYPE_F32 = 0,
	GPU_DTYPE_F16,
	GPU_DTYPE_BF16,
	GPU_DTYPE_I32,
	GPU_DTYPE_COUNT
};

/* Bytes per element (0 for an out-of-range value) and name ("f32", ...). */
size_t gpu_dtype_size(enum gpu_dtype t);
const char *gpu_dtype_name(enum gpu_dtype t);

struct gpu_params {
	int n_threads; /* CPU worker threads incl. the caller; <= 0: all cores */
	int device;    /* CUDA device ordinal (ignored by the CPU backend) */
};

/* Defaults: n_threads 0 (all cores), device 0. */
struct gpu_params gpu_default_params(void);

struct gpu; /* opaque backend handle */

/* Open a backend.  GPU_KIND_AUTO picks CUDA when compiled in and a device
 * answers, else the CPU.  params may be NULL (defaults).  On success *out
 * owns the backend (threads, device context); release with gpu_close after
 * every buffer made from it was freed.
 * Errors: GPU_E_NODEVICE (kind not compiled in / no device), GPU_E_NOMEM,
 * GPU_E_DEVICE.  Thread-safety: one handle is used by one thread at a time
 * (ops on a handle are serialised by the caller); distinct handles are
 * independent. */
int gpu_open(enum gpu_kind kind, const struct gpu_params *params,
	     struct gpu **out, struct diag *d);
/* Join threads and free the handle.  NULL is a no-op. */
void gpu_close(struct gpu *g);

/* The backend actually opened (never GPU_KIND_AUTO). */
enum gpu_kind gpu_get_kind(const struct gpu *g);
/* Human-readable description ("cpu, 8 threads"); owned by g. */
const char *gpu_describe(const struct gpu *g);
/* Worker threads used by the CPU backend (1 for other backends). */
int gpu_n_threads(const struct gpu *g);

/* Wait until every op issued so far has finished (a no-op on the CPU, where
 * ops are synchronous).  Errors: GPU_E_DEVICE; GPU_E_INVALID for an
 * expert id out of range met by a device-dispatched gpu_moe_ffn since the
 * last gpu_sync (reported once). */
int gpu_sync(struct gpu *g, struct diag *d);

/* Memory of the backend: for CUDA the device's free and total bytes
 * (cudaMemGetInfo: what every process on the device leaves free); for the
 * CPU the host's MemAvailable and MemTotal from /proc/meminfo (0 and 0
 * where that file is absent).  Either pointer may be NULL.  Thread-safety:
 * as the other calls on g.  Errors: GPU_E_DEVICE. */
int gpu_mem_info(struct gpu *g, uint64_t *free_bytes, uint64_t *total_bytes,
		 struct diag *d);

/* The largest ops a caller will run on g, for gpu_reserve. */
struct gpu_reserve_req {
	size_t n_rows;           /* most rows of one matmul / attention call */
	size_t k_max;            /* widest matmul input (columns of x) */
	size_t n_head, n_head_kv, head_dim; /* attention (0: no attention) */
	size_t span;             /* most positions one row attends (the page
				  * table's pages x page size, or the window) */
	enum gpu_dtype kv_dtype; /* the KV pools' elements (f32 or f16) */
	unsigned kv_k_bits;      /* quantized pools: their key bits (2..8;
				  * kv_dtype then ignored); 0: plain */
	size_t moe_rows_k;       /* MoE: most rows x top_k of one call */
	size_t moe_experts;      /* MoE: experts (0: no MoE) */
};

/* Size the backend's scratch areas now for every op within R, so that
 * those ops allocate nothing later (the CUDA backend's activation-to-half
 * area, split-K attention partials and MoE host lists; a CUDA graph may
 * then be recorded at once).  Areas only grow; CPU: nothing to do.
 * *bytes_out (may be NULL) receives the device bytes the areas hold
 * afterwards.  Errors: GPU_E_INVALID (null R, heads that do not divide),
 * GPU_E_NOMEM (naming the area and its size; that area is then empty
 * and grows again on use), GPU_E_UNSUPPORTED (while recording a graph). */
int gpu_reserve(struct gpu *g, const struct gpu_reserve_req *r,
		uint64_t *bytes_out, struct diag *d);

/* ==== Captured op sequences (CUDA graphs) =============================== */
/*
 * A backend that queues ops (CUDA) can record a sequence of ops once and
 * replay it with one launch.  Between gpu_graph_begin and gpu_graph_end
 * ops are recorded, not run; the replay runs them on the same buffers
 * (same device addresses) with whatever those buffers hold at replay time,
 * so per-step inputs go into fixed buffers with gpu_buf_write before
 * gpu_graph_launch.  While recording, only ops may be issued: no
 * gpu_buf_write / gpu_buf_read / gpu_sync / buffer allocation, and no op
 * that synchronises internally (gpu_moe_ffn on CUDA); the sizes given to
 * the ops are frozen into the graph.
 *
 * A graph also freezes the backend's internal scratch areas: when an op
 * later grows one (a larger batch than any recorded), every graph made
 * before turns invalid (gpu_graph_valid false) and must be freed and
 * recorded again.  An op that would have to grow scratch while recording
 * fails with GPU_E_UNSUPPORTED (run the sequence once unrecorded first).
 *
 * The CPU backend has no graphs: gpu_graph_begin returns
 * GPU_E_UNSUPPORTED and nothing changes.
 */
struct gpu_graph; /* opaque; owned by the caller, freed before gpu_close */

/* Start recording the ops issued on g from this thread.  Errors:
 * GPU_E_UNSUPPORTED (backend without graphs, or already recording),
 * GPU_E_DEVICE. */
int gpu_graph_begin(struct gpu *g, struct diag *d);
/* Stop recording and make the graph.  Always ends the recording begun by
 * gpu_graph_begin (also after an op failed in between: then the recording
 * is dropped and the error returned).  On success *out owns the graph.
 * Errors: GPU_E_UNSUPPORTED (recording invalidated, e.g. by a forbidden
 * call), GPU_E_NOMEM, GPU_E_DEVICE. */
int gpu_graph_end(struct gpu *g, struct gpu_graph **out, struct diag *d);
/* Queue one replay of gr (asynchronous like any op).  Errors:
 * GPU_E_INVALID (graph no longer valid), GPU_E_DEVICE. */
int gpu_graph_launch(struct gpu_graph *gr, struct diag *d);
/* false once the backend's scratch moved since gr was recorded. */
bool gpu_graph_valid(const struct gpu_graph *gr);
/* NULL is a no-op. */
void gpu_graph_free(struct gpu_graph *gr);

/* ==== Buffers =========================================================== */

/* A device buffer of n_elems elements of one dtype.  Opaque; its memory is
 * on the backend (host memory for the CPU, device memory for CUDA). */
struct gpu_buf;

/* Allocate an uninitialised buffer (n_elems may be 0).  Owned by the caller;
 * release with gpu_buf_free before gpu_close.  Errors: GPU_E_NOMEM,
 * GPU_E_INVALID (bad dtype, size overflow). */
int gpu_buf_new(struct gpu *g, enum gpu_dtype dtype, size_t n_elems,
		struct gpu_buf **out, struct diag *d);
/* NULL is a no-op. */
void gpu_buf_free(struct gpu_buf *b);

enum gpu_dtype gpu_buf_dtype(const struct gpu_buf *b);
size_t gpu_buf_n_elems(const struct gpu_buf *b);
size_t gpu_buf_bytes(const struct gpu_buf *b);

/* Copy n_elems elements between host memory (in the buffer's dtype, host
 * byte order) and elements [offset, offset + n_elems) of the buffer.
 * Synchronous.  Errors: GPU_E_INVALID (range outside the buffer),
 * GPU_E_DEVICE. */
int gpu_buf_write(struct gpu_buf *b, size_t offset, const void *src,
		  size_t n_elems, struct diag *d);
int gpu_buf_read(const struct gpu_buf *b, size_t offset, void *dst,
		 size_t n_elems, struct diag *d);
/* Set every element of b to zero bits. */
int gpu_buf_zero(struct gpu_buf *b, struct diag *d);

/* Fill a float buffer (F32, F16 or BF16) with deterministic pseudo-random
 * values, uniform in [-scale, scale] (synthetic benchmark weights):
 *   z    = splitmix64(seed + (i + 1) * 0x9E3779B97F4A7C15)
 *   b[i] = scale * ((z >> 40) * 2^-23 - 1)     rounded to b's dtype
 * (nearest even).  Element i depends only on (seed, i), so every backend
 * and chunking gives the same bits.  A backend without its own kernel is
 * filled from the host in chunks.  Errors: GPU_E_INVALID (I32 buffer,
 * scale not finite), GPU_E_NOMEM, GPU_E_DEVICE. */
int gpu_buf_fill_random(struct gpu *g, struct gpu_buf *b, uint64_t seed,
			float scale, struct diag *d);

/* ==== Ops =============================================================== */
/*
 * Conventions for every op below:
 *   - shapes are row-major, written [outer, ..., inner]; counts are explicit
 *     arguments and gpu.c checks once that every buffer has the dtype and at
 *     least the elements the shape needs (offsets included) before the
 *     backend runs;
 *   - activations (x, out, q, k, v, logits...) are F32 buffers;
 *   - "W any float" means F32, F16 or BF16; the op converts to f32 on the
 *     fly, accumulating in f32;
 *   - an output buffer may not alias an input unless the op says so;
 *   - ops are issued in order on the handle; results are visible to the
 *     next op and to gpu_buf_read.
 * Errors (all ops): GPU_E_INVALID (shape/dtype/size mismatch, named in the
 * diag), GPU_E_UNSUPPORTED (dtype combination not implemented by this
 * backend), GPU_E_DEVICE.
 */

/* Largest head_dim attention and RoPE accept. */
#define GPU_MAX_HEAD_DIM 512
/* Largest KV page (tokens) attention accepts. */
#define GPU_MAX_PAGE_SIZE 1024

/* Row lookup (embedding, and gathering activation rows):
 *   out[i, :] = table[ids[i], :]      out f32 [n, dim], table any float
 *   [n_rows_table, dim], ids i32 [n] (from element ids_offset).
 * An id outside [0, n_rows_table) yields a zero row (callers validate ids;
 * this keeps a bad id from reading outside the table). */
int gpu_get_rows(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *table,
		 size_t n_rows_table, const struct gpu_buf *ids, size_t ids_offset,
		 size_t n, size_t dim, struct diag *d);

/* Linear layer:
 *   out[i, r] = sum_j x[i, j] * W[r, j] (+ bias[r])
 *   out f32 [n, rows], x f32 [n, k], W any float [rows, k], bias any float
 *   [rows] or NULL. */
int gpu_matmul(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *x,
	       const struct gpu_buf *w, const struct gpu_buf *bias, size_t n,
	       size_t k, size_t rows, struct diag *d);

/* Most weights one gpu_matmul_multi takes. */
#define GPU_MATMUL_MULTI_MAX 4

/* One output of gpu_matmul_multi: out f32 [n, rows] = x W^T (+ bias), W
 * [rows, k], bias any float [rows] or NULL. */
struct gpu_matmul_part {
	struct gpu_buf *out;
	const struct gpu_buf *w;
	const struct gpu_buf *bias;
	size_t rows;
};

/* Several linear layers on one input (q/k/v, gate/up): for each part j,
 *   parts[j].out[i, r] = sum_c x[i, c] * W_j[r, c] (+ bias_j[r])
 * exactly as gpu_matmul(parts[j].out, x, W_j, bias_j, n, k, rows_j) (the
 * CPU gives the same bits; CUDA covers every part's rows with one GEMV
 * launch for few rows and converts x to f16/bf16 once for cuBLAS).
 * 1 <= n_parts <= GPU_MATMUL_MULTI_MAX; every W_j has the same dtype (any
 * float) and k; rows_j may differ (a part with rows 0 does nothing).  The
 * outputs are distinct buffers and none is x.  The parts array is read
 * during the call only. */
int gpu_matmul_multi(struct gpu *g, const struct gpu_buf *x, size_t n,
		     size_t k, const struct gpu_matmul_part *parts,
		     size_t n_parts, struct diag *d);

/* The SwiGLU feed-forward's first half on dense weights:
 *   out[i, r] = silu(x W_gate^T)[i, r] * (x W_up^T)[i, r]
 * exactly as gpu_matmul_multi of the two (no bias) followed by gpu_swiglu
 * (same bits; CUDA runs both products and the SwiGLU in one GEMV launch
 * for one row).  out, up f32 [n, rows] (up is scratch: it may hold
 * x W_up^T afterwards), W_gate and W_up [rows, k] of one dtype; out, up
 * and x distinct.  Errors as gpu_matmul_multi. */
int gpu_matmul_swiglu(struct gpu *g, struct gpu_buf *out, struct gpu_buf *up,
		      const struct gpu_buf *x, const struct gpu_buf *w_gate,
		      const struct gpu_buf *w_up, size_t n, size_t k,
		      size_t rows, struct diag *d);

/* The whole SwiGLU feed-forward on dense weights:
 *   out[i, c] = sum_r (silu(x W_gate^T) * (x W_up^T))[i, r] * W_down[c, r]
 * computed as gpu_matmul_swiglu(gate, up, x, W_gate, W_up, n, k, n_ff)
 * followed by gpu_matmul(out, gate, W_down, NULL, n, n_ff, k) — the same
 * bits on the CPU and on CUDA for f32 and f16 weights, and for bf16
 * weights up to the rows its GEMV takes (n <= 8).  CUDA with bf16 weights
 * and more rows (prefill, decode batches past 8) keeps the
 * intermediates in bf16 (the gate and up
 * products rounded to bf16 before the SwiGLU, whose result the down GEMM
 * reads in bf16 as gpu_matmul would have converted it; within the 1e-2
 * bound of half-weight paths) and so never writes them in f32:
 * TERN_FFN_HALF=0 runs the composition instead.
 * out, x f32 [n, k]; gate, up f32 [n, n_ff] scratch (their contents
 * afterwards are unspecified); W_gate, W_up [n_ff, k] and W_down [k, n_ff]
 * of one float dtype, n_ff > 0; out, gate, up and x distinct.  Errors:
 * GPU_E_INVALID (shapes, dtypes, aliasing), GPU_E_NOMEM (scratch),
 * GPU_E_UNSUPPORTED (sizes past cuBLAS's int; scratch that would grow
 * while a graph is recorded), GPU_E_DEVICE. */
int gpu_swiglu_ffn(struct gpu *g, struct gpu_buf *out, struct gpu_buf *gate,
		   struct gpu_buf *up, const struct gpu_buf *x,
		   const struct gpu_buf *w_gate, const struct gpu_buf *w_up,
		   const struct gpu_buf *w_down, size_t n, size_t k, size_t n_ff,
		   struct diag *d);

/* RMSNorm over the last dim (HF LlamaRMSNorm, computed in f32):
 *   out[i, :] = x[i, :] / sqrt(mean_j(x[i, j]^2) + eps) * w[:]
 *   out, x f32 [n, dim] (out may equal x), w any float [dim].
 * Per-head q/k norm is the same op with n = tokens * heads, dim = head_dim. */
int gpu_rmsnorm(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *x,
		const struct gpu_buf *w, size_t n, size_t dim, float eps,
		struct diag *d);

/* Residual add fused with the RMSNorm that follows it:
 *   x[i, :] += o[i, :]
 *   xn[i, :] = x[i, :] / sqrt(mean_j(x[i, j]^2) + eps) * w[:]   (new x)
 * x, xn, o f32 [n, dim] (three distinct buffers), w any float [dim].
 * Equals gpu_add(x, x, o, n * dim) then gpu_rmsnorm(xn, x, w, n, dim,
 * eps) (on the CPU bit for bit); one pass over the rows on CUDA. */
int gpu_add_rmsnorm(struct gpu *g, struct gpu_buf *x, struct gpu_buf *xn,
		    const struct gpu_buf *o, const struct gpu_buf *w, size_t n,
		    size_t dim, float eps, struct diag *d);

/* Rotary position embedding, rotate-half convention (HF): for each row i,
 * head h, and 0 <= f < n_rot/2, with half = n_rot/2,
 *   a = x[i,h,f], b = x[i,h,f+half],
 *   theta = (float)pos_c(f)[i] * inv_freq[f]   (product in f32, as HF)
 *   x[i,h,f]      = (a*cos(theta) - b*sin(theta)) * attn_factor
 *   x[i,h,f+half] = (b*cos(theta) + a*sin(theta)) * attn_factor
 * Dims n_rot..head_dim-1 are left alone (partial rotary).  x f32
 * [n, n_head, head_dim] is rotated in place; inv_freq f32 [n_rot/2] carries
 * any frequency scaling (llama3, yarn...); attn_factor is 1 except yarn.
 * Positions: pos i32.  Plain RoPE (mrope_section NULL): pos [n], pos_c = pos.
 * MRoPE (Qwen2-VL): pos [3][n] (temporal, height, width rows, each n long)
 * and frequency f uses component c where section boundaries are the running
 * sums of mrope_section[0..2] (which must add up to n_rot/2); for text all
 * three rows are the token position and this equals plain RoPE. */
struct gpu_rope {
	size_t n_rot;             /* rotated dims per head (even, <= head_dim) */
	float attn_factor;        /* multiplies cos and sin (1.0f normally) */
	const int *mrope_section; /* int[3] or NULL */
	/* gpu_rope_kv_store only (NULL for gpu_rope): both or neither; a
	 * per-head RMSNorm of q and of k before the rotation (Qwen3's q/k
	 * norm), exactly gpu_rmsnorm(q, q, q_norm, n_rows * n_head,
	 * head_dim, norm_eps) and the same for k; any float [head_dim] */
	const struct gpu_buf *q_norm, *k_norm;
	float norm_eps;
};
int gpu_rope(struct gpu *g, struct gpu_buf *x, size_t n, size_t n_head,
	     size_t head_dim, const struct gpu_buf *pos,
	     const struct gpu_buf *inv_freq, const struct gpu_rope *rp,
	     struct diag *d);

/* A batch of rows (tokens) of one or more sequences over a paged KV cache.
 * Sequence s owns page_table[s * max_pages + p] = the pool page holding its
 * positions [p * page_size, (p + 1) * page_size).  Row i belongs to sequence
 * row_seq[i] at position row_pos[i].  The buffers live on the device; the
 * caller fills them with gpu_buf_write (never with an op: CUDA's decode
 * attention reads them before waiting for the kernel before it).  Page tables need not be contiguous
 * or ordered (pages may be shared between sequences, read-only). */
struct gpu_kv_batch {
	size_t n_rows;
	const struct gpu_buf *row_seq;    /* i32 [n_rows] */
	const struct gpu_buf *row_pos;    /* i32 [n_rows] */
	const struct gpu_buf *page_table; /* i32 [n_seq, max_pages] */
	size_t n_seq;
	size_t max_pages;
	/* true: the caller promises that every row belongs to the same
	 * sequence (all row_seq equal: a prefill chunk), which lets gpu_attention
	 * on CUDA skip its per-tile check for rows of several sequences.  The
	 * CPU backend checks the promise (GPU_E_INVALID when broken); on CUDA a
	 * broken promise leaves the rows of 64-row tiles that mix sequences
	 * undefined.  false (what a zeroed struct says): no promise.  A value
	 * recorded into a graph holds for every replay. */
	bool single_seq;
};

/* The paged K and V pools of one layer.
 *
 * Plain (k_bits = v_bits = 0, what a zeroed tail says): k, v f32 or f16
 * [n_pages, page_size, n_head_kv, head_dim].
 *
 * Quantized (k_bits and v_bits each 2..8; head_dim a multiple of 32):
 * every slot's n_head_kv * head_dim values are cut into groups of 32
 * consecutive values (a group never straddles a head), each stored as
 *   r = H32 x / sqrt(32)            (H32: natural-order Sylvester Hadamard,
 *                                    H[i][j] = (-1)^popcount(i & j))
 *   s = f16(min(max|r_j| + 1e-10, 65504))        (the group's scale)
 *   c_j = clamp(floor(r_j / s * m + m), 0, 2^bits - 1),  m = 2^(bits - 1)
 * and read back as r'_j = (c_j - m + 0.5) s / m, x' = H32 r' / sqrt(32)
 * (ExLlamaV3's quantized cache, exl3-format.md 6.2).  k, v are i32 words
 * [n_pages, page_size, n_head_kv * head_dim / 32, bits] (k_bits words a
 * group for k, v_bits for v): the codes in bit planes of widths 8, 4, 2, 1
 * (those in bits' binary form, widest first: 5 = 4 + 1), a plane of width
 * w taking w words with code j's w bits (its most significant ones first
 * plane) at bit j w of the plane; k_scale, v_scale f16 [n_pages,
 * page_size, n_head_kv * head_dim / 32].  Each value costs bits + 0.5
 * bits; attention on such a pool equals attention on the read-back
 * values x' (up to summation order; CUDA's prefill kernel rounds them to
 * f16, as it does an f16 pool's values).  A group holding a NaN reads
 * back as zeros (its rotated maximum is taken as 0). */
struct gpu_kv_pool {
	struct gpu_buf *k;
	struct gpu_buf *v;
	size_t n_pages;
	size_t page_size;
	size_t n_head_kv;
	size_t head_dim;
	unsigned k_bits, v_bits;           /* 0: plain; else 2..8 each */
	struct gpu_buf *k_scale, *v_scale; /* quantized pools only */
};

/* Smallest and largest bits of a quantized KV pool; values per group. */
#define GPU_KVQ_MIN_BITS 2
#define GPU_KVQ_MAX_BITS 8
#define GPU_KVQ_GROUP 32

/* One group of a quantized pool, on the host (the reference the backends
 * follow; tests and tools): quantize x[32] into words[bits] and *scale
 * (f16 bits), or read them back into x[32].  bits 2..8; nothing checked. */
void gpu_kvq_quantize(const float *x, unsigned bits, uint32_t *words,
		      uint16_t *scale);
void gpu_kvq_dequantize(const uint32_t *words, uint16_t scale, unsigned bits,
			float *x);
/* gpu_kvq_dequantize in two steps: the group's values in the rotated
 * domain, r'[32] (gpu_kvq_values), then the rotation x = H32 r' /
 * sqrt(32) in place (gpu_kvq_rotate: orthonormal and its own inverse, so
 * q . x = R q . r' and sum_t p_t x_t = R sum_t p_t r'_t). */
void gpu_kvq_values(const uint32_t *words, uint16_t scale, unsigned bits,
		    float *x);
void gpu_kvq_rotate(float *x);

/* Store each row's key and value at its position:
 *   pool.k[page_table[s, p / page_size], p % page_size, :, :] = k[i, :, :]
 *   (same for v), s = row_seq[i], p = row_pos[i];
 *   k, v f32 [n_rows, n_head_kv, head_dim].
 * A row whose page entry is outside [0, n_pages) makes the op fail with
 * GPU_E_INVALID and store nothing (the CPU backend checks; CUDA may skip). */
int gpu_kv_store(struct gpu *g, const struct gpu_kv_pool *pool,
		 const struct gpu_kv_batch *b, const struct gpu_buf *k,
		 const struct gpu_buf *v, struct diag *d);

/* RoPE on the queries and keys of a batch, then the KV store, as one op:
 *   (with rp->q_norm: gpu_rmsnorm of every q head and k head first, see
 *   struct gpu_rope)
 *   gpu_rope(q, n_rows, n_head, head_dim, pos, inv_freq, rp);
 *   gpu_rope(k, n_rows, n_head_kv, head_dim, pos, inv_freq, rp);
 *   gpu_kv_store(pool, b, k, v);
 * with n_rows = b->n_rows, head_dim and n_head_kv = the pool's.  q f32
 * [n_rows, n_head, head_dim] and k f32 [n_rows, n_head_kv, head_dim] are
 * rotated in place; v f32 [n_rows, n_head_kv, head_dim]; q, k, v are
 * distinct buffers.  pos are the RoPE positions ([n_rows], or [3][n_rows]
 * with rp->mrope_section), b->row_pos the cache positions (they differ for
 * MRoPE image rows); rp as gpu_rope.  A row whose sequence, position or
 * page entry is invalid makes the CPU fail with GPU_E_INVALID before
 * anything changed (q, k unrotated, nothing stored); CUDA rotates q and k
 * and skips that row's store (as gpu_kv_store).  The CPU gives the bits of
 * the three ops; CUDA runs one launch of one warp per (row, head). */
int gpu_rope_kv_store(struct gpu *g, struct gpu_buf *q, struct gpu_buf *k,
		      const struct gpu_buf *v, size_t n_head,
		      const struct gpu_buf *pos, const struct gpu_buf *inv_freq,
		      const struct gpu_rope *rp, const struct gpu_kv_pool *pool,
		      const struct gpu_kv_batch *b, struct diag *d);

/* The arguments of one gpu_rope_kv_store, for an op that runs it after
 * its own work (gpu_exl3_residual's rope_kv).  Borrowed: nothing here is
 * owned by the struct. */
struct gpu_rope_kv {
	struct gpu_buf *q, *k;
	const struct gpu_buf *v;
	size_t n_head;
	const struct gpu_buf *pos, *inv_freq;
	const struct gpu_rope *rp;
	const struct gpu_kv_pool *pool;
	const struct gpu_kv_batch *b;
};

/* Causal grouped-query attention over the paged cache.  For row i (sequence
 * s, position p) and head h (kv head hk = h / (n_head / n_head_kv)):
 *   score[t] = scale * q[i,h,:] . K_s[t,hk,:]   for lo <= t <= p,
 *   lo = window ? max(0, p - window + 1) : 0
 *   out[i,h,:] = sum_t softmax(score)[t] * V_s[t,hk,:]
 * where K_s[t] is pool.k[page_table[s, t / page_size], t % page_size].
 * Every position lo..p of s must have been stored (gpu_kv_store), including
 * those of rows in this same batch.  q, out f32 [n_rows, n_head, head_dim]. */
int gpu_attention(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *q,
		  const struct gpu_kv_pool *pool, const struct gpu_kv_batch *b,
		  size_t n_head, float scale, size_t window, struct diag *d);

/* The arguments of one gpu_attention, for an op that runs it first
 * (gpu_exl3_residual's att).  Borrowed: nothing here is owned by the
 * struct. */
struct gpu_attention_args {
	struct gpu_buf *out;
	const struct gpu_buf *q;
	const struct gpu_kv_pool *pool;
	const struct gpu_kv_batch *b;
	size_t n_head;
	float scale;
	size_t window;
};

/* SwiGLU: out[i] = silu(gate[i]) * up[i], silu(z) = z / (1 + exp(-z));
 * out, gate, up f32 [n] (out may equal gate or up). */
int gpu_swiglu(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *gate,
	       const struct gpu_buf *up, size_t n, struct diag *d);

/* Elementwise sum: out[i] = a[i] + b[i]; f32 [n]; out may equal a or b. */
int gpu_add(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *a,
	    const struct gpu_buf *b, size_t n, struct diag *d);

/* Sigmoid-gated residual (Qwen2-MoE shared expert):
 *   out[i, :] += sigmoid(gate[i]) * y[i, :]
 *   out, y f32 [n, dim]; gate f32 [n]. */
int gpu_add_gated(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *y,
		  const struct gpu_buf *gate, size_t n, size_t dim,
		  struct diag *d);

/* Row softmax in place: x[i, :] = exp(x[i,:] - max) / sum; f32 [n, cols]. */
int gpu_softmax(struct gpu *g, struct gpu_buf *x, size_t n, size_t cols,
		struct diag *d);

/* Copy n f32/i32 elements src[src_off..] -> dst[dst_off..] (same dtype,
 * non-overlapping unless dst == src and the ranges are disjoint). */
int gpu_copy(struct gpu *g, struct gpu_buf *dst, size_t dst_off,
	     const struct gpu_buf *src, size_t src_off, size_t n,
	     struct diag *d);

/* MoE routing (Mixtral / Qwen-MoE): p = softmax(logits[i, :]) over all
 * n_expert, then the top_k largest (ties: lower expert index first) in
 * descending order:
 *   ids[i, j] = expert index, weights[i, j] = p[expert]
 *   and when renorm: weights[i, j] /= sum_j weights[i, j].
 * logits f32 [n, n_expert]; ids i32 [n, top_k]; weights f32 [n, top_k]. */
int gpu_moe_route(struct gpu *g, const struct gpu_buf *logits,
		  struct gpu_buf *ids, struct gpu_buf *weights, size_t n,
		  size_t n_expert, size_t top_k, bool renorm, struct diag *d);

struct gpu_exl3_weight; /* "EXL3" block below */

/* The experts of one MoE layer: n_expert SwiGLU MLPs, stored one of two
 * ways (exactly one of the two array triples is set, the other NULL):
 *   float: gate[e], up[e]: any float [n_ff, dim]; down[e]: any float
 *          [dim, n_ff] (HF [out, in] orientation);
 *   EXL3:  xgate[e], xup[e], xdown[e] (gpu_exl3_weight_new on the same
 *          backend), used as gpu_exl3_matmul uses them, in its k x n
 *          (in x out, padded) sense: gate/up k >= dim, n >= n_ff; down
 *          k >= n_ff, n >= dim.  Inputs are zero-extended to k and
 *          outputs trimmed to n_ff / dim (docs/exl3-format.md §1.5),
 *          each weight's own bias (if any) is applied.
 * Zero-initialise the struct (or use a designated initialiser) so that
 * the unused triple is NULL.  The arrays and weights are borrowed for the
 * duration of the gpu_moe_ffn call. */
struct gpu_moe_experts {
	size_t n_expert;
	size_t n_ff;
	const struct gpu_buf *const *gate;
	const struct gpu_buf *const *up;
	const struct gpu_buf *const *down;
	const struct gpu_exl3_weight *const *xgate;
	const struct gpu_exl3_weight *const *xup;
	const struct gpu_exl3_weight *const *xdown;
};

/* Most assignments (rows x top_k) of one gpu_moe_ffn call that CUDA
 * dispatches on the device (see gpu_moe_ffn_recordable). */
#define GPU_MOE_DEVICE_MAX_ASSIGN 128

/* Scratch elements (f32) gpu_moe_ffn needs for n rows (enough for either
 * dispatch path of any backend); non-decreasing in n, so scratch sized
 * for the largest batch serves every smaller one. */
size_t gpu_moe_scratch_elems(size_t n, size_t dim, size_t n_ff, size_t top_k);

/* Whether gpu_moe_ffn with this expert set, for up to n rows of width dim
 * and top_k experts per row, dispatches the experts on the device (reads
 * nothing back), so that it may be recorded in a graph.  CUDA, at most
 * 128 experts, top_k <= 8, n * top_k <= GPU_MOE_DEVICE_MAX_ASSIGN, and
 * either float experts, all f16 or all bf16, dim and n_ff multiples of 8;
 * or EXL3 experts for n <= 16, every gate (up, down) of one bits and
 * codebook, with or without bias alike, gate / up k x n and down n x k
 * equal to dim x n_ff rounded up to multiples of 128.  False on the CPU
 * backend, for an invalid set, and on a poisoned handle.  Borrows ex for
 * the call. */
bool gpu_moe_ffn_recordable(struct gpu *g, const struct gpu_moe_experts *ex,
			    size_t n, size_t dim, size_t top_k);

/* Expert dispatch (after gpu_moe_route):
 *   out[i, :] = sum_j weights[i, j] * down[e] (silu(gate[e] x[i]) * up[e] x[i]),
 *   e = ids[i, j]
 * (with EXL3 experts each product is gpu_exl3_matmul's x . W, up to the
 * order of its f32 partial sums: CUDA's device path chooses its own
 * k-slices).
 * out, x f32 [n, dim] (no aliasing); ids/weights as gpu_moe_route wrote
 * them; scratch f32 with at least gpu_moe_scratch_elems(...) elements (so
 * that the op allocates nothing beyond what gpu_exl3_matmul documents for
 * the CPU's first call of a size).  Errors: GPU_E_INVALID (bad expert set:
 * neither or both triples, a NULL entry, a float expert of the wrong size,
 * an EXL3 expert from another backend or too small for dim / n_ff — the
 * diag names the expert; an expert id outside [0, n_expert) or one a
 * row names twice, found when the routing is read: before anything is computed on the CPU and on
 * CUDA's host path; on CUDA's device path (gpu_moe_ffn_recordable) the
 * routing never reaches the host, so such an assignment adds nothing to
 * its row and the next gpu_sync returns the error, naming row and id),
 * GPU_E_NOMEM, GPU_E_DEVICE.  Recordable in a graph exactly when
 * gpu_moe_ffn_recordable(g, ex, n, dim, top_k) (otherwise CUDA reads the
 * routing back: GPU_E_INVALID while recording). */
int gpu_moe_ffn(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *x,
		const struct gpu_buf *ids, const struct gpu_buf *weights,
		const struct gpu_moe_experts *ex, size_t n, size_t dim,
		size_t top_k, struct gpu_buf *scratch, struct diag *d);

/* ==== EXL3 (gpu/cpu/exl3.c) ============================================= */
/*
 * EXL3-quantized linear layers (docs/exl3-format.md): the weight stays in
 * its trellis form on the backend and is decoded on the fly inside the op;
 * W is never materialised.
 */

/* Trellis codebooks (§2); the file selects one per tensor by the presence
 * of a `.mcg` or `.mul1` flag tensor. */
enum gpu_exl3_cb {
	GPU_EXL3_CB_3INST = 0,
	GPU_EXL3_CB_MCG = 1,
	GPU_EXL3_CB_MUL1 = 2,
};

/* Host-side description of one EXL3 linear, as stored in the file.
 * Pointers may have any alignment (they may point into a file mapping);
 * the data is copied by gpu_exl3_weight_new and need not outlive it. */
struct gpu_exl3_desc {
	size_t k;              /* in_features (padded), multiple of 128 */
	size_t n;              /* out_features (padded), multiple of 128 */
	int bits;              /* K, bits per weight, 1..8 */
	enum gpu_exl3_cb cb;
	const void *trellis;   /* int16 [k/16, n/16, 16*K] */
	const void *suh;       /* f16 [k] input sign/scale vector */
	const void *svh;       /* f16 [n] output sign/scale vector */
	const void *bias;      /* f16 [n], or NULL */
};

struct gpu_exl3_weight; /* opaque, owned by the caller */

/* Upload an EXL3 linear.  On success *out owns backend memory; release with
 * gpu_exl3_weight_free before gpu_close.  Errors: GPU_E_INVALID (k or n not
 * a positive multiple of 128, bits outside 1..8, bad codebook, NULL data;
 * the diag says which), GPU_E_NOMEM, GPU_E_UNSUPPORTED (backend without
 * EXL3), GPU_E_DEVICE. */
int gpu_exl3_weight_new(struct gpu *g, const struct gpu_exl3_desc *desc,
			struct gpu_exl3_weight **out, struct diag *d);
/* NULL is a no-op. */
void gpu_exl3_weight_free(struct gpu_exl3_weight *w);
/* Padded dims, bits, and backend bytes held (for model statistics). */
size_t gpu_exl3_weight_k(const struct gpu_exl3_weight *w);
size_t gpu_exl3_weight_n(const struct gpu_exl3_weight *w);
int gpu_exl3_weight_bits(const struct gpu_exl3_weight *w);
size_t gpu_exl3_weight_bytes(const struct gpu_exl3_weight *w);

/* EXL3 linear layer (§3.3), for each row i, with k = w's k, n = w's n:
 *   xz [k]  = x[i, 0..k_in) zero-extended to k
 *   xh [k]  = H128_blk(xz * suh)                       (input rotation)
 *   yh [n]  = xh . W_hat                               (trellis decode)
 *   y  [n]  = H128_blk(yh) * svh (+ bias)              (output rotation)
 *   out[i, 0..n_out) = y[0..n_out)                     (padding trimmed)
 * which equals x . W (+ b) with W = diag(suh) H W_hat H diag(svh) in
 * [k, n] (input-major) orientation.  out f32 [n_rows, n_out], x f32
 * [n_rows, k_in], 0 < k_in <= k, 0 < n_out <= n; out may not alias x.
 * Computed in f32.  The CPU backend grows its per-thread scratch on the
 * first call of a given size (later calls allocate nothing). */
int gpu_exl3_matmul(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *x,
		    const struct gpu_exl3_weight *w, size_t n_rows, size_t k_in,
		    size_t n_out, struct diag *d);

/* One EXL3 linear of gpu_exl3_matmul_multi: out f32 [n_rows, n_out] =
 * x . w (n_out <= w's n). */
struct gpu_exl3_part {
	struct gpu_buf *out;
	const struct gpu_exl3_weight *w;
	size_t n_out;
};
/* Most parts of one gpu_exl3_matmul_multi. */
#define GPU_EXL3_MULTI_MAX 3

/* gpu_exl3_matmul of 1..GPU_EXL3_MULTI_MAX weights sharing x (q/k/v,
 * gate/up), each part the same product as its own call: the CUDA backend
 * rotates x for every part in one launch and the outputs of every part in
 * one (decode row counts; other cases and backends run the parts one by
 * one).  At those row counts CUDA splits k for the launch as a whole, so
 * a part can differ from its own call (and from the same rows in a batch
 * of more than 16) in the order of its f32 partial sums; every call with
 * the same weights and row count gives the same bits.  Every weight must have the
 * same k; outputs may not alias x or each other.  Errors as
 * gpu_exl3_matmul, plus GPU_E_INVALID for a part count outside 1..MAX or
 * mismatched k. */
int gpu_exl3_matmul_multi(struct gpu *g, const struct gpu_buf *x, size_t n_rows,
			  size_t k_in, const struct gpu_exl3_part *parts,
			  int n_parts, struct diag *d);

/* out = silu(x . w_gate) * (x . w_up), f32 [n_rows, n_out], for two
 * weights of one shape (the SwiGLU feed-forward's first half): exactly
 * gpu_exl3_matmul_multi of the two followed by gpu_swiglu, except that
 * the CUDA backend's decode path applies the SwiGLU in the output launch
 * (same formula and bits).  up, f32 [n_rows, n_out], is scratch (it may
 * hold x . w_up afterwards); out, up and x must not alias.  Errors as
 * gpu_exl3_matmul_multi, plus GPU_E_INVALID for weights of different n. */
int gpu_exl3_swiglu(struct gpu *g, struct gpu_buf *out, struct gpu_buf *up,
		    const struct gpu_buf *x, const struct gpu_exl3_weight *w_gate,
		    const struct gpu_exl3_weight *w_up, size_t n_rows, size_t k_in,
		    size_t n_out, struct diag *d);

/* A layer's last EXL3 linear (o_proj, down_proj), the residual add and
 * the RMSNorm after it, and optionally the EXL3 products of the block
 * that follows, as one op:
 *   o = a W                    (gpu_exl3_matmul, a f32 [n, k_in], o f32
 *                               [n, dim], n_out = dim)
 *   x += o; xn = rmsnorm(x) * norm_w   (gpu_add_rmsnorm, x / xn f32 [n,
 *                               dim], norm_w any float [dim])
 *   n_next > 0: gpu_exl3_matmul_multi(xn, next, n_next) (k_in = dim), or
 *   with swiglu (n_next = 2, one n_out): gpu_exl3_swiglu(next[0].out,
 *   next[1].out, xn, next[0].w, next[1].w)
 * The result is that sequence's up to f32 summation order (the CPU runs
 * exactly it; CUDA, for up to 16 rows with dim <= 8192 on a device with
 * thread-block clusters — compute capability 9.0 — and TERN_EXL3_TAIL
 * not 0, does the linear's output step, the add, the norm and the next
 * weights' input rotation in one launch).
 * x, xn, o, a and the next outputs are distinct buffers.
 *   then (NULL, or with swiglu): a second such op run right after, whose
 *   a is next[0].out (the SwiGLU result: the feed-forward's down_proj
 *   and what follows it), for the same rows; then->then must be NULL.
 *   The result is the two calls' (CUDA, where it fuses the first, rotates
 *   the SwiGLU result for then->w in the launch that computes it: the
 *   same arithmetic, one launch fewer).
 *   att (NULL; never on a then): first
 *   gpu_attention of *att, whose out is a and whose batch has n_rows rows
 *   (the layer's attention before its o_proj; CUDA, where the attention
 *   merges split partials with heads of 128 dims, k_in = n_head * 128 and
 *   fewer than 16 rows, rotates each head's result for w as it writes it:
 *   the same arithmetic, one launch fewer).
 *   rope_kv (NULL, or with three next parts and no swiglu): then
 *   gpu_rope_kv_store of *rope_kv, whose q, k and v are the three next
 *   outputs (the next layer's attention inputs) and whose batch has
 *   n_rows rows (CUDA, where the decode path ran the parts in one output
 *   launch, head_dim and the rotated dims 128, no MRoPE and no q/k norm,
 *   rotates and stores in that launch: the same arithmetic, one launch
 *   fewer).  A row the store rejects at run time (gpu_rope_kv_store's
 *   bad rows, CPU) fails the op after the products ran.
 * Errors as the ops named; GPU_E_INVALID for a bad `then`, att or rope_kv
 * (checked, as everything, before anything runs). */
struct gpu_exl3_residual {
	struct gpu_buf *x, *xn, *o;
	const struct gpu_buf *a;
	const struct gpu_exl3_weight *w;
	size_t k_in, dim;
	const struct gpu_buf *norm_w;
	float eps;
	const struct gpu_exl3_part *next; /* n_next parts, or NULL */
	int n_next;
	bool swiglu;
	const struct gpu_exl3_residual *then; /* or NULL */
	const struct gpu_rope_kv *rope_kv;    /* or NULL */
	const struct gpu_attention_args *att; /* or NULL */
};
int gpu_exl3_residual(struct gpu *g, const struct gpu_exl3_residual *r,
		      size_t n_rows, struct diag *d);

/* ==== EXL3 quantizer (gpu/exl3_quant.c) ================================= */
/*
 * The numeric core of `tern convert` (docs/exl3-format.md §4): host code
 * whose trellis search is spread over N_THREADS POSIX threads (0: one per
 * online CPU) or runs on a backend that has one (CUDA).  Thread-safe as
 * far as the backend handle is (one thread at a time per handle); nothing
 * is kept between calls.
 */

/* Tail-biting Viterbi search (§4.8) for N_TILES sequences of 256 values x
 * (tile-major; each a 16x16 tile in the element order of §1.7, see
 * gpu_exl3_tile_order): for each, the 256 16-bit states of a cyclic
 * BITS-bit trellis path minimising sum_e (cb(state_e) - x_e)^2, into
 * states[256 * tile + e], and (VALUES non-NULL) their codebook values; the
 * states satisfy the shift-register property, ring closed, so
 * gpu_exl3_pack_tile stores them exactly.  VALUES may alias X.  G: a
 * backend with a search of its own (CUDA, 2..8 bits: the same states, bit
 * for bit) runs it there, synchronously; NULL or any other runs on the
 * host threads.  Errors: GPU_E_INVALID (bits outside 1..8, bad codebook,
 * NULL, a value not finite, more than 2^30 tiles), GPU_E_NOMEM (each
 * host thread needs 1 KiB x 2^(16-bits) of scratch; or device memory),
 * GPU_E_DEVICE (G's device failed; G is then unusable). */
int gpu_exl3_encode_tiles(struct gpu *g, const float *x, size_t n_tiles,
			  int bits, enum gpu_exl3_cb cb, int n_threads,
			  uint16_t *states, float *values, struct diag *d);

/* Pack one tile's 256 states (their low BITS bits) into its record of
 * 16 * BITS uint16 (§1.8: MSB-first stream, uint32 words as int16 pairs).
 * 0, or GPU_E_INVALID (bits outside 1..8, NULL) with nothing written. */
int gpu_exl3_pack_tile(const uint16_t *states, int bits, uint16_t *t16);

/* Row R (input channel) and column C (output channel) in its tile of the
 * tile's element E (0..255), the tensor-core order of §1.7. */
void gpu_exl3_tile_order(int e, int *r, int *c);

/* How gpu_exl3_quantize works (gpu/exl3_quant.c's header has the maths). */
struct gpu_exl3_qparams {
	int bits;                /* K, 1..8 */
	enum gpu_exl3_cb cb;
	uint64_t seed;           /* of the random sign vectors */
	int n_threads;           /* 0: one per online CPU */
	struct gpu *g;           /* where the trellis search runs (NULL: the
				  * host threads; see gpu_exl3_encode_tiles) */
	bool no_out_scales;      /* svh = signs only (ExLlamaV3 "never") */
	double sigma_reg;        /* Hessian damping x mean(diag); 0: 0.025 */
};
struct gpu_exl3_qstats {
	double rel_err;          /* ||W_reg - Q|| / ||W_reg||, rotated basis */
	float scale;             /* the global scale the search chose */
};

/* Quantize one linear, W f32 [k][n] in input-major orientation (y = x W;
 * an HF weight [out, in] transposed), k and n multiples of 128 (pad with
 * zeros), given H f32 [k][k] = mean of x' x over calibration rows (NULL, or
 * a degenerate H: no LDLQ feedback).  Writes trellis (k/16 * n/16 * 16 *
 * bits uint16, tile-major as the file stores it), suh (f16 bits [k]) and
 * svh (f16 bits [n]); ST (may be NULL) gets statistics.  Deterministic for
 * given inputs, parameters and seed, whatever the thread count.
 * Allocates about 3 k n + k^2 floats for the call.  suh and svh stay in
 * f16's normal range (scales clamped to [2^-14, 65504]).  Errors:
 * GPU_E_INVALID (shape, bits, codebook, NULL, a non-finite weight, a
 * Hessian no damping makes positive definite), GPU_E_NOMEM, and with p->g
 * gpu_exl3_encode_tiles' device errors. */
int gpu_exl3_quantize(const float *w, size_t k, size_t n, const float *h,
		      const struct gpu_exl3_qparams *p, uint16_t *trellis,
		      uint16_t *suh, uint16_t *svh, struct gpu_exl3_qstats *st,
		      struct diag *d);

#ifdef __cplusplus
}
#endif
#endif
