/* ui/keymap_impl.h — key -> action table (ui/keymap.c).
 *
 * One table for the whole UI (tmux's key tables, one table here): each key
 * maps to at most one action; actions that depend on focus (UP moves in the
 * focused list or editor) are interpreted by ui.c.  Bindings are data so
 * config can rebind anything; ui_keymap_defaults installs the shipped set.
 */
#ifndef TERN_UI_KEYMAP_IMPL_H
#define TERN_UI_KEYMAP_IMPL_H

#include <stdint.h>

#include "ui/ui.h"

struct ui_binding {
	uint32_t key;
	enum ui_action action;
};

struct ui_keymap {
	struct ui_binding *b;
	int n, cap;
};

void ui_keymap_init(struct ui_keymap *km);   /* empty */
void ui_keymap_defaults(struct ui_keymap *km);
void ui_keymap_fini(struct ui_keymap *km);
/* Set (action NONE removes) the binding of key. */
void ui_keymap_set(struct ui_keymap *km, uint32_t key, enum ui_action a);
enum ui_action ui_keymap_lookup(const struct ui_keymap *km, uint32_t key);
/* Action for a name ("quit"), or -1. */
int ui_action_from_name(const char *name);
/* Keys bound to action a, formatted and joined with ", " into buf. */
void ui_keymap_keys_for(const struct ui_keymap *km, enum ui_action a, char *buf, size_t cap);
/* Parse and bind on a bare keymap (ui_keymap_bind's work and returns). */
int ui_keymap_bind_names(struct ui_keymap *km, const char *key_name, const char *action_name,
			 struct diag *d);

#endif
