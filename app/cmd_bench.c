/* app/cmd_bench.c — `tern bench`: prefill and decode speed of a model on a
 * backend, the memory it takes, and decode's fraction of the memory-
 * bandwidth roofline (figures for docs/PERFORMANCE.md).
 *
 * The model is a directory or a synthetic random-weight model of a real
 * shape (`-m synthetic:llama3-8b`, llm_model_new_synthetic), so speed can
 * be measured without downloading weights.  The measuring is
 * llm_bench_run (inference/bench.c: what is timed and how the roofline is
 * counted); this file parses the command line and prints a table or, with
 * --json, one JSON object.  Never exits.
 */
#include "config.h"

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "inference/llm.h"

void app_help_bench(FILE *out)
{
	fprintf(out,
		"Usage: tern bench [-m DIR|synthetic:NAME] [--prompt N] [--gen N]\n"
		"                  [--batch B] [--ctx C] [--json] [options]\n"
		"\n"
		"Measure prefill (one sequence of N random ids) and batched decode\n"
		"(B sequences stepped together at positions C-gen..C-1 over zeroed\n"
		"K/V) in tokens per second, the memory used, and decode's fraction of\n"
		"the memory-bandwidth roofline (weight + K/V bytes read per step over\n"
		"the backend's measured copy bandwidth).\n"
		"\n"
		"Options:\n"
		"  -m, --model M        model directory, or synthetic:NAME for random\n"
		"                       weights of a real shape (llama3-8b, llama3-1b,\n"
		"                       llama3-3b, llama3-70b, llama2-7b, mistral-7b,\n"
		"                       qwen2.5-0.5b, qwen2.5-7b, qwen3-8b, mixtral-8x7b,\n"
		"                       qwen3-30b-a3b; NAME@exl3:BITS for EXL3)\n"
		"                       (default: the bundled stories260k)\n"
		"  -p, --prompt N       prefill length, 0 to skip (default 512)\n"
		"  -g, --gen N          timed decode steps, 0 to skip (default 128)\n"
		"  -B, --batch B        sequences decoded together (default 1)\n"
		"  -c, --ctx C          context position of the decode steps, at most\n"
		"                       the model's context (default prompt + gen)\n"
		"  -r, --reps N         prefill repetitions, median reported (default 3)\n"
		"  -w, --warmup N       untimed decode steps first (default 3)\n"
		"  -t, --threads N      CPU threads (default: all cores)\n"
		"  -b, --backend NAME   auto, cpu or cuda (default auto)\n"
		"      --kv-type T      KV cache elements: auto (f16 on CUDA, f32 on\n"
		"                       the CPU), f32, f16, or quantized\n"
		"                       qN (2..8 bits: q4) or K,V bits (q8,q4)\n"
		"  -u, --ubatch N       rows per forward pass, i.e. the prefill chunk\n"
		"                       (1..4096; default 2048 on CUDA, 512 on the CPU)\n"
		"      --no-bandwidth   skip the copy-bandwidth measurement\n"
		"  -j, --json           print one JSON object instead of the table\n"
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

/* The long name of the option whose short form is C. */
static const char *opt_name(const struct option *opts, int c)
{
	for (; opts->name; opts++)
		if (opts->val == c)
			return opts->name;
	return "?";
}

/* Bytes as "12.3 GiB" / "45.6 MiB" / "7.8 KiB". */
static const char *fmt_bytes(char *buf, size_t cap, double b)
{
	if (b >= 1024.0 * 1024 * 1024)
		snprintf(buf, cap, "%.2f GiB", b / (1024.0 * 1024 * 1024));
	else if (b >= 1024.0 * 1024)
		snprintf(buf, cap, "%.1f MiB", b / (1024.0 * 1024));
	else
		snprintf(buf, cap, "%.1f KiB", b / 1024.0);
	return buf;
}

/* S as a JSON string (quotes, backslashes and controls escaped). */
static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void print_json(const char *model, const struct llm_model *m,
		       const struct llm_bench_params *p,
		       const struct llm_bench_result *r)
{
	printf("{\"model\": ");
	json_str(model);
	printf(", \"arch\": ");
	json_str(llm_model_arch(m));
	printf(", \"backend\": ");
	json_str(r->backend);
	printf(", \"n_params\": %llu, \"prompt\": %zu, \"gen\": %zu, "
	       "\"batch\": %zu, \"ctx\": %zu, \"chunk\": %zu,\n",
	       (unsigned long long)llm_model_n_params(m), p->n_prompt, p->n_gen,
	       p->n_batch, r->n_ctx, r->chunk);
	printf(" \"prefill_s\": %.6g, \"prefill_tok_s\": %.6g, "
	       "\"prefill_flops\": %.6g, \"prefill_flop_s\": %.6g,\n",
	       r->prefill_s, r->prefill_tok_s, r->prefill_flops, r->prefill_flop_s);
	printf(" \"decode_step_s\": %.6g, \"decode_step_min_s\": %.6g, "
	       "\"decode_step_mean_s\": %.6g, \"decode_tok_s\": %.6g,\n",
	       r->step_s, r->step_min_s, r->step_mean_s, r->decode_tok_s);
	printf(" \"weight_bytes\": %llu, \"kv_bytes\": %llu, "
	       "\"activation_bytes\": %llu, \"memory_bytes\": %llu,\n",
	       (unsigned long long)r->weight_bytes, (unsigned long long)r->kv_bytes,
	       (unsigned long long)r->act_bytes, (unsigned long long)r->mem_bytes);
	printf(" \"step_weight_bytes\": %.6g, \"step_kv_bytes\": %.6g, "
	       "\"bandwidth_bytes_s\": %.6g, \"roofline_fraction\": %.4f}\n",
	       r->step_weight_bytes, r->step_kv_bytes, r->bw_bytes_s, r->roofline);
}

static void print_table(const char *model, const struct llm_model *m,
			const struct llm_bench_params *p,
			const struct llm_bench_result *r)
{
	char a[32], b[32], c[32], e[32];

	double np = (double)llm_model_n_params(m);

	printf("model     %s (%s, %.3g %s params, %s)\n", model, llm_model_arch(m),
	       np >= 1e9 ? np / 1e9 : np / 1e6, np >= 1e9 ? "B" : "M",
	       fmt_bytes(a, sizeof a, (double)r->weight_bytes));
	printf("backend   %s\n", r->backend);
	if (p->n_prompt > 0)
		printf("prefill   %zu tokens in %.3f s (chunks of %zu) %10.1f tok/s"
		       ", %.1f %sFLOP/s\n",
		       p->n_prompt, r->prefill_s, r->chunk, r->prefill_tok_s,
		       r->prefill_flop_s >= 1e12 ? r->prefill_flop_s / 1e12
						 : r->prefill_flop_s / 1e9,
		       r->prefill_flop_s >= 1e12 ? "T" : "G");
	if (p->n_gen > 0)
		printf("decode    batch %zu at ctx %zu: %.2f ms/step "
		       "(min %.2f)   %10.1f tok/s\n",
		       p->n_batch, r->n_ctx, 1e3 * r->step_s, 1e3 * r->step_min_s,
		       r->decode_tok_s);
	printf("memory    %s = weights %s + KV %s (%.4g-byte) + activations %s\n",
	       fmt_bytes(a, sizeof a, (double)r->mem_bytes),
	       fmt_bytes(b, sizeof b, (double)r->weight_bytes),
	       fmt_bytes(c, sizeof c, (double)r->kv_bytes), r->kv_elem_bytes,
	       fmt_bytes(e, sizeof e, (double)r->act_bytes));
	if (p->n_gen > 0 && r->bw_bytes_s > 0)
		printf("roofline  %s/step (weights %s + KV %s) at %.1f GB/s copy "
		       "bandwidth: %.1f%%\n",
		       fmt_bytes(a, sizeof a, r->step_weight_bytes + r->step_kv_bytes),
		       fmt_bytes(b, sizeof b, r->step_weight_bytes),
		       fmt_bytes(c, sizeof c, r->step_kv_bytes), r->bw_bytes_s / 1e9,
		       100.0 * r->roofline);
	else if (r->bw_bytes_s > 0)
		printf("bandwidth %.1f GB/s (copy, read + write)\n", r->bw_bytes_s / 1e9);
}

int app_cmd_bench(int argc, char **argv)
{
	enum { OPT_NO_BW = 256, OPT_KV };
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "prompt", required_argument, NULL, 'p' },
		{ "gen", required_argument, NULL, 'g' },
		{ "batch", required_argument, NULL, 'B' },
		{ "ctx", required_argument, NULL, 'c' },
		{ "reps", required_argument, NULL, 'r' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "threads", required_argument, NULL, 't' },
		{ "backend", required_argument, NULL, 'b' },
		{ "no-bandwidth", no_argument, NULL, OPT_NO_BW },
		{ "kv-type", required_argument, NULL, OPT_KV },
		{ "ubatch", required_argument, NULL, 'u' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct llm_model_params mp = llm_model_default_params();
	struct llm_bench_params bp = llm_bench_default_params();
	struct llm_bench_result r;
	const char *model = NULL;
	struct llm_model *m = NULL;
	bool json = false;
	long v;
	int c, rc;
	struct diag d;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:p:g:B:c:r:w:t:b:u:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'm': model = optarg; break;
		case 'p':
		case 'g':
		case 'B':
		case 'c':
		case 'r':
		case 'w':
		case 't':
		case 'u': {
			const long lo = c == 'r' || c == 'B' || c == 'u' ? 1 : 0;
			const long hi = c == 'B' || c == 'u' ? LLM_MAX_BATCH_LIMIT : 1 << 24;

			if (parse_count(optarg, lo, hi, &v) != 0) {
				app_error("bench: --%s: '%s' is not an integer in [%ld, %ld]",
					  opt_name(opts, c), optarg, lo, hi);
				return APP_STATUS_USAGE;
			}
			if (c == 'p')
				bp.n_prompt = (size_t)v;
			else if (c == 'g')
				bp.n_gen = (size_t)v;
			else if (c == 'B')
				bp.n_batch = (size_t)v;
			else if (c == 'c')
				bp.n_ctx = (size_t)v;
			else if (c == 'r')
				bp.n_reps = (int)v;
			else if (c == 'w')
				bp.n_warmup = (int)v;
			else if (c == 'u')
				mp.max_batch = (size_t)v;
			else
				mp.n_threads = (int)v;
			break;
		}
		case 'b':
			if (app_parse_backend(optarg, &mp.backend) != 0) {
				app_error("bench: unknown backend '%s'", optarg);
				return APP_STATUS_USAGE;
			}
			break;
		case OPT_NO_BW: bp.measure_bw = false; break;
		case OPT_KV:
			if (app_parse_kv_type("bench", optarg, &mp) < 0)
				return APP_STATUS_USAGE;
			break;
		case 'j': json = true; break;
		case 'h': app_help_bench(stdout); return APP_STATUS_OK;
		default: app_bad_option("bench", c, argv); return APP_STATUS_USAGE;
		}
	}
	if (optind != argc) {
		app_error("bench: unexpected argument '%s' (see 'tern bench --help')",
			  argv[optind]);
		return APP_STATUS_USAGE;
	}
	if (bp.n_prompt + bp.n_gen < 1) {
		app_error("bench: --prompt and --gen are both 0: nothing to measure");
		return APP_STATUS_USAGE;
	}
	if (!model)
		model = app_default_model_dir();
	if (strncmp(model, "synthetic:", 10) && app_check_model_dir("bench", "-m", model) < 0)
		return APP_STATUS_USAGE;
	diag_clear(&d);
	if (!strncmp(model, "synthetic:", 10))
		rc = llm_model_new_synthetic(model, &mp, &m, &d);
	else
		rc = llm_model_open(model, &mp, &m, &d);
	if (rc == 0 && bp.n_ctx && app_check_ctx("bench", (long long)bp.n_ctx, m) < 0) {
		llm_model_free(m);
		return APP_STATUS_USAGE;
	}
	if (rc == 0)
		rc = llm_bench_run(m, &bp, &r, &d);
	if (rc < 0) {
		app_error("bench: %s", diag_message(&d, llm_strerror(rc)));
		llm_model_free(m);
		return rc == LLM_E_INVALID ? APP_STATUS_USAGE : APP_STATUS_ERROR;
	}
	if (json)
		print_json(model, m, &bp, &r);
	else
		print_table(model, m, &bp, &r);
	llm_model_free(m);
	return fflush(stdout) == 0 ? APP_STATUS_OK : APP_STATUS_ERROR;
}
