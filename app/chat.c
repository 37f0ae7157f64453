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
#include "inference/llm.h"

int app_chat_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "config", required_argument, NULL, 'c' },
		{ "kv-type", required_argument, NULL, 'K' },
		{ NULL, 0, NULL, 0 },
	};
	const char *model = NULL, *config = NULL;
	int c, kb = 0, vb = 0;

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
		case 'K': {
			struct llm_model_params mp = llm_model_default_params();

			/* the chat's caches are f16 or quantized */
			if (!llm_kv_type_parse(optarg, &mp) || mp.kv_type == LLM_KV_F32) {
				app_error("unknown KV type '%s' for the chat (f16, q2..q8, "
					  "or K,V bits as q8,q4)", optarg);
				return APP_STATUS_USAGE;
			}
			kb = mp.kv_type == LLM_KV_QUANT ? mp.kv_k_bits : 16;
			vb = mp.kv_type == LLM_KV_QUANT ? mp.kv_v_bits : 16;
			break;
		}
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
	return app_tui_run(model, config, kb, vb);
}
