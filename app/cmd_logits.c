/* app/cmd_logits.c — `tern logits`: evaluate token ids with a model and
 * write the float32 logits of every position, for conformance scripts.
 *
 * Output: raw little-endian float32 [n_ids, n_vocab] (row i = the logits
 * after ids[0..i]).  By default one prefill computes them all; with
 * --incremental each id goes through the KV cache one at a time (the two
 * must agree to rounding).  Errors go to stderr with a non-zero status;
 * this never exits.
 */
#include "config.h"

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "inference/llm.h"

void app_help_logits(FILE *out)
{
	fprintf(out,
		"Usage: tern logits -m MODEL --ids \"ID ID ...\" -o OUT [options]\n"
		"\n"
		"Run the ids through the model and write the logits of every position\n"
		"to OUT as little-endian float32 [n_ids x n_vocab].\n"
		"\n"
		"Options:\n"
		"  -m, --model DIR      Hugging Face model directory (default: the bundled\n"
		"                       stories260k)\n"
		"  -i, --ids IDS        whitespace-separated token ids\n"
		"  -o, --output FILE    output file ('-' for standard output)\n"
		"      --incremental    one token at a time through the KV cache instead\n"
		"                       of one prefill\n"
		"  -t, --threads N      CPU threads (default: all cores)\n"
		"  -b, --backend NAME   auto, cpu or cuda (default auto)\n"
		"      --kv-type T      KV cache elements: auto (f16 on CUDA, f32 on\n"
		"                       the CPU), f32, f16, or quantized\n"
		"                       qN (2..8 bits: q4) or K,V bits (q8,q4)\n"
		"  -h, --help           show this help\n");
}

static int write_le_f32(FILE *f, const float *v, size_t n)
{
	/* float32 little-endian: the host order on every supported target;
	 * convert byte by byte elsewhere */
	const uint32_t probe = 1;

	if (*(const unsigned char *)&probe == 1)
		return fwrite(v, sizeof *v, n, f) == n ? 0 : -1;
	for (size_t i = 0; i < n; i++) {
		uint32_t u;
		unsigned char b[4];

		memcpy(&u, &v[i], 4);
		b[0] = (unsigned char)u;
		b[1] = (unsigned char)(u >> 8);
		b[2] = (unsigned char)(u >> 16);
		b[3] = (unsigned char)(u >> 24);
		if (fwrite(b, 1, 4, f) != 4)
			return -1;
	}
	return 0;
}

int app_cmd_logits(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "ids", required_argument, NULL, 'i' },
		{ "output", required_argument, NULL, 'o' },
		{ "incremental", no_argument, NULL, 'I' },
		{ "threads", required_argument, NULL, 't' },
		{ "backend", required_argument, NULL, 'b' },
		{ "kv-type", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct llm_model_params mp = llm_model_default_params();
	const char *model = NULL, *ids_s = NULL, *outp = NULL;
	struct llm_model *m = NULL;
	struct llm_context *ctx = NULL;
	int incremental = 0, c, status = APP_STATUS_ERROR, rc;
	int *ids_i = NULL;
	int32_t *ids = NULL;
	float *lg = NULL;
	size_t n = 0, V, i;
	char err[128];
	struct diag d;
	FILE *f = NULL;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:i:o:t:b:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': model = optarg; break;
		case 'i': ids_s = optarg; break;
		case 'o': outp = optarg; break;
		case 'I': incremental = 1; break;
		case 't': mp.n_threads = atoi(optarg); break;
		case 'b':
			if (app_parse_backend(optarg, &mp.backend) != 0) {
				app_error("logits: unknown backend '%s'", optarg);
				return APP_STATUS_USAGE;
			}
			break;
		case 'K':
			if (app_parse_kv_type("logits", optarg, &mp) < 0)
				return APP_STATUS_USAGE;
			break;
		case 'h': app_help_logits(stdout); return APP_STATUS_OK;
		default: app_bad_option("logits", c, argv); return APP_STATUS_USAGE;
		}
	}
	if (!ids_s || !outp || optind != argc) {
		app_error("logits: --ids and -o are required (see 'tern help logits')");
		return APP_STATUS_USAGE;
	}
	if (app_parse_ids(ids_s, &ids_i, &n, err, sizeof err) != 0) {
		app_error("logits: %s", err);
		return APP_STATUS_USAGE;
	}
	if (n == 0) {
		app_error("logits: no ids");
		free(ids_i);
		return APP_STATUS_USAGE;
	}
	if (!model)
		model = app_default_model_dir();
	if (app_check_model_dir("logits", "-m", model) < 0) {
		free(ids_i);
		return APP_STATUS_USAGE;
	}
	diag_clear(&d);
	ids = malloc(n * sizeof *ids);
	if (!ids) {
		app_error("logits: out of memory");
		goto out;
	}
	for (i = 0; i < n; i++)
		ids[i] = (int32_t)ids_i[i];
	rc = llm_model_open(model, &mp, &m, &d);
	if (rc == 0)
		rc = llm_context_new(m, n, &ctx, &d);
	if (rc < 0) {
		app_error("logits: %s", diag_message(&d, llm_strerror(rc)));
		goto out;
	}
	V = (size_t)llm_model_n_vocab(m);
	lg = malloc(n * V * sizeof *lg);
	if (!lg) {
		app_error("logits: out of memory (%zu x %zu floats)", n, V);
		goto out;
	}
	if (incremental) {
		for (i = 0; i < n && rc == 0; i++)
			rc = llm_context_eval(ctx, ids + i, 1, LLM_LOGITS_LAST,
					      lg + i * V, &d);
	} else {
		rc = llm_context_eval(ctx, ids, n, LLM_LOGITS_ALL, lg, &d);
	}
	if (rc < 0) {
		app_error("logits: %s", diag_message(&d, llm_strerror(rc)));
		goto out;
	}
	f = strcmp(outp, "-") ? fopen(outp, "wb") : stdout;
	if (!f) {
		app_error("logits: cannot create %s", outp);
		goto out;
	}
	if (write_le_f32(f, lg, n * V) != 0 || fflush(f) != 0) {
		app_error("logits: cannot write %s", outp);
		goto out;
	}
	status = APP_STATUS_OK;
out:
	if (f && f != stdout && fclose(f) != 0 && status == APP_STATUS_OK) {
		app_error("logits: cannot write %s", outp);
		status = APP_STATUS_ERROR;
	}
	llm_context_free(ctx);
	llm_model_free(m);
	free(lg);
	free(ids);
	free(ids_i);
	return status;
}
