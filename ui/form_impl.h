/* ui/form_impl.h — the sampler settings form (ui/form.c).
 *
 * Owns copies of the field definitions the app supplied and the text being
 * edited.  Values are only ever committed after ui_form_validate accepted
 * them, so the app never receives an out-of-range number.
 */
#ifndef TERN_UI_FORM_IMPL_H
#define TERN_UI_FORM_IMPL_H

#include <stddef.h>

#include "ui/input_impl.h"
#include "ui/list_impl.h"
#include "ui/ui.h"

struct ui_form_field {
	char *name, *value, *help;
	enum ui_field_type type;
	double min, max;
};

struct ui_form {
	struct ui_form_field *fields;
	int n_fields;
	struct ui_list list;
	int editing;          /* 1 while the edit line is open */
	struct ui_input edit; /* single-line editor for the value */
	char error[160];      /* last validation error ("" = none) */
};

void ui_form_init(struct ui_form *f);
void ui_form_fini(struct ui_form *f);
void ui_form_set(struct ui_form *f, const struct ui_field *fields, int n);

/* Check text against a field; on success write the normalised value
 * ("0.7", "true", "40") into out and return 0; else UI_E_VALUE with a
 * reason in err ("top_k: must be between 0 and 100"). */
int ui_form_validate(const struct ui_form_field *fld, const char *text, char *out, size_t cap,
		     char *err, size_t errcap);

#endif
