/* tests/inference/test_exl3_model.c — suite exl3_model: EXL3 model loading.
 *
 *   - llm_exl3_load on small safetensors files written here: a valid group
 *     loads (each codebook flag, legacy su/sv sign vectors give the same
 *     layer as the equivalent +-1 suh/svh), and every malformed group
 *     (trellis dtype/shape/K, scale lengths, missing scales, both codebook
 *     flags, a non-scalar flag, bias length, head bits) fails with
 *     LLM_E_FORMAT naming the tensor;
 *   - the synthetic EXL3 Llama-3 (tests/data/models/exl3-llama3: random
 *     trellis tiles, K = 1..8, all three codebooks, lm_head 6-bit MUL1)
 *     against transformers' float32 logits computed on the weights
 *     ExLlamaV3's kernels decode: prefill with all logits and token by
 *     token through the KV cache, max |diff| <= 1e-3 * max |ref| per row,
 *     then the 16 greedy tokens of greedy.2.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inference/exl3_impl.h"
#include "inference/llm.h"
#include "inference/model_impl.h"
#include "inference/safetensors_impl.h"
#include "refutil.h"
#include "testutil.h"

/* ---- writing small safetensors files ------------------------------------ */

/* A fresh temporary file holding the N tensors T; free() the path. */
static char *write_st(const struct ref_st_tensor *t, size_t n)
{
	char tmpl[] = "/tmp/tern-exl3-XXXXXX.safetensors";
	char *path;
	int fd;

	fd = mkstemps(tmpl, 12);
	ck_assert_int_ge(fd, 0);
	close(fd);
	path = strdup(tmpl);
	ref_write_st(path, t, n);
	return path;
}

/* A layer with 200 inputs, 100 outputs: padded 256 x 128, K = 2. */
#define KP 256
#define NP 128
#define KB 2

static int16_t g_tr[(KP / 16) * (NP / 16) * 16 * KB];
static uint16_t g_suh[KP], g_svh[NP], g_bias[NP];
static int16_t g_su[KP / 16], g_sv[NP / 16];
static int32_t g_flag = -2082680531; /* 0x83DCD12D */

static void fill(void)
{
	uint32_t s = 12345;
	size_t i;

	for (i = 0; i < sizeof g_tr / 2; i++) {
		s = s * 1103515245u + 12345u;
		g_tr[i] = (int16_t)(s >> 16);
	}
	memset(g_su, 0, sizeof g_su);
	memset(g_sv, 0, sizeof g_sv);
	for (i = 0; i < KP; i++) {
		int neg = (i * 7 + 3) % 5 < 2;

		g_suh[i] = neg ? 0xBC00 : 0x3C00;
		if (neg)
			g_su[i / 16] = (int16_t)(g_su[i / 16] | (1 << (i % 16)));
	}
	for (i = 0; i < NP; i++) {
		int neg = (i * 3 + 1) % 4 == 0;

		g_svh[i] = neg ? 0xBC00 : 0x3C00;
		if (neg)
			g_sv[i / 16] = (int16_t)(g_sv[i / 16] | (1 << (i % 16)));
		g_bias[i] = 0x3800; /* 0.5 */
	}
}

#define L "blk.lin"
static const struct ref_st_tensor T_TR = { L ".trellis", "I16", 3, { KP / 16, NP / 16, 16 * KB },
				 g_tr, sizeof g_tr };
static const struct ref_st_tensor T_SUH = { L ".suh", "F16", 1, { KP }, g_suh, sizeof g_suh };
static const struct ref_st_tensor T_SVH = { L ".svh", "F16", 1, { NP }, g_svh, sizeof g_svh };

static struct gpu *open_cpu(void)
{
	struct gpu_params p = gpu_default_params();
	struct gpu *g = NULL;

	p.n_threads = 2;
	ck_assert_int_eq(gpu_open(GPU_KIND_CPU, &p, &g, NULL), 0);
	return g;
}

/* Load group T[n] as layer "blk.lin" (200 -> 100); returns the code, the
 * message in d, the weight (or NULL) in *w. */
static int try_load(struct gpu *g, const struct ref_st_tensor *t, size_t n, int bits,
		    struct gpu_exl3_weight **w, struct diag *d)
{
	char *path;
	struct llm_st_set *st = NULL;
	uint64_t np = 0, nb = 0;
	int rc;

	fill();
	path = write_st(t, n);
	diag_clear(d);
	ck_assert_msg(llm_st_open(path, &st, d) == 0, "%s", d->msg);
	ck_assert(llm_exl3_has(st, L));
	ck_assert(!llm_exl3_has(st, "blk.other"));
	rc = llm_exl3_load(g, st, L, 200, 100, bits, w, &np, &nb, d);
	if (rc == 0) {
		ck_assert_uint_eq(np, 200 * 100);
		ck_assert_uint_ge(nb, sizeof g_tr + sizeof g_suh / 16);
	} else {
		ck_assert_ptr_null(*w);
	}
	llm_st_close(st);
	unlink(path);
	free(path);
	return rc;
}

static void expect_fail(struct gpu *g, const struct ref_st_tensor *t, size_t n, int bits,
			const char *needle1, const char *needle2)
{
	struct gpu_exl3_weight *w = NULL;
	struct diag d;
	int rc = try_load(g, t, n, bits, &w, &d);

	ck_assert_msg(rc == LLM_E_FORMAT, "expected LLM_E_FORMAT, got %d (%s)", rc,
		      d.msg);
	ck_assert_msg(strstr(d.msg, needle1) != NULL, "'%s' not in: %s", needle1,
		      d.msg);
	if (needle2)
		ck_assert_msg(strstr(d.msg, needle2) != NULL, "'%s' not in: %s",
			      needle2, d.msg);
}

/* y [2, 100] of the layer for a fixed x [2, 200]. */
static void run(struct gpu *g, const struct gpu_exl3_weight *w, float *y)
{
	struct gpu_buf *bx = NULL, *by = NULL;
	float x[2 * 200];
	size_t i;

	for (i = 0; i < 2 * 200; i++)
		x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
	ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_F32, 400, &bx, NULL), 0);
	ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_F32, 200, &by, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bx, 0, x, 400, NULL), 0);
	ck_assert_int_eq(llm_linear(g, by, bx, NULL, w, NULL, 2, 200, 100, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(by, 0, y, 200, NULL), 0);
	gpu_buf_free(bx);
	gpu_buf_free(by);
}

START_TEST(test_load_valid)
{
	struct gpu *g = open_cpu();
	struct gpu_exl3_weight *w = NULL, *wl = NULL, *wb = NULL, *wm = NULL;
	struct ref_st_tensor t[5];
	float y[200], yl[200], yb[200], ym[200];
	struct diag d;
	size_t i;
	int diff = 0;

	t[0] = T_TR;
	t[1] = T_SUH;
	t[2] = T_SVH;
	ck_assert_msg(try_load(g, t, 3, 0, &w, &d) == 0, "%s", d.msg);
	ck_assert_int_eq(gpu_exl3_weight_bits(w), KB);
	ck_assert_uint_eq(gpu_exl3_weight_k(w), KP);
	ck_assert_uint_eq(gpu_exl3_weight_n(w), NP);
	run(g, w, y);
	/* legacy sign vectors: the same layer */
	t[1] = (struct ref_st_tensor){ L ".su", "I16", 1, { KP / 16 }, g_su, sizeof g_su };
	t[2] = (struct ref_st_tensor){ L ".sv", "I16", 1, { NP / 16 }, g_sv, sizeof g_sv };
	ck_assert_msg(try_load(g, t, 3, KB, &wl, &d) == 0, "%s", d.msg);
	run(g, wl, yl);
	ck_assert(memcmp(y, yl, sizeof y) == 0);
	/* a bias of 0.5 */
	t[1] = T_SUH;
	t[2] = T_SVH;
	t[3] = (struct ref_st_tensor){ L ".bias", "F16", 1, { NP }, g_bias, sizeof g_bias };
	ck_assert_msg(try_load(g, t, 4, 0, &wb, &d) == 0, "%s", d.msg);
	run(g, wb, yb);
	for (i = 0; i < 200; i++)
		ck_assert_msg(fabsf(yb[i] - (y[i] + 0.5f)) <= 1e-5f * (fabsf(y[i]) + 1),
			      "bias at %zu", i);
	/* the mul1 flag selects another codebook: different outputs */
	t[3] = (struct ref_st_tensor){ L ".mul1", "I32", 0, { 0 }, &g_flag, 4 };
	ck_assert_msg(try_load(g, t, 4, 0, &wm, &d) == 0, "%s", d.msg);
	run(g, wm, ym);
	for (i = 0; i < 200; i++)
		diff += ym[i] != y[i];
	ck_assert_int_gt(diff, 150);
	gpu_exl3_weight_free(w);
	gpu_exl3_weight_free(wl);
	gpu_exl3_weight_free(wb);
	gpu_exl3_weight_free(wm);
	gpu_close(g);
}
END_TEST

START_TEST(test_load_invalid)
{
	struct gpu *g = open_cpu();
	struct ref_st_tensor t[5];
	static int16_t big[(KP / 16) * (NP / 16) * 16 * 9];

	t[0] = T_TR;
	t[1] = T_SUH;
	t[2] = T_SVH;
	/* trellis dtype */
	t[0].dtype = "F16";
	expect_fail(g, t, 3, 0, L ".trellis", "I16");
	/* K = 9 */
	t[0] = (struct ref_st_tensor){ L ".trellis", "I16", 3, { KP / 16, NP / 16, 144 }, big,
			    sizeof big };
	expect_fail(g, t, 3, 0, L ".trellis", "1..8");
	/* last dim not a multiple of 16 */
	t[0] = (struct ref_st_tensor){ L ".trellis", "I16", 3, { KP / 16, NP / 16, 20 }, big,
			    (size_t)(KP / 16) * (NP / 16) * 20 * 2 };
	expect_fail(g, t, 3, 0, L ".trellis", "16*K");
	/* tile grid does not match the layer (unpadded in_features) */
	t[0] = (struct ref_st_tensor){ L ".trellis", "I16", 3, { 200 / 8, NP / 16, 16 * KB },
			    big, (size_t)25 * (NP / 16) * 16 * KB * 2 };
	expect_fail(g, t, 3, 0, L ".trellis", "[16, 8, 16*K]");
	t[0] = T_TR;
	/* head bits */
	expect_fail(g, t, 3, 6, L ".trellis", "head_bits");
	/* suh length */
	t[1].shape[0] = 200;
	t[1].bytes = 400;
	expect_fail(g, t, 3, 0, L ".suh", "[256]");
	t[1] = T_SUH;
	/* svh dtype */
	t[2].dtype = "BF16";
	expect_fail(g, t, 3, 0, L ".svh", "F16");
	t[2] = T_SVH;
	/* svh missing */
	expect_fail(g, t, 2, 0, L ".svh", "missing");
	/* both codebook flags */
	t[3] = (struct ref_st_tensor){ L ".mcg", "I32", 0, { 0 }, &g_flag, 4 };
	t[4] = (struct ref_st_tensor){ L ".mul1", "I32", 0, { 0 }, &g_flag, 4 };
	expect_fail(g, t, 5, 0, L, "both");
	/* a flag that is not a scalar */
	t[3] = (struct ref_st_tensor){ L ".mcg", "I32", 1, { 1 }, &g_flag, 4 };
	expect_fail(g, t, 4, 0, L ".mcg", "scalar");
	/* bias length */
	t[3] = (struct ref_st_tensor){ L ".bias", "F16", 1, { 100 }, g_bias, 200 };
	expect_fail(g, t, 4, 0, L ".bias", "[128]");
	gpu_close(g);
}
END_TEST

/* ---- the synthetic EXL3 Llama-3 against transformers ---------------------- */

static void *ref_copy(struct llm_st_set *ref, const char *name,
		      enum llm_dtype dt, size_t *n)
{
	const struct llm_tensor_info *t = llm_st_find(ref, name);
	void *v;

	ck_assert_msg(t != NULL, "reference tensor %s missing", name);
	ck_assert(t->dtype == dt);
	v = malloc((size_t)t->n_bytes + 4);
	memcpy(v, t->data, (size_t)t->n_bytes);
	*n = (size_t)t->n_elems;
	return v;
}

START_TEST(test_exl3_llama3)
{
	char *dir = test_data_path("models/exl3-llama3");
	char *refp = test_data_path("models/exl3-llama3/reference.safetensors");
	struct llm_model_params p = llm_model_default_params();
	struct llm_st_set *ref = NULL;
	struct llm_model *m = NULL;
	struct llm_context *c = NULL;
	struct diag d;
	size_t V, s, n, nr, ng, i;
	char name[64], what[96];

	diag_clear(&d);
	ck_assert_msg(llm_st_open(refp, &ref, &d) == 0, "%s", d.msg);
	p.backend = LLM_BACKEND_CPU;
	p.n_threads = 3;
	ck_assert_msg(llm_model_open(dir, &p, &m, &d) == 0, "%s: %s", dir, d.msg);
	V = (size_t)llm_model_n_vocab(m);
	ck_assert_uint_eq(V, 1024);
	ck_assert_int_eq(llm_context_new(m, 64, &c, &d), 0);
	for (s = 0; s < 3; s++) {
		int32_t *ids;
		float *ref_lg, *lg;

		snprintf(name, sizeof name, "input_ids.%zu", s);
		ids = ref_copy(ref, name, LLM_DTYPE_I32, &n);
		snprintf(name, sizeof name, "logits.%zu", s);
		ref_lg = ref_copy(ref, name, LLM_DTYPE_F32, &nr);
		ck_assert_uint_eq(nr, n * V);
		lg = malloc(n * V * sizeof *lg);
		/* prefill, all logits */
		llm_context_reset(c);
		ck_assert_msg(llm_context_eval(c, ids, n, LLM_LOGITS_ALL, lg, &d) == 0,
			      "%s", d.msg);
		snprintf(what, sizeof what, "exl3-llama3 seq %zu prefill", s);
		ref_expect_rows(what, lg, ref_lg, n, V);
		/* incremental */
		llm_context_reset(c);
		for (i = 0; i < n; i++)
			ck_assert_msg(llm_context_eval(c, ids + i, 1, LLM_LOGITS_LAST,
						       lg + i * V, &d) == 0, "%s", d.msg);
		snprintf(what, sizeof what, "exl3-llama3 seq %zu incremental", s);
		ref_expect_rows(what, lg, ref_lg, n, V);
		if (s == 2) {
			int32_t *gr = ref_copy(ref, "greedy.2", LLM_DTYPE_I32, &ng);

			ref_check_greedy(c, "exl3-llama3 greedy.2", ids, n, gr, ng, V, 0);
			free(gr);
		}
		free(ids);
		free(ref_lg);
		free(lg);
	}
	llm_context_free(c);
	llm_model_free(m);
	llm_st_close(ref);
	free(dir);
	free(refp);
}
END_TEST

Suite *exl3_model_suite(void)
{
	Suite *s = suite_create("exl3_model");
	TCase *tc = tcase_create("exl3_model");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_load_valid);
	tcase_add_test(tc, test_load_invalid);
	tcase_add_test(tc, test_exl3_llama3);
	suite_add_tcase(s, tc);
	return s;
}
