/* inference/safetensors_impl.h — internal API of the safetensors reader
 * (inference/safetensors.c).  Engine-internal: never include outside
 * inference/.
 *
 * A `struct llm_st_set` is the read-only view of one model's tensors: a
 * single `model.safetensors`, a single explicitly named `.safetensors` file,
 * or the shards listed by `model.safetensors.index.json`.  Every file is
 * mapped read-only once (file_map_open) and every header is fully validated
 * at open time, so that afterwards every `llm_tensor_info` is trustworthy:
 *   - the header length (u64 little-endian) fits in the file;
 *   - each entry has dtype, shape and data_offsets; begin <= end; the range
 *     lies inside the data section;
 *   - end - begin == product(shape) * dtype_size (64-bit, overflow-checked);
 *   - names are unique across all shards.
 * Tensors need not be contiguous or ordered in the file.
 *
 * Thread-safety: a set is immutable after llm_st_open; concurrent readers
 * are fine.  llm_st_close must not race with readers.
 */
#ifndef TERN_INFERENCE_SAFETENSORS_IMPL_H
#define TERN_INFERENCE_SAFETENSORS_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"

/* Element types a safetensors header can name.  The numeric values are
 * internal (not the file's); use llm_dtype_name for the file spelling. */
enum llm_dtype {
	LLM_DTYPE_F32,
	LLM_DTYPE_F16,
	LLM_DTYPE_BF16,
	LLM_DTYPE_F64,
	LLM_DTYPE_I64,
	LLM_DTYPE_I32,
	LLM_DTYPE_I16,
	LLM_DTYPE_I8,
	LLM_DTYPE_U8,
	LLM_DTYPE_BOOL,
	LLM_DTYPE_COUNT
};

/* Bytes per element (0 for an out-of-range value). */
size_t llm_dtype_size(enum llm_dtype t);
/* Safetensors spelling ("F32", "BF16", ...), "?" for an out-of-range value. */
const char *llm_dtype_name(enum llm_dtype t);
/* Parse a safetensors dtype name; returns 0 and sets *out, or LLM_E_UNSUPPORTED
 * for a name not in enum llm_dtype (e.g. "F8_E4M3"). */
int llm_dtype_from_name(const char *name, enum llm_dtype *out);

/* 5, not 4: Qwen2.5-VL's patch embedding is a Conv3d weight
 * [out, in, t, h, w]. */
#define LLM_MAX_DIMS 5

struct llm_tensor_info {
	const char *name;            /* owned by the set */
	enum llm_dtype dtype;
	int n_dims;                  /* 0 (scalar) .. LLM_MAX_DIMS */
	int64_t shape[LLM_MAX_DIMS]; /* row-major, shape[0] outermost, as in
				      * the file; unused dims are 1 */
	int64_t n_elems;             /* product of shape (1 for a scalar) */
	const void *data;            /* into the read-only mapping; valid until
				      * llm_st_close; NULL when n_bytes == 0.
				      * Not necessarily aligned beyond 1 byte
				      * (headers have arbitrary length). */
	uint64_t n_bytes;            /* n_elems * llm_dtype_size(dtype) */
	int file_index;              /* which shard (0 for a single file) */
};

struct llm_st_set;

/* Open PATH: a directory (containing model.safetensors, or
 * model.safetensors.index.json whose "weight_map" maps tensor name -> shard
 * file name in the same directory), or a single .safetensors file.
 * On success *out owns the mappings; free with llm_st_close.
 * Errors: LLM_E_IO (missing/unreadable file), LLM_E_FORMAT (truncated or
 * inconsistent header, naming the file and tensor), LLM_E_UNSUPPORTED
 * (a dtype not in enum llm_dtype, or more than LLM_MAX_DIMS dims),
 * LLM_E_NOMEM.  *out is NULL on failure. */
int llm_st_open(const char *path, struct llm_st_set **out, struct diag *d);
/* Unmap and free everything; every pointer obtained from the set dies.
 * NULL is a no-op. */
void llm_st_close(struct llm_st_set *s);

/* Number of tensors over all shards. */
size_t llm_st_count(const struct llm_st_set *s);
/* Tensor i (0 <= i < count), in shard order then header order; NULL when out
 * of range. */
const struct llm_tensor_info *llm_st_at(const struct llm_st_set *s, size_t i);
/* Tensor by exact name, NULL if absent.  O(1) (open-addressing hash). */
const struct llm_tensor_info *llm_st_find(const struct llm_st_set *s,
					  const char *name);
/* "__metadata__" string value KEY of file 0, or NULL.  Owned by the set. */
const char *llm_st_metadata(const struct llm_st_set *s, const char *key);
/* Number of files mapped (1 for a single file) and the path of file i
 * (owned by the set), for messages. */
int llm_st_n_files(const struct llm_st_set *s);
const char *llm_st_file_path(const struct llm_st_set *s, int i);

/* Check that NAME exists with N_DIMS dims equal to SHAPE (SHAPE may be NULL
 * to check existence only; a shape entry < 0 means "any").  On success sets
 * *out (if out non-NULL) and returns 0.  Errors: LLM_E_FORMAT with a message
 * naming the tensor and both shapes ("tensor 'x' has shape [3, 4], expected
 * [4, 4]"), or "missing tensor 'x'". */
int llm_st_expect(const struct llm_st_set *s, const char *name, int n_dims,
		  const int64_t *shape, const struct llm_tensor_info **out,
		  struct diag *d);

/* Convert any float tensor (F32/F16/BF16/F64) to float32 into
 * dst[t->n_elems].  Errors: LLM_E_UNSUPPORTED for an integer/bool dtype. */
int llm_tensor_to_f32(const struct llm_tensor_info *t, float *dst,
		      struct diag *d);

/* Scalar conversions.  f32 -> bf16/f16 round to nearest even; NaN stays NaN;
 * f16 overflow gives +-inf. */
float llm_bf16_to_f32(uint16_t h);
float llm_f16_to_f32(uint16_t h);
uint16_t llm_f32_to_bf16(float f);
uint16_t llm_f32_to_f16(float f);

#endif
