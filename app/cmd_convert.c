/* app/cmd_convert.c — `tern convert`: EXL3 quantization of a Hugging Face
 * model directory (llm_convert, inference/convert.c), with a progress line
 * (linears done, the current one's error, elapsed time and ETA) on
 * standard error and a summary on standard output.  Errors go to stderr
 * with a non-zero status; an interrupted job resumes with --resume.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/app.h"
#include "common/file.h"
#include "inference/llm.h"

void app_help_convert(FILE *out)
{
	const struct llm_convert_params p = llm_convert_default_params();

	fprintf(out,
		"Usage: tern convert -i MODEL_DIR -o OUT_DIR [options]\n"
		"\n"
		"Quantize a bf16/f16/f32 Hugging Face model (Llama, Mistral,\n"
		"Qwen2/2.5/3, Mixtral, Qwen-MoE) to EXL3: layer by layer, each layer\n"
		"calibrated on the states the already-quantized layers produce,\n"
		"Hessian-aware (LDLQ) trellis quantization after Hadamard rotation, the\n"
		"bit budget spread over the layers (the first and last get more),\n"
		"lm_head at its own bits.  The output directory loads in tern like any\n"
		"model.\n"
		"\n"
		"Options:\n"
		"  -i, --in DIR         the source model directory\n"
		"  -o, --out DIR        the output directory (created)\n"
		"  -b, --bits B         average bits per weight, 1 to 8 (default %.1f)\n"
		"      --head-bits N    lm_head bits, 1 to 8, or 16 to keep it (default %d)\n"
		"      --codebook C     mul1, mcg or 3inst (default %s)\n"
		"  -c, --cal FILE       calibration text (default: the bundled corpus);\n"
		"                       'random': random token ids only (no tokenizer)\n"
		"      --cal-rows N     calibration rows (default %zu)\n"
		"      --cal-cols N     tokens per row (default %zu)\n"
		"  -w, --work DIR       work directory (default OUT_DIR/convert-work)\n"
		"  -r, --resume         continue an interrupted conversion\n"
		"      --keep-work      keep the work directory after success\n"
		"      --seed N         seed of the random rotations' signs (default %llu)\n"
		"      --max-layers N   stop after N layers, as an interruption would\n"
		"                       (for trying --resume)\n"
		"  -t, --threads N      CPU threads (default: all cores)\n"
		"      --backend NAME   cpu, cuda or auto (default cpu): where the\n"
		"                       calibration passes run, and with cuda the\n"
		"                       trellis search too (the same search, ~30x\n"
		"                       faster)\n"
		"  -q, --quiet          no progress on standard error\n"
		"  -h, --help           show this help\n"
		"\n"
		"The work directory holds each finished layer; after an interruption\n"
		"(Ctrl-C, a crash, a full disk) run the same command with --resume: the\n"
		"result is the same as an uninterrupted run.\n",
		p.bits, p.head_bits, p.codebook, p.cal_rows, p.cal_cols,
		(unsigned long long)p.seed);
}

struct cmd_progress {
	int show;
	size_t bad_rows; /* last reported */
};

static void fmt_time(char *buf, size_t cap, double s)
{
	if (s < 0)
		snprintf(buf, cap, "?");
	else if (s < 3600)
		snprintf(buf, cap, "%d:%02d", (int)s / 60, (int)s % 60);
	else
		snprintf(buf, cap, "%d:%02d:%02d", (int)s / 3600, (int)s / 60 % 60,
			 (int)s % 60);
}

static void on_progress(void *user, const struct llm_convert_progress *p)
{
	struct cmd_progress *cp = user;
	char el[32], eta[32], bar[21];
	int i, fill;

	if (!cp->show)
		return;
	fill = p->n_steps ? (int)(20 * p->step / p->n_steps) : 0;
	for (i = 0; i < 20; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[20] = '\0';
	fmt_time(el, sizeof el, p->elapsed_s);
	fmt_time(eta, sizeof eta, p->eta_s);
	if (isatty(STDERR_FILENO))
		fprintf(stderr, "\r\033[K[%s] %zu/%zu  %s  elapsed %s  eta %s", bar,
			p->step, p->n_steps, p->what, el, eta);
	else
		fprintf(stderr, "%zu/%zu  %s  elapsed %s  eta %s\n", p->step,
			p->n_steps, p->what, el, eta);
	if (p->bad_rows > cp->bad_rows) {
		cp->bad_rows = p->bad_rows;
		fprintf(stderr, "%s%zu calibration rows dropped so far (inf or NaN "
			"activations)\n", isatty(STDERR_FILENO) ? "\n" : "", p->bad_rows);
	}
	fflush(stderr);
}

static int parse_size(const char *s, size_t *out)
{
	char *end;
	long long v = strtoll(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < 1)
		return -1;
	*out = (size_t)v;
	return 0;
}

int app_cmd_convert(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "in", required_argument, NULL, 'i' },
		{ "out", required_argument, NULL, 'o' },
		{ "bits", required_argument, NULL, 'b' },
		{ "head-bits", required_argument, NULL, 'H' },
		{ "codebook", required_argument, NULL, 'C' },
		{ "cal", required_argument, NULL, 'c' },
		{ "cal-rows", required_argument, NULL, 'R' },
		{ "cal-cols", required_argument, NULL, 'L' },
		{ "work", required_argument, NULL, 'w' },
		{ "resume", no_argument, NULL, 'r' },
		{ "keep-work", no_argument, NULL, 'k' },
		{ "seed", required_argument, NULL, 'S' },
		{ "threads", required_argument, NULL, 't' },
		{ "backend", required_argument, NULL, 'B' },
		{ "max-layers", required_argument, NULL, 'M' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct llm_convert_params p = llm_convert_default_params();
	struct cmd_progress cp = { 1, 0 };
	int cal_set = 0;
	struct diag d;
	char *end;
	int c, rc;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":i:o:b:c:w:rt:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'i': p.in_dir = optarg; break;
		case 'o': p.out_dir = optarg; break;
		case 'b':
			p.bits = strtod(optarg, &end);
			if (*optarg == '\0' || *end != '\0' || !(p.bits >= 1.0 && p.bits <= 8.0)) {
				app_error("convert: --bits wants a number from 1 to 8, not '%s'",
					  optarg);
				return APP_STATUS_USAGE;
			}
			break;
		case 'H':
			p.head_bits = (int)strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' ||
			    !((p.head_bits >= 1 && p.head_bits <= 8) || p.head_bits == 16)) {
				app_error("convert: --head-bits wants 1 to 8 or 16, not '%s'",
					  optarg);
				return APP_STATUS_USAGE;
			}
			break;
		case 'C':
			if (strcmp(optarg, "mul1") && strcmp(optarg, "mcg") &&
			    strcmp(optarg, "3inst")) {
				app_error("convert: --codebook is mul1, mcg or 3inst, not '%s'",
					  optarg);
				return APP_STATUS_USAGE;
			}
			p.codebook = optarg;
			break;
		case 'c': p.cal_file = optarg; cal_set = 1; break;
		case 'R':
		case 'L':
			if (parse_size(optarg, c == 'R' ? &p.cal_rows : &p.cal_cols) != 0) {
				app_error("convert: --%s wants a positive whole number, not '%s'",
					  c == 'R' ? "cal-rows" : "cal-cols", optarg);
				return APP_STATUS_USAGE;
			}
			break;
		case 'w': p.work_dir = optarg; break;
		case 'r': p.resume = true; break;
		case 'k': p.keep_work = true; break;
		case 'S':
			p.seed = strtoull(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0') {
				app_error("convert: --seed wants a whole number, not '%s'", optarg);
				return APP_STATUS_USAGE;
			}
			break;
		case 't':
		case 'M': {
			long v = strtol(optarg, &end, 10);

			if (*optarg == '\0' || *end != '\0' || v < 0 || v > 4096) {
				app_error("convert: --%s wants a whole number, not '%s'",
					  c == 't' ? "threads" : "max-layers", optarg);
				return APP_STATUS_USAGE;
			}
			*(c == 't' ? &p.n_threads : &p.max_layers) = (int)v;
			break;
		}
		case 'B':
			if (app_parse_backend(optarg, &p.backend) != 0) {
				app_error("convert: unknown backend '%s'", optarg);
				return APP_STATUS_USAGE;
			}
			break;
		case 'q': cp.show = 0; break;
		case 'h': app_help_convert(stdout); return APP_STATUS_OK;
		default: app_bad_option("convert", c, argv); return APP_STATUS_USAGE;
		}
	}
	if (!p.in_dir || !p.out_dir || optind != argc) {
		app_error("convert: -i MODEL_DIR and -o OUT_DIR are required (see 'tern "
			  "help convert')");
		return APP_STATUS_USAGE;
	}
	if (!cal_set)
		p.cal_file = app_default_calibration();
	else if (!strcmp(p.cal_file, "random"))
		p.cal_file = NULL;
	p.progress = on_progress;
	p.user = &cp;
	diag_clear(&d);
	rc = llm_convert(&p, &d);
	if (cp.show && isatty(STDERR_FILENO))
		fputc('\n', stderr);
	if (rc < 0) {
		app_error("convert: %s", diag_message(&d, llm_strerror(rc)));
		return APP_STATUS_ERROR;
	}
	printf("converted %s -> %s\n", p.in_dir, p.out_dir);
	return APP_STATUS_OK;
}
