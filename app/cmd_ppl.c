/* app/cmd_ppl.c — `tern ppl`: perplexity of a model on a text file.
 *
 * Protocol (the one of the shared fixtures' reference numbers, computed
 * with transformers; see `tern help ppl`): the file is encoded as it is
 * (no special tokens, no newline translation) and cut into consecutive,
 * non-overlapping chunks of CTX - 1 tokens; each chunk is evaluated from
 * an empty cache after the model's BOS token, so every token of the text
 * is scored exactly once, the first of each chunk from BOS alone.  A model
 * without a BOS token takes chunks of CTX tokens and does not score the
 * first of each.  mean NLL = the mean of -ln softmax(logits)[token] over
 * the scored tokens; PPL = exp(mean NLL).
 *
 * Output (stdout, one "key value" pair a line, for scripts): tokens,
 * scored, windows, ctx, mean_nll, ppl.  Progress goes to stderr when it is
 * a terminal.  Errors go to stderr with a non-zero status; this never
 * exits.
 */
#include "config.h"

#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/app.h"
#include "common/clock.h"
#include "common/file.h"
#include "inference/llm.h"

/* The window when --ctx is not given (capped by the model's context). */
#define PPL_DEFAULT_CTX 1024
/* Bytes of logits one evaluation call may return (rows x vocabulary x 4):
 * a window is evaluated in as many calls as this needs. */
#define PPL_LOGITS_BYTES ((size_t)256 << 20)

void app_help_ppl(FILE *out)
{
	fprintf(out,
		"Usage: tern ppl -m MODEL -f FILE [options]\n"
		"\n"
		"Perplexity of MODEL on the text in FILE.  The text is encoded as it is\n"
		"(no special tokens, no newline translation) and cut into consecutive\n"
		"windows of CTX - 1 tokens; each window is evaluated from an empty cache\n"
		"after the BOS token, so every token is scored exactly once (a model\n"
		"without BOS takes windows of CTX tokens and does not score the first of\n"
		"each).  mean_nll is the mean of -ln p(token), ppl = exp(mean_nll).\n"
		"\n"
		"Options:\n"
		"  -m, --model DIR      Hugging Face model directory (default: the bundled\n"
		"                       stories260k)\n"
		"  -f, --file FILE      the text ('-' for standard input)\n"
		"  -c, --ctx N          window in positions, BOS included (default %d, at\n"
		"                       most the model's context)\n"
		"  -w, --windows N      score only the first N windows (quick checks)\n"
		"  -t, --threads N      CPU threads (default: all cores)\n"
		"  -b, --backend NAME   auto, cpu or cuda (default auto)\n"
		"      --kv-type T      KV cache elements: auto (f16 on CUDA, f32 on\n"
		"                       the CPU), f32, f16, or quantized\n"
		"                       qN (2..8 bits: q4) or K,V bits (q8,q4)\n"
		"  -q, --quiet          no progress on standard error\n"
		"  -h, --help           show this help\n"
		"\n"
		"Output, one 'key value' pair a line: tokens (of the text), scored,\n"
		"windows, ctx, mean_nll, ppl.\n",
		PPL_DEFAULT_CTX);
}

/* -ln softmax(row)[target] over n logits: the exponentials in float (each
 * of x - max <= 0, to an ulp), summed and logged in double. */
static double row_nll(const float *row, size_t n, int32_t target)
{
	float mx = row[0];
	double s = 0.0;
	size_t i;

	for (i = 1; i < n; i++)
		mx = row[i] > mx ? row[i] : mx;
	for (i = 0; i < n; i++)
		s += (double)expf(row[i] - mx);
	return (double)mx + log(s) - (double)row[target];
}

struct ppl_run {
	struct llm_context *ctx;
	float *lg;      /* rows x V logits */
	size_t rows, V; /* rows: most positions one call returns */
};

/* Evaluate IN[0..n) from an empty cache; row j scores TGT[j]; adds the
 * NLL to *sum.  Returns 0 or an LLM_E_* error (message in d). */
static int ppl_window(struct ppl_run *r, const int32_t *in, const int32_t *tgt,
		      size_t n, double *sum, struct diag *d)
{
	size_t off, j;

	llm_context_reset(r->ctx);
	for (off = 0; off < n; off += r->rows) {
		const size_t m = n - off < r->rows ? n - off : r->rows;
		int rc = llm_context_eval(r->ctx, in + off, m, LLM_LOGITS_ALL, r->lg, d);

		if (rc < 0)
			return rc;
		for (j = 0; j < m; j++)
			*sum += row_nll(r->lg + j * r->V, r->V, tgt[off + j]);
	}
	return 0;
}

int app_cmd_ppl(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "file", required_argument, NULL, 'f' },
		{ "ctx", required_argument, NULL, 'c' },
		{ "windows", required_argument, NULL, 'w' },
		{ "threads", required_argument, NULL, 't' },
		{ "backend", required_argument, NULL, 'b' },
		{ "kv-type", required_argument, NULL, 'K' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct llm_model_params mp = llm_model_default_params();
	const char *model = NULL, *path = NULL;
	struct llm_model *m = NULL;
	struct llm_tokenizer *tok = NULL;
	struct ppl_run run = { NULL, NULL, 0, 0 };
	long ctx_arg = 0, win_arg = 0;
	int c, quiet = 0, status = APP_STATUS_ERROR, rc, progress;
	char *text = NULL, *end;
	size_t text_len = 0, n_ids = 0, ctx, chunk, n_win, w, scored = 0;
	int32_t *ids = NULL, *win = NULL, bos;
	double sum = 0.0, t0;
	struct diag d;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:f:c:w:t:b:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'm': model = optarg; break;
		case 'f': path = optarg; break;
		case 'c':
		case 'w': {
			long v = strtol(optarg, &end, 10);

			if (*optarg == '\0' || *end != '\0' || v < (c == 'c' ? 2 : 1)) {
				app_error("ppl: --%s wants a whole number of at least %d, not '%s'",
					  c == 'c' ? "ctx" : "windows", c == 'c' ? 2 : 1, optarg);
				return APP_STATUS_USAGE;
			}
			*(c == 'c' ? &ctx_arg : &win_arg) = v;
			break;
		}
		case 't': mp.n_threads = atoi(optarg); break;
		case 'b':
			if (app_parse_backend(optarg, &mp.backend) != 0) {
				app_error("ppl: unknown backend '%s'", optarg);
				return APP_STATUS_USAGE;
			}
			break;
		case 'K':
			if (app_parse_kv_type("ppl", optarg, &mp) < 0)
				return APP_STATUS_USAGE;
			break;
		case 'q': quiet = 1; break;
		case 'h': app_help_ppl(stdout); return APP_STATUS_OK;
		default: app_bad_option("ppl", c, argv); return APP_STATUS_USAGE;
		}
	}
	if (!path || optind != argc) {
		app_error("ppl: -f FILE is required (see 'tern help ppl')");
		return APP_STATUS_USAGE;
	}
	if (!model)
		model = app_default_model_dir();
	if (app_check_model_dir("ppl", "-m", model) < 0)
		return APP_STATUS_USAGE;
	diag_clear(&d);

	/* the text, exactly as stored */
	if (!strcmp(path, "-")) {
		if (app_read_stdin(&text, &text_len) != 0) {
			app_error("ppl: cannot read standard input");
			goto out;
		}
	} else if (file_read_all(path, 0, &text, &text_len, &d) != 0) {
		app_error("ppl: %s", diag_message(&d, "cannot read the text"));
		goto out;
	}

	rc = llm_tokenizer_open(model, &tok, &d);
	if (rc == 0)
		rc = llm_tokenizer_encode(tok, text, text_len, false, &ids, &n_ids, &d);
	if (rc == 0)
		rc = llm_model_open(model, &mp, &m, &d);
	if (rc < 0) {
		app_error("ppl: %s", diag_message(&d, llm_strerror(rc)));
		goto out;
	}
	free(text);
	text = NULL;

	/* windows: CTX - 1 text tokens after BOS, or CTX without one */
	{
		const int64_t train = llm_model_n_ctx_train(m);

		if (ctx_arg > 0) {
			if (app_check_ctx("ppl", ctx_arg, m) < 0) {
				status = APP_STATUS_USAGE;
				goto out;
			}
			ctx = (size_t)ctx_arg;
		} else {
			ctx = train > 0 && train < PPL_DEFAULT_CTX ? (size_t)train
								    : PPL_DEFAULT_CTX;
		}
	}
	bos = llm_model_bos(m);
	chunk = bos >= 0 ? ctx - 1 : ctx;
	if (n_ids == 0 || (bos < 0 && n_ids < 2)) {
		app_error("ppl: %s has no token to score", path);
		goto out;
	}
	n_win = (n_ids + chunk - 1) / chunk;
	if (win_arg > 0 && (size_t)win_arg < n_win)
		n_win = (size_t)win_arg;

	run.V = (size_t)llm_model_n_vocab(m);
	run.rows = PPL_LOGITS_BYTES / (run.V * sizeof(float));
	if (run.rows < 1)
		run.rows = 1;
	if (run.rows > ctx)
		run.rows = ctx;
	run.lg = malloc(run.rows * run.V * sizeof *run.lg);
	win = malloc(ctx * sizeof *win);
	if (!run.lg || !win) {
		app_error("ppl: out of memory (%zu x %zu logits)", run.rows, run.V);
		goto out;
	}
	rc = llm_context_new(m, ctx, &run.ctx, &d);
	if (rc < 0) {
		app_error("ppl: %s", diag_message(&d, llm_strerror(rc)));
		goto out;
	}

	progress = !quiet && isatty(STDERR_FILENO);
	t0 = clock_now_s();
	for (w = 0; w < n_win; w++) {
		const size_t first = w * chunk;
		const size_t len = n_ids - first < chunk ? n_ids - first : chunk;
		size_t n_in;

		/* in = win[0 .. n_in), row j scores win[j + 1] */
		if (bos >= 0) {
			win[0] = bos;
			memcpy(win + 1, ids + first, len * sizeof *win);
			n_in = len;
		} else {
			memcpy(win, ids + first, len * sizeof *win);
			n_in = len - 1;
		}
		if (n_in == 0)
			continue; /* a last window of one token without BOS */
		rc = ppl_window(&run, win, win + 1, n_in, &sum, &d);
		if (rc < 0) {
			if (progress)
				fputc('\n', stderr);
			app_error("ppl: window %zu: %s", w + 1,
				  diag_message(&d, llm_strerror(rc)));
			goto out;
		}
		scored += n_in;
		if (progress) {
			const double dt = clock_now_s() - t0;

			fprintf(stderr, "\rwindow %zu/%zu  ppl %.4f  %.0f tok/s ", w + 1, n_win,
				exp(sum / (double)scored), dt > 0 ? (double)scored / dt : 0.0);
			fflush(stderr);
		}
	}
	if (progress)
		fputc('\n', stderr);
	printf("tokens %zu\nscored %zu\nwindows %zu\nctx %zu\nmean_nll %.6f\nppl %.4f\n",
	       n_ids, scored, n_win, ctx, sum / (double)scored, exp(sum / (double)scored));
	if (fflush(stdout) != 0) {
		app_error("ppl: cannot write the result");
		goto out;
	}
	status = APP_STATUS_OK;
out:
	llm_context_free(run.ctx);
	llm_model_free(m);
	llm_tokenizer_free(tok);
	free(run.lg);
	free(win);
	free(ids);
	free(text);
	return status;
}
