/* app/tui.h — the interactive chat (curses UI + engine worker). */
#ifndef TERN_APP_TUI_H
#define TERN_APP_TUI_H

/* Run the chat until the user quits.  MODEL: a model name from the config
 * or a model directory (NULL: the config's `model`).  CONFIG_PATH: NULL for
 * $XDG_CONFIG_HOME/tern/config.yaml (written with defaults on first
 * start).  Returns the exit status: 128 + N after signal N (SIGINT,
 * SIGTERM, SIGHUP) ended it, once every conversation is saved. */
int app_tui_run(const char *model, const char *config_path, int k_bits,
		int v_bits);

#endif
