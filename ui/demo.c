/* ui/demo.c — manual self-check of the UI with canned data (no model).
 *
 * Not installed.  Run `ui/ui-demo [THEMES_DIR]` in a terminal (or in tmux:
 * tmux new-session -d -x 80 -y 24 ui/ui-demo; tmux capture-pane -p).  Every
 * message you send gets a fake streamed markdown reply; Esc stops it.
 * Themes from THEMES_DIR (default ./themes) are selectable with F10.
 */
#include "config.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "themes/theme.h"
#include "ui/ui.h"

static const char reply[] =
	"Here is a **demo** reply with *emphasis*, `inline code` and a list:\n"
	"- first item\n- second item with \xe4\xb8\xad\xe6\x96\x87 and \xf0\x9f\x91\x8d\n\n"
	"```c\nint main(void)\n{\n\treturn 0; // done\n}\n```\n"
	"## That is all\n";

static void on_signal(int sig)
{
	ui_term_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

int main(int argc, char **argv)
{
	struct theme_set set;
	struct diag d;
	struct ui *ui;
	struct ui_conv_item convs[] = { { 1, "Demo chat" }, { 2, "Another one" } };
	struct ui_field fields[] = {
		{ "temperature", UI_FIELD_FLOAT, 0, 2, "0.8", "sampling temperature" },
		{ "top_k", UI_FIELD_INT, 0, 1000, "40", "keep the k most likely tokens (0 = off)" },
		{ "greedy", UI_FIELD_BOOL, 0, 0, "false", "always take the most likely token" },
	};
	const char *presets[] = { "default", "precise", "creative" };
	struct ui_model_item models[] = { { "stories260K", "models/stories260K", "260K f32" } };
	const char **names;
	int next_id = 100, streaming = -1, running = 1;
	size_t pos = 0;
	struct ui_status st = { "stories260K", "cpu", 0, 512, 0, 0, false, 0.0 };

	diag_clear(&d);
	theme_set_init(&set);
	theme_set_load_dir(&set, argc > 1 ? argv[1] : "themes", &d);
	names = calloc((size_t)set.n_items, sizeof *names);
	for (int i = 0; i < set.n_items; i++)
		names[i] = set.items[i].name;

	ui = ui_new(NULL);
	atexit(ui_term_restore);
	signal(SIGTERM, on_signal);
	signal(SIGSEGV, on_signal);
	if (ui_term_open(ui, &d)) {
		fprintf(stderr, "ui-demo: %s\n", d.msg);
		return 1;
	}
	ui_conversations_set(ui, convs, 2, 1);
	ui_sampler_set(ui, fields, 3);
	ui_presets_set(ui, presets, 3);
	ui_models_set(ui, models, 1);
	ui_themes_set(ui, names, set.n_items);
	ui_status_set(ui, &st);
	ui_notice_set(ui, UI_NOTICE_INFO, "demo mode: replies are canned");
	ui_transcript_add(ui, 1, UI_ROLE_USER, "What can you do?", 1, 1);
	ui_transcript_add(ui, 2, UI_ROLE_ASSISTANT, reply, 1, 2);

	while (running) {
		struct pollfd pfd = { ui_input_fd(ui), POLLIN, 0 };
		struct ui_event ev;

		ui_draw(ui);
		/* also after EINTR: curses turns SIGWINCH into a resize key
		 * that only a read delivers */
		poll(&pfd, 1, streaming >= 0 ? 20 : 1000);
		ui_process_input(ui);
		if (streaming >= 0) {
			size_t n = pos + 3 < sizeof reply - 1 ? 3 : sizeof reply - 1 - pos;
			ui_transcript_append(ui, streaming, reply + pos, n);
			pos += n;
			st.ctx_used += 1;
			st.tokens_per_s = 50.0;
			ui_status_set(ui, &st);
			if (pos >= sizeof reply - 1) {
				streaming = -1;
				ui_generating_set(ui, 0);
			}
		}
		while (ui_poll_event(ui, &ev)) {
			switch (ev.type) {
			case UI_EVENT_QUIT: running = 0; break;
			case UI_EVENT_SUBMIT:
			case UI_EVENT_MESSAGE_EDIT:
				if (ev.type == UI_EVENT_MESSAGE_EDIT)
					ui_transcript_truncate(ui, ev.id);
				ui_transcript_add(ui, next_id++, UI_ROLE_USER, ev.text, 1, 1);
				streaming = next_id++;
				pos = 0;
				ui_transcript_add(ui, streaming, UI_ROLE_ASSISTANT, "", 1, 1);
				ui_generating_set(ui, 1);
				break;
			case UI_EVENT_CANCEL:
				streaming = -1;
				ui_generating_set(ui, 0);
				break;
			case UI_EVENT_THEME_SELECT:
				if (ev.index >= 0 && ev.index < set.n_items)
					ui_theme_apply(ui, &set.items[ev.index]);
				break;
			case UI_EVENT_MODEL_SELECT:
				ui_model_progress(ui, 1.0, "loaded (demo)");
				break;
			default:
				break;
			}
		}
	}
	ui_free(ui);
	theme_set_fini(&set);
	free(names);
	return 0;
}
