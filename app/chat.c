/* app/chat.c — `tern` with no subcommand: the interactive chat.
 *
 * Parses the chat's own options and starts the curses UI (app/tui.c). */
#include "config.h"

#include <getopt.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "app/app.h"
#include "app/tui.h"

int app_chat_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "config", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	const char *model = NULL, *config = NULL;
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":m:c:", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			model = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case ':':
			app_error("option '%s' needs an argument", argv[optind - 1]);
			return APP_STATUS_USAGE;
		default:
			app_error("unknown option '%s' (see 'tern --help')", argv[optind - 1]);
			return APP_STATUS_USAGE;
		}
	}
	if (optind < argc) {
		app_error("unknown subcommand '%s' (see 'tern --help')", argv[optind]);
		return APP_STATUS_USAGE;
	}
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		app_error("the chat needs a terminal; for scripts use 'tern run' (see 'tern --help')");
		return APP_STATUS_USAGE;
	}
	setlocale(LC_ALL, "");
	return app_tui_run(model, config);
}
