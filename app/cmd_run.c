/* app/cmd_run.c — `tern run`: generate text from a prompt with the engine
 * (inference/llm.h "Engine and jobs") and stream it to stdout.
 *
 * Output, like llama2.c's run.c: the prompt's text (its tokens decoded,
 * special tokens dropped; not with --chat), the generated text as it
 * comes, then one newline.  Statistics go to stderr.  With --parallel N,
 * N sampled continuations (seeds S, S+1, ...) run as concurrent jobs of
 * one engine (continuous batching) and are printed after completion as
 * "--- [i] ---" blocks.  Errors go to stderr with a non-zero status; this
 * never exits.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "app/config.h"
#include "app/image.h"
#include "common/file.h"
#include "common/strbuf.h"
#include "common/xalloc.h"
#include "inference/llm.h"

void app_help_run(FILE *out)
{
	fprintf(out,
		"Usage: tern run [-m MODEL] [-p TEXT | -f FILE] [--chat] [--system TEXT]\n"
		"                [-n N] [--seed S] [sampler options] [--parallel N]\n"
		"                [-t THREADS] [--ctx N] [-b BACKEND] [--kv-type T]\n"
		"\n"
		"Generate text and stream it to stdout (the prompt's text, the output,\n"
		"then a newline).  Without -p/-f (and without --chat) generation starts\n"
		"from BOS alone.  The prompt gets the special tokens the tokenizer adds\n"
		"(BOS).\n"
		"\n"
		"Options:\n"
		"  -m, --model DIR          model directory (default: the bundled model)\n"
		"  -p, --prompt TEXT        the prompt\n"
		"  -f, --file FILE          read the prompt from FILE ('-' for standard\n"
		"                           input)\n"
		"      --chat               wrap the prompt as a user message in the\n"
		"                           model's chat template (print only the reply)\n"
		"      --system TEXT        with --chat, a system message first\n"
		"  -n, --max-tokens N       generate at most N tokens, fewer where the\n"
		"                           context is full first (said on stderr);\n"
		"                           0 (the default): until EOS or the context\n"
		"                           is full\n"
		"  -s, --seed S             sampler seed (default: from the clock)\n"
		"      --parallel N         N continuations at once (seeds S, S+1, ...)\n"
		"  -t, --threads N          CPU threads (default: all cores)\n"
		"  -b, --backend NAME       auto, cpu or cuda (default auto)\n"
		"      --kv-type T          KV cache elements: auto (f16 on CUDA, f32\n"
		"                           on the CPU), f32, f16, or quantized\n"
		"                           qN (2..8 bits: q4) or K,V bits (q8,q4)\n"
		"  -c, --ctx N              context positions per job, at most the\n"
		"                           model's (default: the model's, at most 8192)\n"
		"      --stop STR           stop before STR (repeatable)\n"
		"      --ban STR            never output STR (repeatable)\n"
		"      --ignore-eos         keep going after end-of-sequence\n"
		"      --stop-on-loop N     stop when the last N tokens repeat one block\n"
		"                           (a block of N/2 twice, ..., one token N\n"
		"                           times; 2..1024; 0, the default: off)\n"
		"      --stats              print per-job statistics to stderr\n"
		"      --draft DIR          speculative decoding with DIR, a smaller model\n"
		"                           of the same vocabulary, proposing tokens\n"
		"      --ngram              speculative decoding with proposals looked up\n"
		"                           in the text so far (no draft model)\n"
		"      --draft-n N          with --draft or --ngram, proposals per step\n"
		"                           (default 4, at most 16);\n"
		"                           the output is the same, only faster or not;\n"
		"                           auto: up to 8, more while all are kept, fewer\n"
		"                           when they are not, none for a while when\n"
		"                           none are\n"
		"      --image FILE         a PNG or JPEG for a vision model (Qwen2.5-VL),\n"
		"                           placed before the prompt; its tower runs on\n"
		"                           the model's backend\n"
		"      --max-pixels N       resize the image to at most N pixels (default:\n"
		"                           the model's preprocessor_config.json)\n"
		"\n"
		"Sampler options (defaults as llama.cpp; each but --temp within the\n"
		"range the chat's sampler panel allows, e.g. --top-p, --min-p in [0, 1],\n"
		"--top-k in [0, 1000000]):\n"
		"  --temp T (0.8; <= 0 greedy)   --top-k K (40)      --top-p P (0.95)\n"
		"  --min-p P (0.05)              --typical P (1)     --top-n-sigma N (-1)\n"
		"  --xtc-probability P (0)       --xtc-threshold T (0.1)\n"
		"  --dry-multiplier M (0)        --dry-base B (1.75) --dry-allowed-length N (2)\n"
		"  --repeat-penalty R (1)        --frequency-penalty F (0)\n"
		"  --presence-penalty P (0)      --penalty-last-n N (64)\n"
		"  --mirostat 0|2 (0)            --mirostat-tau T (5) --mirostat-eta E (0.1)\n"
		"  --logit-bias ID=BIAS          add BIAS to token ID's logit (-inf bans;\n"
		"                                repeatable)\n"
		"  -h, --help                    show this help\n");
}

enum {
	OPT_CHAT = 256, OPT_SYSTEM, OPT_PARALLEL, OPT_STOP, OPT_BAN, OPT_IGNORE_EOS,
	OPT_STATS, OPT_TEMP, OPT_TOP_K, OPT_TOP_P, OPT_MIN_P, OPT_TYPICAL,
	OPT_TOP_N_SIGMA, OPT_XTC_P, OPT_XTC_T, OPT_DRY_MULT, OPT_DRY_BASE,
	OPT_DRY_LEN, OPT_REPEAT, OPT_FREQ, OPT_PRESENCE, OPT_PEN_LAST_N,
	OPT_MIROSTAT, OPT_MIRO_TAU, OPT_MIRO_ETA, OPT_LOGIT_BIAS, OPT_KV,
	OPT_DRAFT, OPT_NGRAM, OPT_DRAFT_N, OPT_IMAGE, OPT_MAX_PIXELS, OPT_LOOP,
};

static const struct option run_opts[] = {
	{ "model", required_argument, NULL, 'm' },
	{ "prompt", required_argument, NULL, 'p' },
	{ "file", required_argument, NULL, 'f' },
	{ "chat", no_argument, NULL, OPT_CHAT },
	{ "system", required_argument, NULL, OPT_SYSTEM },
	{ "max-tokens", required_argument, NULL, 'n' },
	{ "seed", required_argument, NULL, 's' },
	{ "parallel", required_argument, NULL, OPT_PARALLEL },
	{ "threads", required_argument, NULL, 't' },
	{ "backend", required_argument, NULL, 'b' },
	{ "kv-type", required_argument, NULL, OPT_KV },
	{ "ctx", required_argument, NULL, 'c' },
	{ "stop", required_argument, NULL, OPT_STOP },
	{ "ban", required_argument, NULL, OPT_BAN },
	{ "ignore-eos", no_argument, NULL, OPT_IGNORE_EOS },
	{ "stop-on-loop", required_argument, NULL, OPT_LOOP },
	{ "stats", no_argument, NULL, OPT_STATS },
	{ "draft", required_argument, NULL, OPT_DRAFT },
	{ "ngram", no_argument, NULL, OPT_NGRAM },
	{ "draft-n", required_argument, NULL, OPT_DRAFT_N },
	{ "image", required_argument, NULL, OPT_IMAGE },
	{ "max-pixels", required_argument, NULL, OPT_MAX_PIXELS },
	{ "temp", required_argument, NULL, OPT_TEMP },
	{ "temperature", required_argument, NULL, OPT_TEMP },
	{ "top-k", required_argument, NULL, OPT_TOP_K },
	{ "top-p", required_argument, NULL, OPT_TOP_P },
	{ "min-p", required_argument, NULL, OPT_MIN_P },
	{ "typical", required_argument, NULL, OPT_TYPICAL },
	{ "top-n-sigma", required_argument, NULL, OPT_TOP_N_SIGMA },
	{ "xtc-probability", required_argument, NULL, OPT_XTC_P },
	{ "xtc-threshold", required_argument, NULL, OPT_XTC_T },
	{ "dry-multiplier", required_argument, NULL, OPT_DRY_MULT },
	{ "dry-base", required_argument, NULL, OPT_DRY_BASE },
	{ "dry-allowed-length", required_argument, NULL, OPT_DRY_LEN },
	{ "repeat-penalty", required_argument, NULL, OPT_REPEAT },
	{ "frequency-penalty", required_argument, NULL, OPT_FREQ },
	{ "presence-penalty", required_argument, NULL, OPT_PRESENCE },
	{ "penalty-last-n", required_argument, NULL, OPT_PEN_LAST_N },
	{ "mirostat", required_argument, NULL, OPT_MIROSTAT },
	{ "mirostat-tau", required_argument, NULL, OPT_MIRO_TAU },
	{ "mirostat-eta", required_argument, NULL, OPT_MIRO_ETA },
	{ "logit-bias", required_argument, NULL, OPT_LOGIT_BIAS },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_float(const char *opt, const char *s, float *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end || errno == ERANGE || isnan(v)) {
		app_error("run: %s: '%s' is not a number", opt, s);
		return -1;
	}
	*out = (float)v;
	return 0;
}

static int parse_long(const char *opt, const char *s, long long lo, long long hi,
		      long long *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || *end || errno == ERANGE || v < lo || v > hi) {
		app_error("run: %s: '%s' is not an integer in [%lld, %lld]", opt, s, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

/* The sampler panel's and presets' field NAME (app_sampler_fields), whose
 * range a flag shares so that both take the same values. */
static const struct app_sampler_field *sampler_field(const char *name)
{
	const struct app_sampler_field *f;

	for (f = app_sampler_fields; f->name; f++)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

/* Sampler option OPT (preset field NAME) within the field's range. */
static int parse_sampler_float(const char *opt, const char *name, const char *s,
			       float *out)
{
	const struct app_sampler_field *f = sampler_field(name);
	float v;

	assert(f && f->type == APP_FIELD_FLOAT);
	if (parse_float(opt, s, &v) < 0)
		return -1;
	if (v < f->min || v > f->max) {
		app_error("run: %s: '%s' is not a number in [%g, %g]", opt, s, f->min, f->max);
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_sampler_int(const char *opt, const char *name, const char *s,
			     int32_t *out)
{
	const struct app_sampler_field *f = sampler_field(name);
	long long v;

	assert(f && f->type == APP_FIELD_INT);
	if (parse_long(opt, s, (long long)f->min, (long long)f->max, &v) < 0)
		return -1;
	*out = (int32_t)v;
	return 0;
}

/* One job's output. */
struct run_out {
	struct strbuf text;
	bool stream;               /* write text to stdout as it comes */
	enum llm_finish_reason finish;
	struct llm_job_stats stats;
	char err[DIAG_MSG_MAX];
};

/* Called on this thread inside llm_engine_step. */
static void on_event(struct llm_job *job, const struct llm_job_event *ev, void *user)
{
	struct run_out *o = user;

	(void)job;
	if (ev->text_len) {
		if (o->stream) {
			fwrite(ev->text, 1, ev->text_len, stdout);
			fflush(stdout);
		} else if (strbuf_append(&o->text, ev->text, ev->text_len) != 0) {
			app_error("run: out of memory");
		}
	}
	if (ev->type == LLM_JOB_EVENT_FINISH) {
		o->finish = ev->finish;
		if (ev->stats)
			o->stats = *ev->stats;
		if (ev->error_msg)
			snprintf(o->err, sizeof o->err, "%s", ev->error_msg);
	}
}

struct run_args {
	const char *model, *prompt, *file, *system, *draft, *image;
	bool chat, ignore_eos, stats, ngram, draft_auto;
	long long max_tokens, parallel, threads, n_ctx, n_draft, max_pixels, loop;
	enum llm_backend backend;
	struct llm_model_params mp; /* its kv_type and bits (--kv-type) */
	struct llm_sampler_params sp;
	const char **stops, **bans;
	size_t n_stops, n_bans;
	struct llm_logit_bias *bias;
	size_t n_bias;
};

static int parse_bias(struct run_args *a, const char *s)
{
	const char *eq = strchr(s, '=');
	char idbuf[32];
	long long id;
	float b;

	if (!eq || eq == s || (size_t)(eq - s) >= sizeof idbuf) {
		app_error("run: --logit-bias: expected ID=BIAS, got '%s'", s);
		return -1;
	}
	memcpy(idbuf, s, (size_t)(eq - s));
	idbuf[eq - s] = '\0';
	if (parse_long("--logit-bias", idbuf, 0, INT32_MAX, &id) < 0)
		return -1;
	if (strcmp(eq + 1, "-inf") == 0 || strcmp(eq + 1, "-INF") == 0)
		b = -INFINITY;
	else if (parse_float("--logit-bias", eq + 1, &b) < 0)
		return -1;
	if (!isfinite(b) && b > 0) {
		app_error("run: --logit-bias: '%s': BIAS is a number or -inf", s);
		return -1;
	}
	a->bias = xrealloc(a->bias, (a->n_bias + 1) * sizeof *a->bias);
	a->bias[a->n_bias].token = (int32_t)id;
	a->bias[a->n_bias].bias = b;
	a->n_bias++;
	return 0;
}

/* 0, 1 (help printed) or -1 (error printed). */
static int parse_args(int argc, char **argv, struct run_args *a)
{
	struct llm_sampler_params *sp = &a->sp;
	long long v;
	int c;

	optind = 0; /* other subcommands may have used getopt */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:p:f:n:s:t:c:b:h", run_opts, NULL)) != -1) {
		int rc = 0;

		switch (c) {
		case 'm': a->model = optarg; break;
		case 'p': a->prompt = optarg; break;
		case 'f': a->file = optarg; break;
		case OPT_CHAT: a->chat = true; break;
		case OPT_SYSTEM: a->system = optarg; break;
		case OPT_IGNORE_EOS: a->ignore_eos = true; break;
		case OPT_LOOP:
			/* 0 turns it off, as stop_on_loop: 0 in a preset */
			rc = parse_long("--stop-on-loop", optarg, 0, LLM_LOOP_MAX, &a->loop);
			if (rc == 0 && a->loop > 0 && a->loop < LLM_LOOP_MIN) {
				app_error("run: --stop-on-loop: '%s' is not 0 (off) or an "
					  "integer in [%d, %d]", optarg, LLM_LOOP_MIN,
					  LLM_LOOP_MAX);
				rc = -1;
			}
			break;
		case OPT_STATS: a->stats = true; break;
		case OPT_DRAFT: a->draft = optarg; break;
		case OPT_NGRAM: a->ngram = true; break;
		case OPT_IMAGE: a->image = optarg; break;
		case OPT_MAX_PIXELS:
			rc = parse_long("--max-pixels", optarg, 784, INT32_MAX, &a->max_pixels);
			break;
		case OPT_DRAFT_N:
			if (strcmp(optarg, "auto") == 0) {
				a->n_draft = 2 * LLM_SPEC_DEFAULT_DRAFT;
				a->draft_auto = true;
			} else {
				rc = parse_long("--draft-n", optarg, 1, LLM_SPEC_MAX_DRAFT,
						&a->n_draft);
				a->draft_auto = false;
			}
			break;
		case 'n': rc = parse_long("-n", optarg, 0, INT32_MAX, &a->max_tokens); break;
		case 's':
			rc = parse_long("--seed", optarg, 0, INT64_MAX, &v);
			sp->seed = (uint64_t)v;
			break;
		case OPT_PARALLEL: rc = parse_long("--parallel", optarg, 1, 256, &a->parallel); break;
		case 't': rc = parse_long("-t", optarg, 1, 4096, &a->threads); break;
		case 'b':
			if (app_parse_backend(optarg, &a->backend) != 0) {
				app_error("run: unknown backend '%s' (auto, cpu, cuda)", optarg);
				rc = -1;
			}
			break;
		case OPT_KV:
			rc = app_parse_kv_type("run", optarg, &a->mp);
			break;
		case 'c': rc = parse_long("--ctx", optarg, 2, 1 << 24, &a->n_ctx); break;
		case OPT_STOP:
			a->stops = xrealloc(a->stops, (a->n_stops + 1) * sizeof *a->stops);
			a->stops[a->n_stops++] = optarg;
			break;
		case OPT_BAN:
			a->bans = xrealloc(a->bans, (a->n_bans + 1) * sizeof *a->bans);
			a->bans[a->n_bans++] = optarg;
			break;
		case OPT_TEMP: rc = parse_float("--temp", optarg, &sp->temperature); break;
		case OPT_TOP_K: rc = parse_sampler_int("--top-k", "top_k", optarg, &sp->top_k); break;
		case OPT_TOP_P:
			rc = parse_sampler_float("--top-p", "top_p", optarg, &sp->top_p);
			break;
		case OPT_MIN_P:
			rc = parse_sampler_float("--min-p", "min_p", optarg, &sp->min_p);
			break;
		case OPT_TYPICAL:
			rc = parse_sampler_float("--typical", "typical_p", optarg, &sp->typical_p);
			break;
		case OPT_TOP_N_SIGMA:
			rc = parse_sampler_float("--top-n-sigma", "top_n_sigma", optarg,
						 &sp->top_n_sigma);
			break;
		case OPT_XTC_P:
			rc = parse_sampler_float("--xtc-probability", "xtc_probability", optarg,
						 &sp->xtc_probability);
			break;
		case OPT_XTC_T:
			rc = parse_sampler_float("--xtc-threshold", "xtc_threshold", optarg,
						 &sp->xtc_threshold);
			break;
		case OPT_DRY_MULT:
			rc = parse_sampler_float("--dry-multiplier", "dry_multiplier", optarg,
						 &sp->dry_multiplier);
			break;
		case OPT_DRY_BASE:
			rc = parse_sampler_float("--dry-base", "dry_base", optarg, &sp->dry_base);
			break;
		case OPT_DRY_LEN:
			rc = parse_sampler_int("--dry-allowed-length", "dry_allowed_length", optarg,
					       &sp->dry_allowed_length);
			break;
		case OPT_REPEAT:
			rc = parse_sampler_float("--repeat-penalty", "repeat_penalty", optarg,
						 &sp->repeat_penalty);
			break;
		case OPT_FREQ:
			rc = parse_sampler_float("--frequency-penalty", "frequency_penalty", optarg,
						 &sp->frequency_penalty);
			break;
		case OPT_PRESENCE:
			rc = parse_sampler_float("--presence-penalty", "presence_penalty", optarg,
						 &sp->presence_penalty);
			break;
		case OPT_PEN_LAST_N:
			rc = parse_sampler_int("--penalty-last-n", "penalty_last_n", optarg,
					       &sp->penalty_last_n);
			break;
		case OPT_MIROSTAT:
			rc = parse_sampler_int("--mirostat", "mirostat", optarg, &sp->mirostat);
			if (rc == 0 && sp->mirostat == 1) {
				app_error("run: --mirostat: 1 (mirostat v1) is not supported; "
					  "0 (off) or 2");
				rc = -1;
			}
			break;
		case OPT_MIRO_TAU:
			rc = parse_sampler_float("--mirostat-tau", "mirostat_tau", optarg,
						 &sp->mirostat_tau);
			break;
		case OPT_MIRO_ETA:
			rc = parse_sampler_float("--mirostat-eta", "mirostat_eta", optarg,
						 &sp->mirostat_eta);
			break;
		case OPT_LOGIT_BIAS: rc = parse_bias(a, optarg); break;
		case 'h':
			app_help_run(stdout);
			return 1;
		default:
			app_bad_option("run", c, argv);
			return -1;
		}
		if (rc < 0)
			return -1;
	}
	if (optind < argc) {
		app_error("run: unexpected argument '%s' (the prompt goes after -p)",
			  argv[optind]);
		return -1;
	}
	if (a->prompt && a->file) {
		app_error("run: give -p or -f, not both");
		return -1;
	}
	if (a->system && !a->chat) {
		app_error("run: --system needs --chat");
		return -1;
	}
	if (a->n_draft && !a->draft && !a->ngram) {
		app_error("run: --draft-n needs --draft DIR or --ngram");
		return -1;
	}
	return 0;
}

/* The prompt text: -p, -f (a file or '-', standard input), or empty.  A
 * fresh string. */
static int prompt_text(const struct run_args *a, char **text, size_t *len)
{
	struct diag d;

	if (a->file && strcmp(a->file, "-") == 0) {
		if (app_read_stdin(text, len) != 0) {
			app_error("run: cannot read standard input");
			return -1;
		}
		return 0;
	}
	if (a->file) {
		diag_clear(&d);
		if (file_read_all(a->file, 0, text, len, &d) != 0) {
			app_error("run: %s", diag_message(&d, a->file));
			return -1;
		}
		return 0;
	}
	*text = xstrdup(a->prompt ? a->prompt : "");
	*len = strlen(*text);
	return 0;
}

/* Render the chat template around the prompt; a fresh string. */
static int chat_text(const struct run_args *a, const char *user, char **out,
		     size_t *out_len)
{
	struct llm_chat_msg msgs[2];
	struct llm_template *t = NULL;
	char *bos = NULL, *eos = NULL;
	size_t n = 0;
	struct diag d;
	int rc;

	diag_clear(&d);
	rc = llm_chat_template_open(a->model, &t, &bos, &eos, &d);
	if (rc < 0 && rc != LLM_E_TEMPLATE) {
		app_error("run: --chat: the model has no usable chat template (%s)",
			  diag_message(&d, llm_strerror(rc)));
		return -1;
	}
	if (rc == 0) {
		if (a->system) {
			msgs[n].role = "system";
			msgs[n++].content = a->system;
		}
		msgs[n].role = "user";
		msgs[n++].content = user;
		rc = llm_chat_render(t, msgs, n, true, bos, eos, NULL, out, out_len, &d);
	}
	llm_template_free(t);
	free(bos);
	free(eos);
	if (rc < 0) {
		app_error("run: chat template: %s", diag_message(&d, llm_strerror(rc)));
		return -1;
	}
	return 0;
}

/* An image for the prompt: the vision tower, embeddings and MRoPE
 * positions. */
struct run_image {
	struct llm_vision *v;
	float *embd;    /* [n_tok, n_embd] */
	size_t n_tok;
	int32_t grid[3];
	int32_t *mpos;  /* [3][n_ids] */
	int64_t next;
};

/* Decode, preprocess and encode A->image with the model's vision tower
 * (left open in im->v for image_expand). */
static int image_encode(const struct run_args *a, struct llm_model *model,
			struct run_image *im)
{
	struct diag d;
	uint8_t *rgb = NULL;
	float *px = NULL;
	size_t n = 0;
	int w, h, rc = -1;

	diag_clear(&d);
	if (llm_model_image_token(model) < 0) {
		app_error("run: --image: %s has no vision tower", a->model);
		return -1;
	}
	if (llm_vision_open(a->model, &im->v, &d) < 0) {
		app_error("run: --image: %s", diag_message(&d, "cannot load the vision tower"));
		return -1;
	}
	if (llm_model_on_gpu(model) && llm_vision_use_backend(im->v, model, &d) < 0)
		fprintf(stderr, "tern: run: --image: %s; encoding on the CPU\n",
			diag_message(&d, "the vision tower does not fit on the GPU"));
	if ((size_t)llm_model_n_embd(model) != llm_vision_n_embd(im->v)) {
		app_error("run: --image: the vision tower gives %zu values a token, the "
			  "model takes %lld", llm_vision_n_embd(im->v),
			  (long long)llm_model_n_embd(model));
		goto out;
	}
	if (app_image_decode(a->image, &rgb, &w, &h, &d) < 0) {
		app_error("run: --image: %s", diag_message(&d, "cannot read the image"));
		goto out;
	}
	if (llm_vision_preprocess(im->v, rgb, w, h, 0, (size_t)a->max_pixels, &px, &n,
				  im->grid, &d) < 0 ||
	    llm_vision_n_tokens(im->v, im->grid, &im->n_tok) < 0) {
		app_error("run: --image: %s", diag_message(&d, "bad image"));
		goto out;
	}
	im->embd = malloc(im->n_tok * llm_vision_n_embd(im->v) * sizeof *im->embd);
	if (!im->embd) {
		app_error("run: --image: out of memory");
		goto out;
	}
	if (llm_vision_encode(im->v, px, n, im->grid, im->embd, &d) < 0) {
		app_error("run: --image: %s", diag_message(&d, "cannot encode the image"));
		goto out;
	}
	if (a->stats)
		fprintf(stderr, "image %s: %d x %d pixels, %d x %d patches, %zu tokens\n",
			a->image, w, h, im->grid[1], im->grid[2], im->n_tok);
	rc = 0;
out:
	free(px);
	free(rgb);
	return rc;
}

/* Widen the prompt's image token to the image's tokens and compute the
 * prompt's MRoPE positions. */
static int image_expand(struct llm_model *model, struct run_image *im, int32_t **ids,
			size_t *n_ids)
{
	int32_t *out = NULL;
	struct diag d;

	diag_clear(&d);
	if (llm_vision_expand_prompt(im->v, *ids, *n_ids, llm_model_image_token(model),
				     (const int32_t(*)[3])im->grid, 1, &out, n_ids, &im->mpos,
				     &im->next, &d) < 0) {
		app_error("run: --image: %s", diag_message(&d, "bad prompt"));
		return -1;
	}
	free(*ids);
	*ids = out;
	return 0;
}

static void print_stats(int idx, const struct run_out *o)
{
	const struct llm_job_stats *s = &o->stats;

	fprintf(stderr,
		"[%d] %s: prompt %zu tokens (%zu reused, %zu computed) in %.3f s; "
		"%zu generated in %.3f s (%.1f tok/s)",
		idx, llm_finish_reason_name(o->finish), s->n_prompt, s->n_reused,
		s->n_prompt - s->n_reused, s->t_prefill, s->n_generated, s->t_decode,
		s->decode_tps);
	if (s->n_drafted)
		fprintf(stderr, "; drafted %zu, accepted %zu (%.1f%%) in %zu verify steps",
			s->n_drafted, s->n_accepted,
			100.0 * (double)s->n_accepted / (double)s->n_drafted, s->n_verify);
	fputc('\n', stderr);
}

int app_cmd_run(int argc, char **argv)
{
	struct run_args a;
	struct llm_model_params mp = llm_model_default_params();
	struct llm_engine_params ep = llm_engine_default_params();
	struct llm_model *model = NULL, *draft = NULL;
	struct llm_tokenizer *tok = NULL;
	struct llm_engine *eng = NULL;
	struct llm_job **jobs = NULL;
	struct run_out *outs = NULL;
	struct run_image im;
	char *text = NULL, *rendered = NULL, *echo = NULL;
	size_t len = 0, n_ids = 0, echo_len = 0, i, n_jobs;
	int32_t *ids = NULL;
	int64_t max_tokens;
	bool cut = false;
	struct diag d;
	int status = APP_STATUS_ERROR, rc;

	memset(&a, 0, sizeof a);
	memset(&im, 0, sizeof im);
	a.sp = llm_sampler_default_params();
	a.parallel = 1;
	rc = parse_args(argc, argv, &a);
	if (rc != 0) {
		status = rc > 0 ? APP_STATUS_OK : APP_STATUS_USAGE;
		goto out;
	}
	if (!a.model)
		a.model = app_default_model_dir();
	if (app_check_model_dir("run", "-m", a.model) < 0 ||
	    (a.draft && app_check_model_dir("run", "--draft", a.draft) < 0)) {
		status = APP_STATUS_USAGE;
		goto out;
	}
	max_tokens = a.max_tokens;
	a.sp.logit_bias = a.bias;
	a.sp.n_logit_bias = a.n_bias;
	n_jobs = (size_t)a.parallel;

	diag_clear(&d);
	if (a.threads)
		mp.n_threads = (int)a.threads;
	mp.backend = a.backend;
	mp.kv_type = a.mp.kv_type;
	mp.kv_k_bits = a.mp.kv_k_bits;
	mp.kv_v_bits = a.mp.kv_v_bits;
	if (llm_model_open(a.model, &mp, &model, &d) < 0) {
		app_error("run: %s: %s", a.model, diag_message(&d, "cannot load model"));
		goto out;
	}
	if (a.n_ctx && app_check_ctx("run", a.n_ctx, model) < 0) {
		status = APP_STATUS_USAGE;
		goto out;
	}
	for (i = 0; i < a.n_bias; i++) {
		if (a.bias[i].token >= llm_model_n_vocab(model)) {
			app_error("run: --logit-bias: token %d is outside the model's vocabulary "
				  "of %lld", (int)a.bias[i].token,
				  (long long)llm_model_n_vocab(model));
			status = APP_STATUS_USAGE;
			goto out;
		}
	}
	if (llm_tokenizer_open(a.model, &tok, &d) < 0) {
		app_error("run: %s: %s", a.model, diag_message(&d, "cannot load tokenizer"));
		goto out;
	}
	/* the draft's cache is small: unquantized (any head size) */
	if (mp.kv_type == LLM_KV_QUANT)
		mp.kv_type = LLM_KV_AUTO;
	if (a.draft && llm_model_open(a.draft, &mp, &draft, &d) < 0) {
		app_error("run: draft %s: %s", a.draft, diag_message(&d, "cannot load model"));
		goto out;
	}
	if (prompt_text(&a, &text, &len) < 0)
		goto out;
	if (a.image) {
		/* the image first, as the chat templates place an image item
		 * before the text */
		const size_t pl = strlen(LLM_VISION_IMAGE_TEXT);
		char *t2 = xmalloc(pl + len + 1);

		if (image_encode(&a, model, &im) < 0) {
			free(t2);
			goto out;
		}
		memcpy(t2, LLM_VISION_IMAGE_TEXT, pl);
		memcpy(t2 + pl, text, len);
		t2[pl + len] = '\0';
		free(text);
		text = t2;
		len += pl;
	}
	if (a.chat) {
		size_t rl = 0;

		if (chat_text(&a, text, &rendered, &rl) < 0)
			goto out;
		/* the template writes BOS and the other special tokens itself */
		rc = llm_tokenizer_encode(tok, rendered, rl, false, &ids, &n_ids, &d);
	} else {
		rc = llm_tokenizer_encode(tok, text, len, true, &ids, &n_ids, &d);
	}
	if (rc < 0) {
		app_error("run: encoding the prompt: %s", diag_message(&d, llm_strerror(rc)));
		goto out;
	}
	if (a.image && image_expand(model, &im, &ids, &n_ids) < 0)
		goto out;
	if (n_ids == 0) {
		/* an empty prompt means "start from BOS" */
		int32_t bos = llm_model_bos(model);

		if (bos < 0)
			bos = llm_tokenizer_bos(tok);
		if (bos < 0) {
			app_error("run: empty prompt and the model has no BOS token");
			goto out;
		}
		free(ids);
		ids = xmalloc(sizeof *ids);
		ids[0] = bos;
		n_ids = 1;
	}
	if (!a.chat &&
	    llm_tokenizer_decode(tok, ids, n_ids, true, &echo, &echo_len, &d) < 0) {
		app_error("run: decoding the prompt: %s", diag_message(&d, "failed"));
		goto out;
	}

	ep.n_slots = n_jobs;
	if (a.n_ctx) {
		ep.n_ctx = (size_t)a.n_ctx;
	} else {
		int64_t t = llm_model_n_ctx_train(model);

		ep.n_ctx = t > 0 && t < 8192 ? (size_t)t : 8192;
	}
	/* -n is a limit, not a demand: a run that would pass the end of the
	 * context stops there as one without -n does (llm_job_submit refuses
	 * max_tokens that cannot fit); only a prompt that fills the context
	 * alone is an error */
	if (a.max_tokens > 0 && n_ids + (size_t)a.max_tokens > ep.n_ctx) {
		max_tokens = 0;
		cut = true;
	}
	ep.ngram = a.ngram;
	ep.n_draft = (size_t)a.n_draft;
	ep.draft_adaptive = a.draft_auto;
	if (llm_engine_new(model, draft, &ep, tok, &eng, &d) < 0) {
		app_error("run: %s", diag_message(&d, "cannot create the engine"));
		goto out;
	}
	jobs = xcalloc(n_jobs, sizeof *jobs);
	outs = xcalloc(n_jobs, sizeof *outs);
	for (i = 0; i < n_jobs; i++) {
		struct llm_job_params jp = llm_job_default_params();
		struct llm_sampler_params sp = a.sp;

		strbuf_init(&outs[i].text, 0);
		outs[i].stream = n_jobs == 1;
		if (sp.seed != LLM_SAMPLER_SEED_RANDOM)
			sp.seed += i;
		jp.prompt = ids;
		jp.n_prompt = n_ids;
		jp.sampler = &sp;
		if (im.embd) {
			jp.embd = im.embd;
			jp.n_embd = im.n_tok;
			jp.mpos = im.mpos;
			jp.mpos_next = im.next;
		}
		jp.stop_strings = a.stops;
		jp.n_stop_strings = a.n_stops;
		jp.banned_strings = a.bans;
		jp.n_banned_strings = a.n_bans;
		jp.ignore_eos = a.ignore_eos;
		jp.max_tokens = max_tokens;
		jp.stop_on_loop = (int32_t)a.loop;
		jp.callback = on_event;
		jp.user = &outs[i];
		if (llm_job_submit(eng, &jp, &jobs[i], &d) < 0) {
			app_error("run: %s", diag_message(&d, "cannot start"));
			goto out;
		}
	}
	if (n_jobs == 1 && echo) {
		fwrite(echo, 1, echo_len, stdout);
		fflush(stdout);
	}
	while (llm_engine_has_work(eng)) {
		if (llm_engine_step(eng, &d) < 0) {
			app_error("run: %s", diag_message(&d, "generation failed"));
			break;
		}
	}
	status = APP_STATUS_OK;
	if (n_jobs == 1)
		fputc('\n', stdout);
	for (i = 0; i < n_jobs; i++) {
		if (n_jobs > 1) {
			printf("--- [%zu] ---\n", i + 1);
			if (echo)
				fwrite(echo, 1, echo_len, stdout);
			if (outs[i].text.len)
				fwrite(outs[i].text.data, 1, outs[i].text.len, stdout);
			fputc('\n', stdout);
		}
		if (outs[i].finish == LLM_FINISH_ERROR) {
			app_error("run: job %zu: %s", i + 1, outs[i].err);
			status = APP_STATUS_ERROR;
		}
		if (cut && outs[i].finish == LLM_FINISH_CONTEXT)
			app_error("run: job %zu stopped after %zu of the %lld tokens of -n: "
				  "the context of %zu positions is full", i + 1,
				  outs[i].stats.n_generated, a.max_tokens, ep.n_ctx);
		if (outs[i].finish == LLM_FINISH_LOOP)
			app_error("run: job %zu stopped: its last %lld tokens "
				"repeat themselves (--stop-on-loop)", i + 1, a.loop);
		if (a.stats)
			print_stats((int)i + 1, &outs[i]);
	}
	fflush(stdout);
out:
	if (jobs)
		for (i = 0; i < n_jobs; i++)
			llm_job_free(jobs[i]);
	if (outs)
		for (i = 0; i < n_jobs; i++)
			strbuf_fini(&outs[i].text);
	free(jobs);
	free(outs);
	llm_engine_free(eng);
	llm_tokenizer_free(tok);
	llm_vision_free(im.v); /* before its model (its buffers) */
	im.v = NULL;
	llm_model_free(draft);
	llm_model_free(model);
	free(ids);
	free(text);
	free(rendered);
	free(echo);
	free(a.stops);
	free(a.bans);
	free(a.bias);
	free(im.embd);
	free(im.mpos);
	return status;
}
