/* inference/exl3.c — EXL3 linear layers in the engine: validating one
 * linear's tensor group against docs/exl3-format.md §1.4-1.6, §1.11 and
 * uploading it as a gpu_exl3_weight; and llm_linear, the dense-or-EXL3
 * dispatch the forward pass uses for every linear.
 *
 * Validation (all sizes from the file are checked before use; messages
 * name the tensor):
 *   trellis  I16, 3 dims, [kp/16, np/16, 16K] with kp = round_up(in, 128),
 *            np = round_up(out, 128), shape[2] % 16 == 0, K = shape[2]/16
 *            in 1..8 (and == expected bits for lm_head);
 *   suh      F16 [kp]   or legacy su I16 [kp/16] (sign bits, unpacked here);
 *   svh      F16 [np]   or legacy sv I16 [np/16];
 *   mcg/mul1 I32 scalar (0 dims), at most one; the value is a flag only
 *            (the kernels never read it; §1.4);
 *   bias     F16 [np], optional.
 * The loader's own allocations (unpacked signs) are freed before return;
 * the backend copies what it keeps.
 */
#include "config.h"

#include "inference/exl3_impl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inference/llm.h"

static const struct llm_tensor_info *find_sfx(const struct llm_st_set *st,
					      const char *key, const char *sfx,
					      char *name, size_t cap)
{
	snprintf(name, cap, "%s.%s", key, sfx);
	return llm_st_find(st, name);
}

bool llm_exl3_has(const struct llm_st_set *st, const char *key)
{
	char name[320];

	return find_sfx(st, key, "trellis", name, sizeof name) != NULL;
}

static void fmt_shape(char *buf, size_t cap, const struct llm_tensor_info *t)
{
	size_t o = 0;
	int i;

	o += (size_t)snprintf(buf, cap, "[");
	for (i = 0; i < t->n_dims && o < cap; i++)
		o += (size_t)snprintf(buf + o, cap - o, "%s%" PRId64, i ? ", " : "",
				      t->shape[i]);
	if (o < cap)
		snprintf(buf + o, cap - o, "]");
}

/* TENSOR must have dtype DT and the 1-D shape [len]. */
static int expect_vec(const struct llm_tensor_info *t, enum llm_dtype dt,
		      int64_t len, struct diag *d)
{
	char have[96];

	if (t->dtype != dt)
		return diag_fail(d, LLM_E_FORMAT, "tensor '%s' has dtype %s, expected %s",
				 t->name, llm_dtype_name(t->dtype), llm_dtype_name(dt));
	if (t->n_dims != 1 || t->shape[0] != len) {
		fmt_shape(have, sizeof have, t);
		return diag_fail(d, LLM_E_FORMAT,
				 "tensor '%s' has shape %s, expected [%" PRId64 "]",
				 t->name, have, len);
	}
	return 0;
}

/* Scale vector of length LEN: `<key>.<h>` f16, else legacy `<key>.<s>`
 * int16 sign bits unpacked to +-1 f16 into *tmp (caller frees). */
static int get_scales(const struct llm_st_set *st, const char *key,
		      const char *h, const char *s, int64_t len,
		      const void **data, uint16_t **tmp, uint64_t *n_bytes,
		      struct diag *d)
{
	const struct llm_tensor_info *t;
	char name[320];
	int64_t i;
	int rc;

	*tmp = NULL;
	t = find_sfx(st, key, h, name, sizeof name);
	if (t) {
		rc = expect_vec(t, LLM_DTYPE_F16, len, d);
		if (rc < 0)
			return rc;
		*data = t->data;
		*n_bytes += t->n_bytes;
		return 0;
	}
	t = find_sfx(st, key, s, name, sizeof name);
	if (!t)
		return diag_fail(d, LLM_E_FORMAT,
				 "EXL3 linear '%s': missing tensor '%s.%s' (or legacy '%s.%s')",
				 key, key, h, key, s);
	/* §1.11: bit i (LSB first) of word j is the sign of element 16j + i,
	 * set = -1 */
	rc = expect_vec(t, LLM_DTYPE_I16, len / 16, d);
	if (rc < 0)
		return rc;
	*tmp = malloc((size_t)len * sizeof **tmp);
	if (!*tmp)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	for (i = 0; i < len; i++) {
		uint16_t wd;

		memcpy(&wd, (const char *)t->data + 2 * (i / 16), 2);
		(*tmp)[i] = (wd >> (i % 16)) & 1 ? 0xBC00 : 0x3C00; /* -1 : +1 */
	}
	*data = *tmp;
	*n_bytes += t->n_bytes;
	return 0;
}

/* Optional codebook flag `<key>.<sfx>`: an int32 scalar. */
static int get_flag(const struct llm_st_set *st, const char *key,
		    const char *sfx, bool *present, uint64_t *n_bytes,
		    struct diag *d)
{
	const struct llm_tensor_info *t;
	char name[320], have[96];

	t = find_sfx(st, key, sfx, name, sizeof name);
	*present = t != NULL;
	if (!t)
		return 0;
	if (t->dtype != LLM_DTYPE_I32 || t->n_dims != 0) {
		fmt_shape(have, sizeof have, t);
		return diag_fail(d, LLM_E_FORMAT,
				 "tensor '%s' is %s %s, expected an I32 scalar "
				 "(codebook flag)", name, llm_dtype_name(t->dtype), have);
	}
	*n_bytes += t->n_bytes;
	return 0;
}

int llm_exl3_load(struct gpu *g, const struct llm_st_set *st, const char *key,
		  int64_t in_features, int64_t out_features, int expect_bits,
		  struct gpu_exl3_weight **out, uint64_t *n_params,
		  uint64_t *n_bytes, struct diag *d)
{
	const struct llm_tensor_info *tr, *bias;
	struct gpu_exl3_desc desc;
	uint16_t *su_tmp = NULL, *sv_tmp = NULL;
	uint64_t bytes = 0;
	bool mcg, mul1;
	char name[320], have[96];
	int64_t kp, np;
	int rc;

	*out = NULL;
	if (in_features <= 0 || out_features <= 0 ||
	    in_features > INT64_MAX / 2 || out_features > INT64_MAX / 2)
		return diag_fail(d, LLM_E_FORMAT, "EXL3 linear '%s': %" PRId64 " x %"
				 PRId64 " features", key, in_features, out_features);
	/* §1.5: both dims are zero-padded to multiples of 128 */
	kp = (in_features + 127) / 128 * 128;
	np = (out_features + 127) / 128 * 128;
	tr = find_sfx(st, key, "trellis", name, sizeof name);
	if (!tr)
		return diag_fail(d, LLM_E_FORMAT, "missing tensor '%s'", name);
	if (tr->dtype != LLM_DTYPE_I16)
		return diag_fail(d, LLM_E_FORMAT, "tensor '%s' has dtype %s, expected I16",
				 name, llm_dtype_name(tr->dtype));
	fmt_shape(have, sizeof have, tr);
	if (tr->n_dims != 3 || tr->shape[0] != kp / 16 || tr->shape[1] != np / 16 ||
	    tr->shape[2] % 16 != 0 || tr->shape[2] < 16 || tr->shape[2] > 128)
		return diag_fail(d, LLM_E_FORMAT,
				 "tensor '%s' has shape %s, expected [%" PRId64 ", %"
				 PRId64 ", 16*K] with K in 1..8 (in_features %" PRId64
				 ", out_features %" PRId64 ", padded to 128)", name,
				 have, kp / 16, np / 16, in_features, out_features);
	memset(&desc, 0, sizeof desc);
	desc.k = (size_t)kp;
	desc.n = (size_t)np;
	desc.bits = (int)(tr->shape[2] / 16);
	if (expect_bits > 0 && desc.bits != expect_bits)
		return diag_fail(d, LLM_E_FORMAT,
				 "tensor '%s' is quantized at %d bits, but "
				 "quantization_config.head_bits is %d", name,
				 desc.bits, expect_bits);
	desc.trellis = tr->data;
	bytes += tr->n_bytes;

	rc = get_flag(st, key, "mcg", &mcg, &bytes, d);
	if (rc == 0)
		rc = get_flag(st, key, "mul1", &mul1, &bytes, d);
	if (rc < 0)
		return rc;
	if (mcg && mul1)
		return diag_fail(d, LLM_E_FORMAT,
				 "EXL3 linear '%s' has both '.mcg' and '.mul1' codebook flags",
				 key);
	desc.cb = mcg ? GPU_EXL3_CB_MCG : mul1 ? GPU_EXL3_CB_MUL1 : GPU_EXL3_CB_3INST;

	rc = get_scales(st, key, "suh", "su", kp, &desc.suh, &su_tmp, &bytes, d);
	if (rc == 0)
		rc = get_scales(st, key, "svh", "sv", np, &desc.svh, &sv_tmp, &bytes, d);
	if (rc < 0)
		goto out;
	bias = find_sfx(st, key, "bias", name, sizeof name);
	if (bias) {
		rc = expect_vec(bias, LLM_DTYPE_F16, np, d);
		if (rc < 0)
			goto out;
		desc.bias = bias->data;
		bytes += bias->n_bytes;
	}
	rc = gpu_exl3_weight_new(g, &desc, out, d);
	if (rc < 0) {
		diag_prefix(d, "uploading EXL3 linear '%s'", key);
		rc = rc == GPU_E_NOMEM ? LLM_E_NOMEM : LLM_E_BACKEND;
		goto out;
	}
	if (n_params)
		*n_params += (uint64_t)in_features * (uint64_t)out_features;
	if (n_bytes)
		*n_bytes += bytes;
out:
	free(su_tmp);
	free(sv_tmp);
	return rc;
}

int llm_linear(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *x,
	       const struct gpu_buf *w, const struct gpu_exl3_weight *q,
	       const struct gpu_buf *bias, size_t n, size_t k, size_t rows,
	       struct diag *d)
{
	if (q) {
		if (w || bias)
			return diag_fail(d, GPU_E_INVALID,
					 "llm_linear: an EXL3 weight carries its own bias");
		return gpu_exl3_matmul(g, out, x, q, n, k, rows, d);
	}
	return gpu_matmul(g, out, x, w, bias, n, k, rows, d);
}
