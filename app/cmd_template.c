/* app/cmd_template.c — `tern template`: render a chat template.
 *
 *   tern template -m DIR|FILE --messages FILE.json [--tools FILE.json]
 *                 [--add-generation-prompt] [--extra JSON]
 *   tern template --template FILE.jinja --context FILE.json
 *
 * The first form uses a model's own template and its bos/eos tokens, with
 * the variables transformers' apply_chat_template passes; the second renders
 * any template with every key of a JSON object as a variable.  Output is
 * exactly the rendered text (nothing appended).  Exit status: 0, 1 (error),
 * 2 (usage), 3 (the template called raise_exception; message on stderr).
 */
#include "config.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "app/app.h"
#include "common/file.h"
#include "inference/llm.h"

#define INPUT_MAX_BYTES ((size_t)256 << 20)

void app_help_template(FILE *out)
{
	fprintf(out,
		"Usage: tern template -m DIR|FILE --messages FILE.json [options]\n"
		"       tern template --template FILE.jinja --context FILE.json\n"
		"\n"
		"Render a chat template exactly as transformers' apply_chat_template\n"
		"(tokenize=False) does, and print the result with nothing added.\n"
		"\n"
		"  -m, --model DIR|FILE       model directory (chat_template.jinja,\n"
		"                             chat_template.json or tokenizer_config.json),\n"
		"                             or one of those files\n"
		"      --messages FILE.json   a list of {role, content, ...} messages\n"
		"                             (or an object with a \"messages\" key)\n"
		"      --tools FILE.json      a list of JSON-schema tools\n"
		"      --add-generation-prompt  end with the assistant turn's header\n"
		"      --extra JSON           more variables, e.g. '{\"enable_thinking\": false}'\n"
		"  -t, --template FILE.jinja  render this template instead ...\n"
		"  -c, --context FILE.json    ... with every key of this object as a variable\n"
		"  -h, --help                 show this help\n"
		"\n"
		"Exit status: 0 ok, 1 error, 2 usage, 3 the template raised an exception\n"
		"(its message goes to stderr).\n");
}

static json_t *load_json_file(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	struct diag d = {0};
	if (file_read_all(path, INPUT_MAX_BYTES, &buf, &len, &d)) {
		app_error("%s", diag_message(&d, path));
		return NULL;
	}
	json_error_t je;
	json_t *j = json_loadb(buf, len, JSON_ALLOW_NUL, &je);
	free(buf);
	if (!j)
		app_error("%s:%d:%d: %s", path, je.line, je.column, je.text);
	return j;
}

static int report(int rc, const struct diag *d)
{
	if (rc == LLM_E_RAISED) {
		fprintf(stderr, "%s\n", diag_message(d, "template raised an exception"));
		return APP_STATUS_RAISED;
	}
	app_error("%s", diag_message(d, llm_strerror(rc)));
	return APP_STATUS_ERROR;
}

static int render_and_print(const char *src, size_t len, const char *name,
			    json_t *ctx)
{
	struct diag d = {0};
	struct llm_template *t = NULL;
	int rc = llm_template_compile(src, len, name, &t, &d);
	if (rc)
		return report(rc, &d);
	char *ctx_text = json_dumps(ctx, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!ctx_text) {
		llm_template_free(t);
		app_error("out of memory");
		return APP_STATUS_ERROR;
	}
	char *out = NULL;
	size_t out_len = 0;
	rc = llm_template_render(t, ctx_text, &out, &out_len, &d);
	free(ctx_text);
	llm_template_free(t);
	if (rc)
		return report(rc, &d);
	int status = APP_STATUS_OK;
	if (fwrite(out, 1, out_len, stdout) != out_len || fflush(stdout) != 0) {
		app_error("writing the output failed");
		status = APP_STATUS_ERROR;
	}
	free(out);
	return status;
}

int app_cmd_template(int argc, char **argv)
{
	static const struct option opts[] = {
		{"model", required_argument, NULL, 'm'},
		{"messages", required_argument, NULL, 'M'},
		{"tools", required_argument, NULL, 'T'},
		{"add-generation-prompt", no_argument, NULL, 'g'},
		{"extra", required_argument, NULL, 'x'},
		{"template", required_argument, NULL, 't'},
		{"context", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *model = NULL, *messages = NULL, *tools = NULL, *extra = NULL;
	const char *tpl_path = NULL, *ctx_path = NULL;
	bool gen = false;
	int c;

	optind = 0; /* reset getopt: other subcommands may have used it */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:t:c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': model = optarg; break;
		case 'M': messages = optarg; break;
		case 'T': tools = optarg; break;
		case 'g': gen = true; break;
		case 'x': extra = optarg; break;
		case 't': tpl_path = optarg; break;
		case 'c': ctx_path = optarg; break;
		case 'h': app_help_template(stdout); return APP_STATUS_OK;
		default: app_bad_option("template", c, argv); return APP_STATUS_USAGE;
		}
	}
	if (optind < argc) {
		app_error("template: unexpected argument '%s'", argv[optind]);
		return APP_STATUS_USAGE;
	}

	if (tpl_path) {
		if (model || messages || tools || gen || extra || !ctx_path) {
			app_error("template: --template takes only --context FILE.json");
			return APP_STATUS_USAGE;
		}
		char *src = NULL;
		size_t len = 0;
		struct diag d = {0};
		if (file_read_all(tpl_path, INPUT_MAX_BYTES, &src, &len, &d)) {
			app_error("%s", diag_message(&d, tpl_path));
			return APP_STATUS_ERROR;
		}
		json_t *ctx = load_json_file(ctx_path);
		if (!ctx) {
			free(src);
			return APP_STATUS_ERROR;
		}
		int status;
		if (!json_is_object(ctx)) {
			app_error("%s: the context must be a JSON object", ctx_path);
			status = APP_STATUS_ERROR;
		} else {
			status = render_and_print(src, len, tpl_path, ctx);
		}
		json_decref(ctx);
		free(src);
		return status;
	}

	if (!model || !messages) {
		app_error("template: need -m DIR --messages FILE.json, or --template and --context");
		app_help_template(stderr);
		return APP_STATUS_USAGE;
	}
	struct diag d = {0};
	char *src = NULL, *bos = NULL, *eos = NULL;
	int rc = llm_chat_template_load(model, &src, &bos, &eos, &d);
	if (rc)
		return report(rc, &d);

	int status = APP_STATUS_ERROR;
	json_t *ctx = json_object(), *msgs = NULL, *tl = NULL, *x = NULL;
	msgs = load_json_file(messages);
	if (!ctx || !msgs)
		goto out;
	if (json_is_object(msgs)) {
		/* {"messages": [...], "tools": [...]} is accepted too */
		json_t *inner = json_incref(json_object_get(msgs, "messages"));
		if (!tools && json_object_get(msgs, "tools"))
			tl = json_incref(json_object_get(msgs, "tools"));
		json_decref(msgs);
		msgs = inner;
	}
	if (!json_is_array(msgs)) {
		app_error("%s: expected a list of messages", messages);
		goto out;
	}
	if (tools && !(tl = load_json_file(tools)))
		goto out;
	json_object_set(ctx, "messages", msgs);
	json_object_set(ctx, "tools", tl ? tl : json_null());
	json_object_set_new(ctx, "documents", json_null());
	json_object_set_new(ctx, "add_generation_prompt", json_boolean(gen));
	if (bos)
		json_object_set_new(ctx, "bos_token", json_string(bos));
	if (eos)
		json_object_set_new(ctx, "eos_token", json_string(eos));
	if (extra) {
		json_error_t je;
		x = json_loads(extra, JSON_ALLOW_NUL, &je);
		if (!json_is_object(x)) {
			app_error("template: --extra must be a JSON object");
			status = APP_STATUS_USAGE;
			goto out;
		}
		json_object_update(ctx, x);
	}
	status = render_and_print(src, strlen(src), model, ctx);
out:
	json_decref(x);
	json_decref(tl);
	json_decref(msgs);
	json_decref(ctx);
	free(src);
	free(bos);
	free(eos);
	return status;
}
