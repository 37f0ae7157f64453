/* tests/inference/test_convert.c — suite convert: llm_convert (`tern
 * convert`) end to end on the bundled real model, stories260k (its
 * transformers logits and greedy ids are the reference, nobody here wrote
 * them):
 *   - a 4-bit conversion loads through the ordinary EXL3 loader, holds
 *     what quantization_config says, and on the reference sequences its
 *     mean NLL of the next token is within 6% of the NLL the reference
 *     logits give (ExLlamaV3's own 4-bit Llama-3.2-1B loses about that
 *     much perplexity, docs/exl3-format.md §10.4; a 260K model is harder),
 *     while its logits are far from equal (it really is quantized);
 *   - an interrupted job (max_layers) refuses to be overwritten, refuses a
 *     resume with other settings, resumes, and then writes exactly the
 *     bytes an uninterrupted run writes, into a directory of the same mode;
 *   - the tiny transformers fixtures of the MoE architectures (routed and
 *     shared experts) convert at 8 bits, on random calibration rows, to
 *     logits close to transformers';
 *   - models it cannot convert are refused with a clear error.
 * Calibration is small (rows of 128 tokens of the bundled corpus) to keep
 * the suite at CI speed.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "refutil.h"
#include "testutil.h"

static char *stories_dir(void)
{
	return test_data_path("../../models/stories260k");
}

static char *calibration(void)
{
	return test_data_path("../../data/calibration.txt");
}

static struct llm_convert_params params(const char *in, const char *out,
					const char *cal)
{
	struct llm_convert_params p = llm_convert_default_params();

	p.in_dir = in;
	p.out_dir = out;
	p.cal_file = cal;
	p.cal_rows = 6;
	p.cal_cols = 128;
	p.n_threads = 2;
	return p;
}

/* Mean NLL of ids[1..n) given the rows' logits (row i predicts ids[i+1]). */
static double mean_nll(const float *lg, const int32_t *ids, size_t n, size_t V)
{
	double s = 0.0;
	size_t i, v;

	for (i = 0; i + 1 < n; i++) {
		const float *r = lg + i * V;
		double mx = r[0], z = 0.0;

		for (v = 1; v < V; v++)
			mx = r[v] > mx ? r[v] : mx;
		for (v = 0; v < V; v++)
			z += exp((double)r[v] - mx);
		s += mx + log(z) - r[ids[i + 1]];
	}
	return s / (double)(n - 1);
}

static char *tmpdir(void)
{
	char *dir = strdup("/tmp/tern-convert-XXXXXX");

	ck_assert_ptr_nonnull(mkdtemp(dir));
	return dir;
}

static void rm_rf(const char *dir)
{
	char cmd[512];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_convert_4bit)
{
	char *in = stories_dir(), *cal = calibration(), *dir = tmpdir();
	char *refp = test_data_path("models/stories260k/reference.safetensors");
	char out[600], path[700];
	struct llm_convert_params p;
	struct llm_st_set *ref = NULL, *st = NULL;
	struct llm_model *m;
	struct llm_context *c = NULL;
	struct diag d;
	size_t s, V;
	double nll_q = 0.0, nll_r = 0.0, maxdiff = 0.0;

	snprintf(out, sizeof out, "%s/out", dir);
	p = params(in, out, cal);
	diag_clear(&d);
	ck_assert_msg(llm_convert(&p, &d) == 0, "%s", d.msg);
	/* the work directory is gone, the tensors are EXL3 at the bits asked */
	snprintf(path, sizeof path, "%s/convert-work", out);
	ck_assert(access(path, F_OK) != 0);
	snprintf(path, sizeof path, "%s/model.safetensors", out);
	ck_assert_msg(llm_st_open(path, &st, &d) == 0, "%s", d.msg);
	{
		const struct llm_tensor_info *t =
			llm_st_find(st, "model.layers.2.mlp.down_proj.trellis");

		ck_assert_ptr_nonnull(t);
		/* 172 -> 256 inputs, 64 -> 128 outputs, 4 bits */
		ck_assert_int_eq(t->shape[0], 16);
		ck_assert_int_eq(t->shape[1], 8);
		ck_assert_int_eq(t->shape[2], 64);
		ck_assert_ptr_nonnull(llm_st_find(st, "model.layers.2.mlp.down_proj.mul1"));
		ck_assert_ptr_null(llm_st_find(st, "model.layers.2.mlp.down_proj.weight"));
		t = llm_st_find(st, "lm_head.trellis");
		ck_assert_ptr_nonnull(t);
		ck_assert_int_eq(t->shape[2], 16 * 6);
		ck_assert_ptr_nonnull(llm_st_find(st, "model.embed_tokens.weight"));
		ck_assert_ptr_nonnull(llm_st_find(st, "model.norm.weight"));
	}
	llm_st_close(st);
	snprintf(path, sizeof path, "%s/tokenizer.json", out);
	ck_assert(access(path, R_OK) == 0);
	/* quantization_config.json with its tensor storage (§1.3) */
	{
		size_t len;
		char *qc;

		snprintf(path, sizeof path, "%s/quantization_config.json", out);
		qc = test_read_file(path, &len);
		ck_assert_ptr_nonnull(strstr(qc, "\"quant_method\": \"exl3\""));
		ck_assert_ptr_nonnull(strstr(qc, "\"model.layers.2.mlp.down_proj\": {"));
		ck_assert_ptr_nonnull(strstr(qc, "\"bits_per_weight\": 4"));
		ck_assert_ptr_nonnull(strstr(qc, "\"mul1_multiplier\": 2212286765"));
		ck_assert_ptr_nonnull(strstr(qc, "\"dtype\": \"torch.int16\""));
		free(qc);
	}

	/* against transformers' logits of the original */
	ck_assert_msg(llm_st_open(refp, &ref, &d) == 0, "%s", d.msg);
	m = ref_open_cpu(out);
	V = (size_t)llm_model_n_vocab(m);
	ck_assert_int_eq(llm_context_new(m, 512, &c, &d), 0);
	for (s = 0; s < 2; s++) {
		int32_t *ids;
		size_t n, i;
		float *lr = ref_seq(ref, s, V, &ids, &n);
		float *lq = malloc(n * V * sizeof *lq);

		llm_context_reset(c);
		ck_assert_msg(llm_context_eval(c, ids, n, LLM_LOGITS_ALL, lq, &d) == 0,
			      "%s", d.msg);
		nll_q += mean_nll(lq, ids, n, V) / 2;
		nll_r += mean_nll(lr, ids, n, V) / 2;
		for (i = 0; i < n * V; i++)
			maxdiff = fmax(maxdiff, fabs((double)lq[i] - lr[i]));
		free(ids);
		free(lr);
		free(lq);
	}
	fprintf(stderr, "convert: stories260k 4 bits: mean NLL %.4f, reference %.4f "
		"(%+.2f%%), max logit difference %.3f\n", nll_q, nll_r,
		100.0 * (nll_q / nll_r - 1.0), maxdiff);
	ck_assert_msg(nll_q < 1.06 * nll_r, "NLL %.4f against the reference's %.4f",
		      nll_q, nll_r);
	ck_assert_msg(maxdiff > 1e-2, "logits equal to the original's: not quantized?");
	llm_context_free(c);
	llm_model_free(m);
	llm_st_close(ref);
	rm_rf(dir);
	free(dir);
	free(in);
	free(cal);
	free(refp);
}
END_TEST

START_TEST(test_convert_resume)
{
	char *in = stories_dir(), *cal = calibration(), *dir = tmpdir();
	char a[600], b[600], pa[700], pb[700];
	struct llm_convert_params p;
	struct diag d;
	char *fa, *fb;
	size_t la, lb;

	snprintf(a, sizeof a, "%s/a", dir);
	snprintf(b, sizeof b, "%s/b", dir);
	diag_clear(&d);
	/* interrupted after 2 of 5 layers */
	p = params(in, a, cal);
	p.bits = 3.5;
	p.head_bits = 16;
	p.max_layers = 2;
	ck_assert_int_eq(llm_convert(&p, &d), LLM_E_CANCELLED);
	/* the unfinished job is not overwritten */
	p.max_layers = 0;
	ck_assert_int_eq(llm_convert(&p, &d), LLM_E_INVALID);
	ck_assert_msg(strstr(d.msg, "--resume") != NULL, "%s", d.msg);
	/* nor resumed with other settings, or on other calibration rows */
	p.resume = true;
	p.bits = 4.0;
	ck_assert_int_eq(llm_convert(&p, &d), LLM_E_INVALID);
	ck_assert_msg(strstr(d.msg, "bits") != NULL, "%s", d.msg);
	p.bits = 3.5;
	p.cal_file = NULL;
	ck_assert_int_eq(llm_convert(&p, &d), LLM_E_INVALID);
	ck_assert_msg(strstr(d.msg, "calibration_digest") != NULL, "%s", d.msg);
	p.cal_file = cal;
	/* resumed, one more interruption, then to the end */
	p.bits = 3.5;
	p.max_layers = 1;
	ck_assert_int_eq(llm_convert(&p, &d), LLM_E_CANCELLED);
	p.max_layers = 0;
	ck_assert_msg(llm_convert(&p, &d) == 0, "%s", d.msg);
	/* uninterrupted */
	p = params(in, b, cal);
	p.bits = 3.5;
	p.head_bits = 16;
	ck_assert_msg(llm_convert(&p, &d) == 0, "%s", d.msg);
	/* the same directory mode, as readable as the umask allows */
	{
		struct stat sa, sb;
		const mode_t um = umask(0);

		umask(um);
		ck_assert_int_eq(stat(a, &sa), 0);
		ck_assert_int_eq(stat(b, &sb), 0);
		ck_assert_int_eq(sa.st_mode & 07777, sb.st_mode & 07777);
		ck_assert_int_eq(sb.st_mode & 07777, 0777 & ~um);
	}
	snprintf(pa, sizeof pa, "%s/model.safetensors", a);
	snprintf(pb, sizeof pb, "%s/model.safetensors", b);
	fa = test_read_file(pa, &la);
	fb = test_read_file(pb, &lb);
	ck_assert_uint_eq(la, lb);
	ck_assert_msg(memcmp(fa, fb, la) == 0,
		      "the resumed conversion differs from the uninterrupted one");
	/* 3.5 bits: some groups at 4, the rest at 3, the head kept (tied) */
	fa[8 + (unsigned char)fa[0] + 256 * (unsigned char)fa[1]] = '\0'; /* header */
	ck_assert_ptr_nonnull(strstr(fa + 8, "\"model.layers.0.mlp.down_proj.trellis\""));
	ck_assert_ptr_null(strstr(fa + 8, "lm_head"));
	free(fa);
	free(fb);
	snprintf(pa, sizeof pa, "%s/config.json", a);
	fa = test_read_file(pa, &la);
	ck_assert_ptr_nonnull(strstr(fa, "\"quant_method\": \"exl3\""));
	{
		/* the groups' bits average at most the target, within one
		 * group's share of it */
		const char *bp = strstr(fa, "\"bits\": ");
		double bits = 0.0;

		ck_assert_ptr_nonnull(bp);
		ck_assert_int_eq(sscanf(bp + 8, "%lf", &bits), 1);
		ck_assert_msg(bits <= 3.5 && bits > 3.4, "average bits %g", bits);
	}
	free(fa);
	rm_rf(dir);
	free(dir);
	free(in);
	free(cal);
}
END_TEST

START_TEST(test_convert_refused)
{
	char *cal = calibration(), *dir = tmpdir();
	char *moe = test_data_path("models/mixtral");
	char *xl = test_data_path("models/exl3-llama3");
	char *in = stories_dir();
	char out[600];
	struct llm_convert_params p;
	struct diag d;

	snprintf(out, sizeof out, "%s/out", dir);
	diag_clear(&d);
	/* a text needs the model's tokenizer (the fixture has none) */
	p = params(moe, out, cal);
	ck_assert_int_eq(llm_convert(&p, &d), LLM_E_IO);
	ck_assert_msg(strstr(d.msg, "--cal random") != NULL, "%s", d.msg);
	p = params(xl, out, cal);
	ck_assert_int_eq(llm_convert(&p, &d), LLM_E_UNSUPPORTED);
	ck_assert_msg(strstr(d.msg, "already EXL3") != NULL, "%s", d.msg);
	p = params("/nonexistent/model", out, cal);
	ck_assert_int_eq(llm_convert(&p, &d), LLM_E_IO);
	p = params(in, out, cal);
	p.bits = 0.5;
	ck_assert_int_eq(llm_convert(&p, &d), LLM_E_INVALID);
	p.bits = 4.0;
	p.codebook = "e8p";
	ck_assert_int_eq(llm_convert(&p, &d), LLM_E_INVALID);
	p.codebook = "mul1";
	p.out_dir = in;
	ck_assert_int_eq(llm_convert(&p, &d), LLM_E_INVALID);
	p.out_dir = out;
	p.resume = true; /* nothing to resume */
	ck_assert_int_eq(llm_convert(&p, &d), LLM_E_INVALID);
	ck_assert_msg(strstr(d.msg, "no unfinished") != NULL, "%s", d.msg);
	p.resume = false;
	{
		/* the source named another way is still the source */
		char same[700];

		snprintf(same, sizeof same, "%s/", in);
		p.out_dir = same;
		ck_assert_int_eq(llm_convert(&p, &d), LLM_E_INVALID);
		p.out_dir = out;
	}
	p.cal_file = "/nonexistent/calibration.txt";
	ck_assert_int_eq(llm_convert(&p, &d), LLM_E_IO);
	ck_assert_msg(strstr(d.msg, "calibration") != NULL, "%s", d.msg);
	rm_rf(dir);
	free(dir);
	free(cal);
	free(moe);
	free(xl);
	free(in);
}
END_TEST

/* The tiny transformers fixtures (no tokenizer: random calibration rows)
 * at 8 bits: every linear, routed and shared experts included, quantized
 * (the source's weights are gone from the file), and the logits of the
 * reference sequences close to transformers' (8-bit trellis error is about
 * 2^-8 of a weight's scale; the bound is 5% of each row's largest logit,
 * against 100% for a broken layer). */
START_TEST(test_convert_fixtures)
{
	static const char *const archs[] = { "qwen2moe", "mixtral" };
	const char *arch = archs[_i];
	char *dir = tmpdir(), out[600], path[700];
	struct llm_st_set *ref = NULL, *st = NULL;
	char *in = ref_fixture_open(arch, &ref);
	struct llm_convert_params p;
	struct llm_model *m;
	struct llm_context *c = NULL;
	struct diag d;
	size_t V, s, i, q;

	snprintf(out, sizeof out, "%s/out", dir);
	p = params(in, out, NULL);
	p.bits = 8.0;
	p.head_bits = 8;
	p.cal_rows = 4;
	p.cal_cols = 64;
	diag_clear(&d);
	ck_assert_msg(llm_convert(&p, &d) == 0, "%s: %s", arch, d.msg);
	snprintf(path, sizeof path, "%s/model.safetensors", out);
	ck_assert_msg(llm_st_open(path, &st, &d) == 0, "%s", d.msg);
	for (q = 0; q < llm_st_count(st); q++) {
		const char *name = llm_st_at(st, q)->name;

		/* no linear of the decoder is left in float but the routers */
		if (strstr(name, "_proj.weight") || strstr(name, ".w1.weight") ||
		    strstr(name, ".w2.weight") || strstr(name, ".w3.weight"))
			ck_abort_msg("%s: %s left unquantized", arch, name);
	}
	if (!strcmp(arch, "qwen2moe"))
		ck_assert_ptr_nonnull(llm_st_find(st,
			"model.layers.1.mlp.shared_expert.down_proj.trellis"));
	if (!strcmp(arch, "mixtral"))
		ck_assert_ptr_nonnull(llm_st_find(st,
			"model.layers.0.block_sparse_moe.experts.3.w2.trellis"));
	llm_st_close(st);
	m = ref_open_cpu(out);
	V = (size_t)llm_model_n_vocab(m);
	ck_assert_int_eq(llm_context_new(m, 256, &c, &d), 0);
	for (s = 0; s < 2; s++) {
		int32_t *ids;
		size_t n;
		float *lr = ref_seq(ref, s, V, &ids, &n);
		float *lq = malloc(n * V * sizeof *lq);

		llm_context_reset(c);
		ck_assert_msg(llm_context_eval(c, ids, n, LLM_LOGITS_ALL, lq, &d) == 0,
			      "%s", d.msg);
		for (i = 0; i < n; i++) {
			double mx = 0.0, md = 0.0;
			size_t v;

			for (v = 0; v < V; v++) {
				mx = fmax(mx, fabs((double)lr[i * V + v]));
				md = fmax(md, fabs((double)lq[i * V + v] - lr[i * V + v]));
			}
			ck_assert_msg(md <= 0.05 * mx,
				      "%s seq %zu row %zu: logits %.4f from transformers' "
				      "(row max %.4f)", arch, s, i, md, mx);
		}
		free(ids);
		free(lr);
		free(lq);
	}
	llm_context_free(c);
	llm_model_free(m);
	llm_st_close(ref);
	rm_rf(dir);
	free(dir);
	free(in);
}
END_TEST

Suite *convert_suite(void)
{
	Suite *s = suite_create("convert");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_convert_refused);
	tcase_add_test(tc, test_convert_4bit);
	tcase_add_test(tc, test_convert_resume);
	tcase_add_loop_test(tc, test_convert_fixtures, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}
