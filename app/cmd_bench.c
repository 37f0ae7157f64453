/* app/cmd_bench.c — `tern bench`: prompt-processing and generation speed
 * of a model on a backend (figures for docs/PERFORMANCE.md).
 *
 * Prompt processing: one prefill of --prompt random ids (fixed seed, ids
 * >= 3 to avoid special tokens), logits of the last row only, as a real
 * prompt is evaluated.  Generation: --gen single-token steps after it, each
 * returning one row of logits (sampling is not timed).  Each phase runs
 * --reps times after one warm-up; the best time is reported (least
 * disturbed by other load).  Never exits.
 */
#include "config.h"

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "common/clock.h"
#include "inference/llm.h"

void app_help_bench(FILE *out)
{
	fprintf(out,
		"Usage: tern bench [-m MODEL] [--prompt N] [--gen N] [-t THREADS]\n"
		"\n"
		"Measure prompt processing (one prefill of N random ids) and generation\n"
		"(N single-token steps) in tokens per second.\n"
		"\n"
		"Options:\n"
		"  -m, --model DIR      model directory (default: the bundled stories260k)\n"
		"  -p, --prompt N       prompt length (default 128)\n"
		"  -g, --gen N          generated tokens (default 64)\n"
		"  -r, --reps N         timed repetitions, best reported (default 3)\n"
		"  -t, --threads N      CPU threads (default: all cores)\n"
		"  -b, --backend NAME   auto, cpu or cuda (default auto)\n"
		"  -h, --help           show this help\n");
}

static int parse_count(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (end == s || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int app_cmd_bench(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "prompt", required_argument, NULL, 'p' },
		{ "gen", required_argument, NULL, 'g' },
		{ "reps", required_argument, NULL, 'r' },
		{ "threads", required_argument, NULL, 't' },
		{ "backend", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct llm_model_params mp = llm_model_default_params();
	const char *model = NULL;
	long n_prompt = 128, n_gen = 64, reps = 3, v;
	struct llm_model *m = NULL;
	struct llm_context *ctx = NULL;
	int32_t *ids = NULL;
	float *lg = NULL;
	double best_pp = 1e30, best_tg = 1e30;
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	size_t V, i;
	long r;
	int c, rc, status = APP_STATUS_ERROR;
	struct diag d;

	optind = 0;
	opterr = 1;
	while ((c = getopt_long(argc, argv, "m:p:g:r:t:b:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': model = optarg; break;
		case 'p':
		case 'g':
		case 'r':
		case 't':
			if (parse_count(optarg, c == 'r' ? 1 : 0, 1 << 20, &v) != 0) {
				app_error("bench: bad number '%s'", optarg);
				return APP_STATUS_USAGE;
			}
			if (c == 'p')
				n_prompt = v;
			else if (c == 'g')
				n_gen = v;
			else if (c == 'r')
				reps = v;
			else
				mp.n_threads = (int)v;
			break;
		case 'b':
			if (!strcmp(optarg, "cpu"))
				mp.backend = LLM_BACKEND_CPU;
			else if (!strcmp(optarg, "cuda"))
				mp.backend = LLM_BACKEND_CUDA;
			else if (!strcmp(optarg, "auto"))
				mp.backend = LLM_BACKEND_AUTO;
			else {
				app_error("bench: unknown backend '%s'", optarg);
				return APP_STATUS_USAGE;
			}
			break;
		case 'h': app_help_bench(stdout); return APP_STATUS_OK;
		default: app_help_bench(stderr); return APP_STATUS_USAGE;
		}
	}
	if (optind != argc || n_prompt + n_gen < 1) {
		app_help_bench(stderr);
		return APP_STATUS_USAGE;
	}
	if (!model)
		model = app_default_model_dir();
	diag_clear(&d);
	rc = llm_model_open(model, &mp, &m, &d);
	if (rc == 0)
		rc = llm_context_new(m, (size_t)(n_prompt + n_gen), &ctx, &d);
	if (rc < 0) {
		app_error("bench: %s", diag_message(&d, llm_strerror(rc)));
		goto out;
	}
	V = (size_t)llm_model_n_vocab(m);
	ids = malloc((size_t)(n_prompt + n_gen + 1) * sizeof *ids);
	lg = malloc(V * sizeof *lg);
	if (!ids || !lg) {
		app_error("bench: out of memory");
		goto out;
	}
	for (i = 0; i < (size_t)(n_prompt + n_gen + 1); i++) {
		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		ids[i] = V > 3 ? (int32_t)(3 + (rng >> 33) % (V - 3)) : 0;
	}
	printf("model:    %s (%s, %.2f M params, %.1f MiB)\n", model,
	       llm_model_arch(m), (double)llm_model_n_params(m) / 1e6,
	       (double)llm_model_bytes(m) / 1048576.0);
	printf("backend:  %s\n", llm_model_backend(m));
	for (r = 0; r <= reps; r++) { /* r == 0: warm-up */
		double t0, t1, t2;

		llm_context_reset(ctx);
		t0 = clock_now_s();
		if (n_prompt > 0)
			rc = llm_context_eval(ctx, ids, (size_t)n_prompt,
					      LLM_LOGITS_LAST, lg, &d);
		t1 = clock_now_s();
		for (i = 0; rc == 0 && i < (size_t)n_gen; i++)
			rc = llm_context_eval(ctx, ids + n_prompt + i, 1,
					      LLM_LOGITS_LAST, lg, &d);
		t2 = clock_now_s();
		if (rc < 0) {
			app_error("bench: %s", diag_message(&d, llm_strerror(rc)));
			goto out;
		}
		if (r > 0) {
			if (t1 - t0 < best_pp)
				best_pp = t1 - t0;
			if (t2 - t1 < best_tg)
				best_tg = t2 - t1;
		}
	}
	if (n_prompt > 0)
		printf("prompt:   %ld tokens in %.3f s = %.1f tokens/s\n", n_prompt,
		       best_pp, (double)n_prompt / best_pp);
	if (n_gen > 0)
		printf("generate: %ld tokens in %.3f s = %.1f tokens/s (%.2f ms/token)\n",
		       n_gen, best_tg, (double)n_gen / best_tg,
		       1e3 * best_tg / (double)n_gen);
	status = fflush(stdout) == 0 ? APP_STATUS_OK : APP_STATUS_ERROR;
out:
	llm_context_free(ctx);
	llm_model_free(m);
	free(ids);
	free(lg);
	return status;
}
