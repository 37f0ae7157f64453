/* tests/inference/test_vision.c — suite `vision`: the Qwen2.5-VL vision
 * tower on the host (inference/vision.c) against transformers.
 *
 * tests/data/models/qwen2_5_vl is a tiny random Qwen2.5-VL (vision width
 * 64, 4 blocks, blocks 1 and 3 with full attention, windows of 2 x 2
 * merged tokens); its reference.safetensors holds the image processor's
 * pixel_values and image_grid_thw for two images and the image_embeds
 * transformers' vision tower makes of them (float32, eager attention).
 * picture.png gives a grid of 1 x 8 x 12 patches (4 x 6 merged tokens:
 * whole windows, plus the empty padded row and column of windows the
 * reference skips), skimage-chelsea.png 1 x 22 x 32 (11 x 16 merged
 * tokens: the last row of windows cut in half).  Measured here: max
 * |diff| 3.8e-6 and 3.5e-6 against max |ref| 2.6 and 2.8; the bound is
 * 1e-4 x max |ref|.  Also: bad grids and a model without a vision tower
 * are refused with a message.
 *
 * Image jobs in the engine: the reference prompts with their image
 * embeddings as a job give transformers' logits for the prompt's last
 * position (the fixture's logits were made with each token's index as its
 * position on all three MRoPE axes, so the job passes those), and not the
 * logits of the same ids without the embeddings; two image jobs with the
 * same ids share no cache pages.  llm_vision_rope_index gives the 3-D
 * positions of transformers' get_rope_index for the fixture's prompt, as
 * worked out by hand from its definition.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inference/engine_impl.h"
#include "inference/llm.h"
#include "inference/safetensors_impl.h"
#include "refutil.h"
#include "testutil.h"

/* BACKEND: NULL for the host path, else the model opened on it whose ops
 * run the tower (llm_vision_use_backend). */
static void check_image_on(const char *suffix, const char *backend)
{
	float md, mx;

	ref_vision_check(suffix, backend, 1e-4f, &md, &mx);
	if (getenv("TERN_TEST_VERBOSE"))
		fprintf(stderr, "vision image%s on %s: max diff %g, max |ref| %g\n",
			suffix, backend ? backend : "the host", (double)md, (double)mx);
}

static void check_image(const char *suffix) { check_image_on(suffix, NULL); }

START_TEST(test_picture) { check_image(""); }
END_TEST

START_TEST(test_photo) { check_image(".photo"); }
END_TEST

/* The same through the CPU backend's ops (the path a GPU takes: windows
 * as sequences of a paged pool, MRoPE for the 2-D angles), against the
 * same reference and bound. */
START_TEST(test_backend)
{
	check_image_on("", "cpu");
	check_image_on(".photo", "cpu");
}
END_TEST

START_TEST(test_refused)
{
	char *dir = test_data_path("models/qwen2_5_vl");
	char *text_only = test_data_path("models/qwen2");
	struct llm_vision *v = NULL;
	float px[16] = { 0 }, out[16];
	const int32_t odd[3] = { 1, 3, 4 }, zero[3] = { 0, 2, 2 }, ok[3] = { 1, 2, 2 };
	size_t n;
	struct diag d;

	diag_clear(&d);
	ck_assert_int_eq(llm_vision_open(text_only, &v, &d), LLM_E_UNSUPPORTED);
	ck_assert_ptr_null(v);
	ck_assert_msg(strstr(d.msg, "vision") != NULL, "%s", d.msg);
	diag_clear(&d);
	ck_assert_msg(llm_vision_open(dir, &v, &d) == 0, "%s", d.msg);
	ck_assert_int_eq(llm_vision_n_tokens(v, odd, &n), LLM_E_INVALID);
	ck_assert_int_eq(llm_vision_n_tokens(v, zero, &n), LLM_E_INVALID);
	ck_assert_int_eq(llm_vision_encode(v, px, 3, odd, out, &d), LLM_E_INVALID);
	/* 4 patches claimed for a 1 x 2 x 2 grid, 5 given */
	ck_assert_int_eq(llm_vision_encode(v, px, 5, ok, out, &d), LLM_E_INVALID);
	ck_assert_msg(strstr(d.msg, "5 patches") != NULL, "%s", d.msg);
	llm_vision_free(v);
	free(dir);
	free(text_only);
}
END_TEST

/* The engine's rows of logits as a job samples them (test hook). */
struct hook {
	float *last; /* the first row seen: the prompt's last position */
	size_t V;
	int rows;
};

static void on_logits(struct llm_job *job, const float *lg, size_t V, void *user)
{
	struct hook *h = user;

	(void)job;
	if (h->rows++ == 0)
		memcpy(h->last, lg, V * sizeof *lg);
}

/* Run PROMPT (with EMBD rows, 1-D MRoPE positions) as a job of E; the
 * prompt's last-row logits into OUT. */
static void run_image_job(struct llm_engine *e, const int32_t *ids, size_t n,
			  const float *embd, size_t n_embd, float *out)
{
	struct llm_job_params jp = llm_job_default_params();
	struct llm_sampler_params sp = llm_sampler_default_params();
	struct hook h = { out, e->n_vocab, 0 };
	struct llm_job *j = NULL;
	int32_t *mpos = malloc(3 * n * sizeof *mpos);
	struct diag d;
	size_t i;

	for (i = 0; i < n; i++)
		mpos[i] = mpos[n + i] = mpos[2 * n + i] = (int32_t)i;
	sp.temperature = 0.0f;
	jp.prompt = ids;
	jp.n_prompt = n;
	jp.sampler = &sp;
	jp.max_tokens = 3;
	jp.ignore_eos = true;
	jp.embd = embd;
	jp.n_embd = n_embd;
	jp.mpos = embd ? mpos : NULL;
	jp.mpos_next = (int64_t)n;
	e->logits_hook = on_logits;
	e->logits_hook_user = &h;
	diag_clear(&d);
	ck_assert_msg(llm_job_submit(e, &jp, &j, &d) == 0, "%s", d.msg);
	while (llm_engine_has_work(e))
		ck_assert_msg(llm_engine_step(e, &d) >= 0, "%s", d.msg);
	ck_assert_int_eq(llm_job_finish_reason(j), LLM_FINISH_MAX_TOKENS);
	ck_assert_int_eq(h.rows, 3);
	llm_job_free(j);
	e->logits_hook = NULL;
	free(mpos);
}

static float max_rel(const float *a, const float *b, size_t n)
{
	float mx = 0.0f, md = 0.0f;
	size_t i;

	for (i = 0; i < n; i++) {
		mx = fmaxf(mx, fabsf(b[i]));
		md = fmaxf(md, fabsf(a[i] - b[i]));
	}
	return md / mx;
}

START_TEST(test_engine_image)
{
	char *dir = test_data_path("models/qwen2_5_vl");
	char *refp = test_data_path("models/qwen2_5_vl/reference.safetensors");
	struct llm_engine_params ep = llm_engine_default_params();
	struct llm_st_set *ref = NULL;
	struct llm_model *m;
	struct llm_engine *e = NULL;
	struct diag d;
	const char *const sfx[2] = { "", ".photo" };
	int s;

	diag_clear(&d);
	ck_assert_msg(llm_st_open(refp, &ref, &d) == 0, "%s", d.msg);
	m = ref_open_cpu(dir);
	ep.n_ctx = 256;
	ep.n_slots = 2;
	ck_assert_msg(llm_engine_new(m, NULL, &ep, NULL, &e, &d) == 0, "%s", d.msg);
	for (s = 0; s < 2; s++) {
		char name[32];
		int32_t *ids;
		float *emb, *lg, *got, *plain;
		size_t n, ne, nl, V = e->n_vocab, k = 0, i;

		snprintf(name, sizeof name, "input_ids%s", sfx[s]);
		ids = ref_ids(ref, name, &n);
		snprintf(name, sizeof name, "image_embeds%s", sfx[s]);
		emb = ref_f32(ref, name, &ne);
		snprintf(name, sizeof name, "logits%s", sfx[s]);
		lg = ref_f32(ref, name, &nl);
		for (i = 0; i < n; i++)
			k += ids[i] == 512;
		ck_assert_uint_eq(k * 128, ne);
		got = malloc(V * sizeof *got);
		plain = malloc(V * sizeof *plain);
		/* twice: the second job must not take the first's pages */
		for (i = 0; i < 2; i++) {
			run_image_job(e, ids, n, emb, k, got);
			ck_assert_msg(max_rel(got, lg + (n - 1) * V, V) <= 1e-3f,
				      "image%s, run %zu: last row %g of max |ref| off", sfx[s],
				      i, (double)max_rel(got, lg + (n - 1) * V, V));
		}
		/* the image matters: the ids alone give other logits */
		run_image_job(e, ids, n, NULL, 0, plain);
		ck_assert_msg(max_rel(plain, lg + (n - 1) * V, V) > 1e-2f,
			      "image%s: the embeddings changed nothing", sfx[s]);
		/* refused: embeddings that do not match the image tokens */
		{
			struct llm_job_params jp = llm_job_default_params();
			struct llm_job *j = NULL;

			jp.prompt = ids;
			jp.n_prompt = n;
			jp.embd = emb;
			jp.n_embd = k - 1;
			ck_assert_int_eq(llm_job_submit(e, &jp, &j, &d), LLM_E_INVALID);
			ck_assert_msg(strstr(d.msg, "image tokens") != NULL, "%s", d.msg);
		}
		free(ids);
		free(emb);
		free(lg);
		free(got);
		free(plain);
	}
	llm_engine_free(e);
	llm_model_free(m);
	/* a text-only model takes no embeddings */
	{
		char *tdir = test_data_path("models/qwen2");
		struct llm_job_params jp = llm_job_default_params();
		struct llm_job *j = NULL;
		const int32_t ids[2] = { 5, 6 };
		const float row[128] = { 0 };

		m = ref_open_cpu(tdir);
		ck_assert_int_eq(llm_engine_new(m, NULL, &ep, NULL, &e, &d), 0);
		jp.prompt = ids;
		jp.n_prompt = 2;
		jp.embd = row;
		jp.n_embd = 1;
		ck_assert_int_eq(llm_job_submit(e, &jp, &j, &d), LLM_E_INVALID);
		ck_assert_msg(strstr(d.msg, "vision") != NULL, "%s", d.msg);
		llm_engine_free(e);
		llm_model_free(m);
		free(tdir);
	}
	llm_st_close(ref);
	free(dir);
	free(refp);
}
END_TEST

START_TEST(test_rope_index)
{
	char *dir = test_data_path("models/qwen2_5_vl");
	struct llm_vision *v = NULL;
	struct diag d;
	int32_t ids[31], mpos[3 * 31];
	const int32_t grid[1][3] = { { 1, 8, 12 } };
	const int32_t bad[1][3] = { { 1, 8, 10 } };
	int64_t next = -1;
	size_t i;

	/* the fixture's prompt: 5 6 <vision_start> <image> x 24 <vision_end>
	 * 7 8 9, the image 8 x 12 patches = 4 x 6 merged tokens */
	ids[0] = 5;
	ids[1] = 6;
	ids[2] = 514;
	for (i = 3; i < 27; i++)
		ids[i] = 512;
	ids[27] = 515;
	ids[28] = 7;
	ids[29] = 8;
	ids[30] = 9;
	diag_clear(&d);
	ck_assert_msg(llm_vision_open(dir, &v, &d) == 0, "%s", d.msg);
	ck_assert_msg(llm_vision_rope_index(v, ids, 31, 512, grid, 1, mpos, &next, &d) == 0,
		      "%s", d.msg);
	/* get_rope_index by hand: text 0, 1, 2; the image at (3, 3 + row,
	 * 3 + column); the text after it from 3 + max(4, 6) = 9 */
	for (i = 0; i < 3; i++)
		ck_assert(mpos[i] == (int32_t)i && mpos[31 + i] == (int32_t)i &&
			  mpos[62 + i] == (int32_t)i);
	for (i = 3; i < 27; i++) {
		const int r = (int)(i - 3) / 6, c = (int)(i - 3) % 6;

		ck_assert_int_eq(mpos[i], 3);
		ck_assert_int_eq(mpos[31 + i], 3 + r);
		ck_assert_int_eq(mpos[62 + i], 3 + c);
	}
	for (i = 27; i < 31; i++)
		ck_assert(mpos[i] == (int32_t)i - 18 && mpos[31 + i] == (int32_t)i - 18 &&
			  mpos[62 + i] == (int32_t)i - 18);
	ck_assert_int_eq(next, 13);
	/* a grid that does not match the run of image tokens */
	ck_assert_int_eq(llm_vision_rope_index(v, ids, 31, 512, bad, 1, mpos, &next, &d),
			 LLM_E_INVALID);
	ck_assert_int_eq(llm_vision_rope_index(v, ids, 31, 512, grid, 0, mpos, &next, &d),
			 LLM_E_INVALID);
	llm_vision_free(v);
	free(dir);
}
END_TEST

Suite *vision_suite(void)
{
	Suite *s = suite_create("vision");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_picture);
	tcase_add_test(tc, test_photo);
	tcase_add_test(tc, test_backend);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_engine_image);
	tcase_add_test(tc, test_rope_index);
	suite_add_tcase(s, tc);
	return s;
}
