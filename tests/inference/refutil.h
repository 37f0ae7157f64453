/* tests/inference/refutil.h — reading transformers' reference tensors
 * (reference.safetensors of the fixtures) and comparing logits with them,
 * and writing small safetensors files, shared by the inference-layer
 * conformance suites (CPU, CUDA, EXL3). */
#ifndef TERN_TESTS_INFERENCE_REFUTIL_H
#define TERN_TESTS_INFERENCE_REFUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "inference/llm.h"
#include "inference/safetensors_impl.h"

/* Tensor NAME of REF; fails the test when it is missing. */
const struct llm_tensor_info *ref_get(struct llm_st_set *ref, const char *name);
/* An int32 tensor copied out (the mapping may be unaligned); free() it. */
int32_t *ref_ids(struct llm_st_set *ref, const char *name, size_t *n);
/* Any float tensor as f32; free() it. */
float *ref_f32(struct llm_st_set *ref, const char *name, size_t *n);
/* Fixture models/ARCH of tests/data: its folder (returned; free() it),
 * with its reference.safetensors opened into *REF (fails the test
 * otherwise; llm_st_close it). */
char *ref_fixture_open(const char *arch, struct llm_st_set **ref);
/* Reference sequence S of a fixture: input_ids.S into *IDS (*N ids; free()
 * it) and logits.S as f32, returned (checked to be N * V values; free()
 * it). */
float *ref_seq(struct llm_st_set *ref, size_t s, size_t V, int32_t **ids,
	       size_t *n);
/* The fixtures' bound: max|a - r| <= 1e-3 * max|r| for each of n_rows rows
 * of V values; fails the test naming WHAT and the row otherwise. */
void ref_expect_rows(const char *what, const float *a, const float *r,
		     size_t n_rows, size_t V);
/* The model in DIR on the CPU backend with 2 threads (the suites' oracle
 * setting); fails the test with the loader's message otherwise. */
struct llm_model *ref_open_cpu(const char *dir);
/* The same on backend BE with a quantized KV cache of KB-bit keys and
 * VB-bit values (LLM_KV_QUANT). */
struct llm_model *ref_open_kvq(const char *dir, enum llm_backend be, int kb,
			       int vb);
/* The tiny Qwen2.5-VL fixture's vision tower on image SUFFIX ("" or
 * ".photo") against transformers' image_embeds: on the host (BACKEND
 * NULL) or through the ops of the model opened on BACKEND ("cpu", "cuda":
 * llm_vision_use_backend); fails the test unless max |diff| <= BOUND x max
 * |ref|.  *MD and *MX (may be NULL) receive the two. */
void ref_vision_check(const char *suffix, const char *backend, float bound,
		      float *md, float *mx);
/* Index of the largest value (ties: the lowest index), as greedy decoding. */
int32_t ref_argmax(const float *v, size_t n);

/* Forced PROMPT, then N_GEN argmax steps through context C (reset first),
 * each compared with EXPECT; with stop_at_bos, generation ends when BOS
 * (id 1) comes out, run.c's rule, and must still have produced all N_GEN
 * expected tokens.  WHAT names the case in failures. */
void ref_check_greedy(struct llm_context *c, const char *what,
		      const int32_t *prompt, size_t n_prompt,
		      const int32_t *expect, size_t n_gen, size_t V,
		      int stop_at_bos);

/* One tensor of a safetensors file written by ref_write_st: NAME,
 * safetensors DTYPE ("F16", "I32", ...), N_DIMS of SHAPE, BYTES of DATA. */
struct ref_st_tensor {
	const char *name;
	const char *dtype;
	int n_dims;
	int64_t shape[3];
	const void *data;
	size_t bytes;
};

/* Write the N tensors T as the safetensors file PATH (header, padded to 8
 * bytes, then the data in order); fails the test on any error. */
void ref_write_st(const char *path, const struct ref_st_tensor *t, size_t n);

#endif
