/* app/main.c — entry point: global options, subcommand dispatch, and the
 * only place that may exit().
 *
 *   tern                      the interactive chat on the configured model
 *   tern SUBCOMMAND [ARGS]    a script-friendly subcommand (see --help)
 *   tern help [SUBCOMMAND]    usage
 *   tern --version | --help
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "inference/llm.h"

struct subcommand {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
	void (*help)(FILE *out);
};

static const struct subcommand subcommands[] = {
#define SUBCOMMAND(n, s) { #n, s, app_cmd_##n, app_help_##n },
#include "app/subcommands.def"
#undef SUBCOMMAND
	{ NULL, NULL, NULL, NULL },
};

static const struct subcommand *find_subcommand(const char *name)
{
	const struct subcommand *c;

	for (c = subcommands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static void usage(FILE *out)
{
	const struct subcommand *c;

	fprintf(out,
		"Usage: tern [OPTIONS]            chat in the terminal\n"
		"       tern SUBCOMMAND [ARGS...]  run one task for scripts\n"
		"       tern help [SUBCOMMAND]     show help\n"
		"\n"
		"tern is a local LLM chat for the terminal.  With no subcommand it starts\n"
		"the chat on the model named in ~/.config/tern/config.yaml (the bundled\n"
		"stories260k model when there is none).\n"
		"\n"
		"Options:\n"
		"  -m, --model DIR|NAME  start with this model directory, or the\n"
		"                        config's model of that name\n"
		"  -c, --config FILE     the configuration (default\n"
		"                        ~/.config/tern/config.yaml)\n"
		"      --kv-type T       KV cache for the models loaded in this chat:\n"
		"                        f16, qN (2..8 bits: q4) or K,V bits (q8,q4);\n"
		"                        default: each model entry's kv_bits\n"
		"  -h, --help            show this help and exit\n"
		"      --version         show the version and exit\n"
		"\n"
		"Subcommands:\n");
	for (c = subcommands; c->name; c++)
		fprintf(out, "  %-10s %s\n", c->name, c->summary);
	fprintf(out, "\nRun 'tern help SUBCOMMAND' for a subcommand's options.\n");
}

static int help_main(int argc, char **argv)
{
	const struct subcommand *c;

	if (argc < 2 || strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return APP_STATUS_OK;
	}
	c = find_subcommand(argv[1]);
	if (!c) {
		app_error("no such subcommand '%s' (see 'tern --help')", argv[1]);
		return APP_STATUS_USAGE;
	}
	c->help(stdout);
	return APP_STATUS_OK;
}

int main(int argc, char **argv)
{
	const struct subcommand *c;

	if (argc >= 2) {
		const char *a = argv[1];

		if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
			printf("tern %s\n", llm_version());
			return EXIT_SUCCESS;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return EXIT_SUCCESS;
		}
		if (strcmp(a, "help") == 0)
			exit(help_main(argc - 1, argv + 1));
		if (a[0] != '-') {
			c = find_subcommand(a);
			if (!c) {
				app_error("unknown subcommand '%s' (see 'tern --help')", a);
				exit(APP_STATUS_USAGE);
			}
			/* Subcommands see argv[0] == their own name. */
			exit(c->run(argc - 1, argv + 1));
		}
	}
	exit(app_chat_main(argc, argv));
}
