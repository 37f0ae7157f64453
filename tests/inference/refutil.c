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

static struct llm_model *ref_open(const char *dir, enum llm_backend be,
				   int kb, int vb)
{
	struct llm_model_params p = llm_model_default_params();
	struct llm_model *m = NULL;
	struct diag d;

	diag_clear(&d);
	p.backend = be;
	p.n_threads = 2;
	if (kb) {
		p.kv_type = LLM_KV_QUANT;
		p.kv_k_bits = kb;
		p.kv_v_bits = vb;
	}
	ck_assert_msg(llm_model_open(dir, &p, &m, &d) == 0, "%s: %s", dir, d.msg);
	return m;
}

struct llm_model *ref_open_cpu(const char *dir)
{
	return ref_open(dir, LLM_BACKEND_CPU, 0, 0);
}

struct llm_model *ref_open_kvq(const char *dir, enum llm_backend be, int kb,
			       int vb)
{
	return ref_open(dir, be, kb, vb);
}

void ref_vision_check(const char *suffix, const char *backend, float bound,
		      float *md_out, float *mx_out)
{
	char *dir = test_data_path("models/qwen2_5_vl");
	char *refp = test_data_path("models/qwen2_5_vl/reference.safetensors");
	struct llm_st_set *ref = NULL;
	struct llm_vision *v = NULL;
	const struct llm_tensor_info *tp, *tg, *te;
	char name[64];
	float *px, *want, *got;
	int32_t grid[3];
	size_t n, n_tok = 0, D, i;
	float mx = 0.0f, md = 0.0f;
	struct llm_model *m = NULL;
	struct diag d;

	diag_clear(&d);
	ck_assert_msg(llm_st_open(refp, &ref, &d) == 0, "%s", d.msg);
	ck_assert_msg(llm_vision_open(dir, &v, &d) == 0, "%s", d.msg);
	if (backend) {
		const int cuda = !strcmp(backend, "cuda");

		m = ref_open(dir, cuda ? LLM_BACKEND_CUDA : LLM_BACKEND_CPU, 0, 0);
		ck_assert(!cuda || llm_model_on_gpu(m));
		ck_assert_msg(llm_vision_use_backend(v, m, &d) == 0, "%s", d.msg);
	}
	snprintf(name, sizeof name, "pixel_values%s", suffix);
	tp = llm_st_find(ref, name);
	snprintf(name, sizeof name, "image_grid_thw%s", suffix);
	tg = llm_st_find(ref, name);
	snprintf(name, sizeof name, "image_embeds%s", suffix);
	te = llm_st_find(ref, name);
	ck_assert(tp && tg && te);
	ck_assert_uint_eq((size_t)tp->shape[1], llm_vision_patch_len(v));
	memcpy(grid, tg->data, sizeof grid);
	n = (size_t)tp->shape[0];
	D = llm_vision_n_embd(v);
	ck_assert_int_eq(llm_vision_n_tokens(v, grid, &n_tok), 0);
	ck_assert_uint_eq(n_tok, (size_t)te->shape[0]);
	ck_assert_uint_eq(D, (size_t)te->shape[1]);
	px = malloc(n * llm_vision_patch_len(v) * sizeof *px);
	want = malloc(n_tok * D * sizeof *want);
	got = malloc(n_tok * D * sizeof *got);
	ck_assert(px && want && got);
	ck_assert_int_eq(llm_tensor_to_f32(tp, px, &d), 0);
	ck_assert_int_eq(llm_tensor_to_f32(te, want, &d), 0);
	ck_assert_msg(llm_vision_encode(v, px, n, grid, got, &d) == 0, "%s", d.msg);
	for (i = 0; i < n_tok * D; i++) {
		mx = fmaxf(mx, fabsf(want[i]));
		md = fmaxf(md, fabsf(got[i] - want[i]));
	}
	ck_assert_msg(md <= bound * mx, "image%s on %s (grid %d x %d x %d): max diff "
		      "%g, max |ref| %g", suffix, backend ? backend : "the host",
		      grid[0], grid[1], grid[2], (double)md, (double)mx);
	if (md_out)
		*md_out = md;
	if (mx_out)
		*mx_out = mx;
	free(px);
	free(want);
	free(got);
	llm_vision_free(v);
	llm_model_free(m);
	llm_st_close(ref);
	free(dir);
	free(refp);
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
