/* app/cmd_tokenize.c — `tern tokenize`: encode text to token ids or decode
 * ids to text with a model's Hugging Face tokenizer.
 *
 * Output is meant for scripts: --ids-only prints the ids on one line
 * separated by single spaces; --decode prints the text exactly, with no
 * newline added.  TEXT "-" reads stdin as it is (every byte, NUL
 * included); like any TEXT, bytes that are not valid UTF-8 are encoded as
 * U+FFFD (llm_tokenizer_encode repairs them, as HF's str input implies).
 * Errors go to stderr and give a non-zero status; this never exits.
 */
#include "config.h"

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "inference/llm.h"

void app_help_tokenize(FILE *out)
{
	fprintf(out,
		"Usage: tern tokenize -m MODEL [--special] [--ids-only] TEXT\n"
		"       tern tokenize -m MODEL --decode \"ID ID ...\" [--skip-special]\n"
		"\n"
		"Encode TEXT with the model's tokenizer (tokenizer.json, as Hugging Face\n"
		"tokenizers does) and print a table of ids and pieces, or decode ids.\n"
		"\n"
		"Options:\n"
		"  -m, --model PATH     model directory or tokenizer.json\n"
		"  -s, --special        add BOS/EOS as the tokenizer's post-processor or\n"
		"                       tokenizer_config.json say\n"
		"  -i, --ids-only       print only the ids, on one line, space-separated\n"
		"  -d, --decode IDS     decode whitespace-separated ids; prints the text\n"
		"                       exactly, with no newline added\n"
		"  -S, --skip-special   with --decode, drop special tokens\n"
		"  -h, --help           show this help\n"
		"\n"
		"TEXT '-' reads standard input as it is (every byte, NUL included, no\n"
		"newline stripped).  Bytes that are not valid UTF-8 become U+FFFD\n"
		"before tokenizing, as in Hugging Face tokenizers, which take a str.\n");
}

/* a piece shown readably: control bytes and backslash escaped */
static void print_piece(FILE *f, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\\')
			fputs("\\\\", f);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c == '\r')
			fputs("\\r", f);
		else if (c < 0x20 || c == 0x7F)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
	}
}

static int do_decode(struct llm_tokenizer *tok, const char *list, bool skip)
{
	int *raw = NULL;
	int32_t *ids;
	size_t n = 0, i, len = 0;
	char err[256], *text = NULL;
	struct diag d;
	int rc;

	if (app_parse_ids(list, &raw, &n, err, sizeof err) != 0) {
		app_error("tokenize: --decode: %s", err);
		return APP_STATUS_USAGE;
	}
	ids = malloc((n ? n : 1) * sizeof *ids);
	if (!ids) {
		free(raw);
		app_error("tokenize: out of memory");
		return APP_STATUS_ERROR;
	}
	for (i = 0; i < n; i++)
		ids[i] = (int32_t)raw[i];
	free(raw);
	diag_clear(&d);
	rc = llm_tokenizer_decode(tok, ids, n, skip, &text, &len, &d);
	free(ids);
	if (rc) {
		app_error("tokenize: %s", diag_message(&d, llm_strerror(rc)));
		return APP_STATUS_ERROR;
	}
	fwrite(text, 1, len, stdout);
	free(text);
	return APP_STATUS_OK;
}

static int do_encode(struct llm_tokenizer *tok, const char *text, size_t len, bool special,
		     bool ids_only)
{
	int32_t *ids = NULL;
	size_t n = 0, i;
	struct diag d;
	int rc;

	diag_clear(&d);
	rc = llm_tokenizer_encode(tok, text, len, special, &ids, &n, &d);
	if (rc) {
		app_error("tokenize: %s", diag_message(&d, llm_strerror(rc)));
		return APP_STATUS_ERROR;
	}
	if (ids_only) {
		for (i = 0; i < n; i++)
			printf(i ? " %d" : "%d", (int)ids[i]);
		putchar('\n');
	} else {
		for (i = 0; i < n; i++) {
			size_t pl = 0;
			const char *p = llm_tokenizer_piece(tok, ids[i], &pl);

			printf("%8d  '", (int)ids[i]);
			print_piece(stdout, p ? p : "", pl);
			printf("'%s\n", llm_tokenizer_is_special(tok, ids[i]) ? "  (special)" : "");
		}
		printf("%zu tokens\n", n);
	}
	free(ids);
	return APP_STATUS_OK;
}

int app_cmd_tokenize(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "special", no_argument, NULL, 's' },
		{ "ids-only", no_argument, NULL, 'i' },
		{ "decode", required_argument, NULL, 'd' },
		{ "skip-special", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *model = NULL, *decode = NULL;
	bool special = false, ids_only = false, skip = false;
	struct llm_tokenizer *tok = NULL;
	struct diag d;
	int c, status;

	optind = 0; /* full reset: main may have used getopt already */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:sid:Sh", opts, NULL)) != -1) {
		switch (c) {
		case 'm': model = optarg; break;
		case 's': special = true; break;
		case 'i': ids_only = true; break;
		case 'd': decode = optarg; break;
		case 'S': skip = true; break;
		case 'h':
			app_help_tokenize(stdout);
			return APP_STATUS_OK;
		default:
			app_bad_option("tokenize", c, argv);
			return APP_STATUS_USAGE;
		}
	}
	if (!model) {
		app_error("tokenize: -m MODEL is required (see 'tern help tokenize')");
		return APP_STATUS_USAGE;
	}
	if (decode ? optind != argc : optind + 1 != argc) {
		app_error(decode ? "tokenize: --decode takes no TEXT argument"
				 : "tokenize: exactly one TEXT argument is needed ('-' for stdin)");
		return APP_STATUS_USAGE;
	}
	diag_clear(&d);
	if ((c = llm_tokenizer_open(model, &tok, &d)) != 0) {
		app_error("tokenize: %s", diag_message(&d, llm_strerror(c)));
		return APP_STATUS_ERROR;
	}
	if (decode) {
		status = do_decode(tok, decode, skip);
	} else if (strcmp(argv[optind], "-") == 0) {
		char *buf = NULL;
		size_t len = 0;

		if (app_read_stdin(&buf, &len) != 0) {
			app_error("tokenize: cannot read standard input");
			status = APP_STATUS_ERROR;
		} else {
			status = do_encode(tok, buf, len, special, ids_only);
			free(buf);
		}
	} else {
		status = do_encode(tok, argv[optind], strlen(argv[optind]), special, ids_only);
	}
	if (fflush(stdout) != 0 && status == APP_STATUS_OK) {
		app_error("tokenize: cannot write standard output");
		status = APP_STATUS_ERROR;
	}
	llm_tokenizer_free(tok);
	return status;
}
