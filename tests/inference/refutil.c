/* tests/inference/refutil.c — see refutil.h. */
#include "config.h"

#include "refutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

const struct llm_tensor_info *ref_get(struct llm_st_set *ref, const char *name)
{
	const struct llm_tensor_info *t = llm_st_find(ref, name);

	ck_assert_msg(t != NULL, "reference tensor %s missing", name);
	return t;
}

int32_t *ref_ids(struct llm_st_set *ref, const char *name, size_t *n)
{
	const struct llm_tensor_info *t = ref_get(ref, name);
	int32_t *v = malloc((size_t)t->n_bytes + 4);

	ck_assert_ptr_nonnull(v);
	ck_assert(t->dtype == LLM_DTYPE_I32);
	memcpy(v, t->data, (size_t)t->n_bytes);
	*n = (size_t)t->n_elems;
	return v;
}

float *ref_f32(struct llm_st_set *ref, const char *name, size_t *n)
{
	const struct llm_tensor_info *t = ref_get(ref, name);
	float *v = malloc((size_t)t->n_elems * sizeof *v + 4);

	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(llm_tensor_to_f32(t, v, NULL), 0);
	*n = (size_t)t->n_elems;
	return v;
}

char *ref_fixture_open(const char *arch, struct llm_st_set **ref)
{
	char rel[128], *dir, *refp;
	struct diag d;

	diag_clear(&d);
	snprintf(rel, sizeof rel, "models/%s", arch);
	dir = test_data_path(rel);
	snprintf(rel, sizeof rel, "models/%s/reference.safetensors", arch);
	refp = test_data_path(rel);
	*ref = NULL;
	ck_assert_msg(llm_st_open(refp, ref, &d) == 0, "%s", d.msg);
	free(refp);
	return dir;
}

float *ref_seq(struct llm_st_set *ref, size_t s, size_t V, int32_t **ids,
	       size_t *n)
{
	char name[64];
	float *lg;
	size_t nr;

	snprintf(name, sizeof name, "input_ids.%zu", s);
	*ids = ref_ids(ref, name, n);
	snprintf(name, sizeof name, "logits.%zu", s);
	lg = ref_f32(ref, name, &nr);
	ck_assert_uint_eq(nr, *n * V);
	return lg;
}

void ref_expect_rows(const char *what, const float *a, const float *r,
		     size_t n_rows, size_t V)
{
	size_t i, j;

	for (i = 0; i < n_rows; i++) {
		double md = 0, mr = 0;

		for (j = 0; j < V; j++) {
			md = fmax(md, fabs((double)a[i * V + j] - r[i * V + j]));
			mr = fmax(mr, fabs((double)r[i * V + j]));
		}
		ck_assert_msg(md <= 1e-3 * mr,
			      "%s row %zu: max |diff| %g > 1e-3 * max |ref| %g",
			      what, i, md, mr);
	}
}

struct llm_model *ref_open_cpu(const char *dir)
{
	struct llm_model_params p = llm_model_default_params();
	struct llm_model *m = NULL;
	struct diag d;

	diag_clear(&d);
	p.backend = LLM_BACKEND_CPU;
	p.n_threads = 2;
	ck_assert_msg(llm_model_open(dir, &p, &m, &d) == 0, "%s: %s", dir, d.msg);
	return m;
}

int32_t ref_argmax(const float *v, size_t n)
{
	size_t i, b = 0;

	for (i = 1; i < n; i++)
		if (v[i] > v[b])
			b = i;
	return (int32_t)b;
}

void ref_check_greedy(struct llm_context *c, const char *what,
		      const int32_t *prompt, size_t n_prompt,
		      const int32_t *expect, size_t n_gen, size_t V,
		      int stop_at_bos)
{
	float *lg = malloc(V * sizeof *lg);
	struct diag d;
	size_t j;

	ck_assert_ptr_nonnull(lg);
	diag_clear(&d);
	llm_context_reset(c);
	ck_assert_msg(llm_context_eval(c, prompt, n_prompt, LLM_LOGITS_LAST, lg,
				       &d) == 0, "%s: %s", what, d.msg);
	for (j = 0; j < n_gen; j++) {
		int32_t t = ref_argmax(lg, V);

		if (stop_at_bos && t == 1)
			break;
		ck_assert_msg(t == expect[j], "%s: greedy token %zu is %d, expected %d",
			      what, j, (int)t, (int)expect[j]);
		if (j + 1 < n_gen)
			ck_assert_msg(llm_context_eval(c, &t, 1, LLM_LOGITS_LAST, lg,
						       &d) == 0,
				      "%s: %s", what, d.msg);
	}
	ck_assert_msg(j == n_gen, "%s: stopped after %zu of %zu tokens", what, j,
		      n_gen);
	free(lg);
}

void ref_write_st(const char *path, const struct ref_st_tensor *t, size_t n)
{
	size_t cap = 1 << 20, hl = 0, off = 0, i, pad;
	char *hdr = malloc(cap);
	uint64_t len;
	FILE *f;
	int j;

	ck_assert_ptr_nonnull(hdr);
	hl += (size_t)snprintf(hdr + hl, cap - hl, "{");
	for (i = 0; i < n; i++) {
		hl += (size_t)snprintf(hdr + hl, cap - hl,
				       "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[",
				       i ? "," : "", t[i].name, t[i].dtype);
		for (j = 0; j < t[i].n_dims; j++)
			hl += (size_t)snprintf(hdr + hl, cap - hl, "%s%lld",
					       j ? "," : "", (long long)t[i].shape[j]);
		hl += (size_t)snprintf(hdr + hl, cap - hl,
				       "],\"data_offsets\":[%zu,%zu]}", off,
				       off + t[i].bytes);
		ck_assert(hl < cap - 256);
		off += t[i].bytes;
	}
	hl += (size_t)snprintf(hdr + hl, cap - hl, "}");
	pad = (8 - hl % 8) % 8;
	for (i = 0; i < pad; i++)
		hdr[hl++] = ' ';
	f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	len = hl;
	for (j = 0; j < 8; j++)
		fputc((int)((len >> (8 * j)) & 0xff), f);
	ck_assert_uint_eq(fwrite(hdr, 1, hl, f), hl);
	for (i = 0; i < n; i++)
		ck_assert_uint_eq(fwrite(t[i].data, 1, t[i].bytes, f), t[i].bytes);
	ck_assert_int_eq(fclose(f), 0);
	free(hdr);
}
