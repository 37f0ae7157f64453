/* inference/exl3_impl.h — loading EXL3-quantized linear layers
 * (inference/exl3.c).  Engine-internal.
 *
 * An EXL3 model (config.json quantization_config.quant_method "exl3",
 * docs/exl3-format.md §1) keeps every quantized linear under its HF key
 * with suffixes instead of `.weight`:
 *   <key>.trellis  int16 [k/16, n/16, 16K]   K = bits per weight, 1..8
 *   <key>.suh      f16 [k]    (or legacy <key>.su int16 [k/16] sign bits)
 *   <key>.svh      f16 [n]    (or legacy <key>.sv int16 [n/16] sign bits)
 *   <key>.mcg | <key>.mul1   int32 scalar flags selecting the codebook
 *                            (neither: 3INST; both: invalid)
 *   <key>.bias     f16 [n]   optional
 * with k = in_features and n = out_features padded up to multiples of 128.
 * Everything else (embeddings, norms, router gates, fp16 linears such as
 * an lm_head at head_bits 16) is an ordinary tensor for the normal path.
 *
 * Invariant: a weight returned by llm_exl3_load passed every check above
 * against the layer's logical shape; its padding is handled by the op
 * (inputs zero-extended, outputs trimmed).
 */
#ifndef TERN_INFERENCE_EXL3_IMPL_H
#define TERN_INFERENCE_EXL3_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"
#include "gpu/gpu.h"
#include "inference/safetensors_impl.h"

/* true when ST holds `<key>.trellis` (the layer is EXL3; llm_exl3_load
 * then validates the rest of the group). */
bool llm_exl3_has(const struct llm_st_set *st, const char *key);

/* Load the EXL3 linear KEY of a layer with IN_FEATURES inputs and
 * OUT_FEATURES outputs (the model's logical dims) onto G.  EXPECT_BITS 0
 * accepts any K; otherwise K must equal it (lm_head at head_bits).
 * On success *out owns the backend weight (gpu_exl3_weight_free) and the
 * element count (IN * OUT) and file bytes of the group's tensors are added
 * to *n_params and *n_bytes (either may be NULL).
 * Errors: LLM_E_FORMAT (missing tensor, wrong dtype or shape, K outside
 * 1..8 or not the expected head bits, both codebook flags; the message
 * names the tensor and both shapes), LLM_E_NOMEM, LLM_E_BACKEND. */
int llm_exl3_load(struct gpu *g, const struct llm_st_set *st, const char *key,
		  int64_t in_features, int64_t out_features, int expect_bits,
		  struct gpu_exl3_weight **out, uint64_t *n_params,
		  uint64_t *n_bytes, struct diag *d);

/* The linear layer, whichever way its weight is stored:
 *   out [n, rows] = x [n, k] W^T (+ bias)
 * with W dense (w: any float [rows, k], bias any float [rows] or NULL;
 * gpu_matmul) or EXL3 (q, whose own .bias is applied; bias must be NULL).
 * Exactly one of w and q is non-NULL.  Errors: the gpu_* codes. */
int llm_linear(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *x,
	       const struct gpu_buf *w, const struct gpu_exl3_weight *q,
	       const struct gpu_buf *bias, size_t n, size_t k, size_t rows,
	       struct diag *d);

#endif
