/* ui/form.c — field storage and validation for the sampler form.
 *
 * Validation rules: int = optional sign + decimal digits, nothing else,
 * within [min, max]; float = strtod of the whole string, finite, within
 * [min, max]; bool = true/false/yes/no/on/off/1/0 (normalised to
 * true/false); string = anything without control characters.
 */
#include "config.h"

#include "ui/form_impl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/xalloc.h"

void ui_form_init(struct ui_form *f)
{
	memset(f, 0, sizeof *f);
	ui_input_init(&f->edit);
}

static void clear_fields(struct ui_form *f)
{
	for (int i = 0; i < f->n_fields; i++) {
		free(f->fields[i].name);
		free(f->fields[i].value);
		free(f->fields[i].help);
	}
	free(f->fields);
	f->fields = NULL;
	f->n_fields = 0;
}

void ui_form_fini(struct ui_form *f)
{
	clear_fields(f);
	ui_input_fini(&f->edit);
}

void ui_form_set(struct ui_form *f, const struct ui_field *fields, int n)
{
	clear_fields(f);
	f->fields = xcalloc((size_t)(n > 0 ? n : 1), sizeof *f->fields);
	for (int i = 0; i < n; i++) {
		f->fields[i].name = xstrdup(fields[i].name ? fields[i].name : "");
		f->fields[i].value = xstrdup(fields[i].value ? fields[i].value : "");
		f->fields[i].help = xstrdup(fields[i].help ? fields[i].help : "");
		f->fields[i].type = fields[i].type;
		f->fields[i].min = fields[i].min;
		f->fields[i].max = fields[i].max;
	}
	f->n_fields = n;
	ui_list_set_count(&f->list, n);
}

static void trim(const char *s, char *out, size_t cap)
{
	size_t a = 0, b = strlen(s);

	while (s[a] == ' ' || s[a] == '\t')
		a++;
	while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
		b--;
	if (b - a >= cap)
		b = a + cap - 1;
	memcpy(out, s + a, b - a);
	out[b - a] = '\0';
}

int ui_form_validate(const struct ui_form_field *fld, const char *text, char *out, size_t cap,
		     char *err, size_t errcap)
{
	char t[256];
	char *end;

	trim(text, t, sizeof t);
	switch (fld->type) {
	case UI_FIELD_INT: {
		long long v;
		if (!*t)
			goto empty;
		errno = 0;
		v = strtoll(t, &end, 10);
		if (*end || errno) {
			snprintf(err, errcap, "%s: '%s' is not a whole number", fld->name, t);
			return UI_E_VALUE;
		}
		if ((double)v < fld->min || (double)v > fld->max) {
			snprintf(err, errcap, "%s: must be between %.10g and %.10g", fld->name,
				 fld->min, fld->max);
			return UI_E_VALUE;
		}
		snprintf(out, cap, "%lld", v);
		return 0;
	}
	case UI_FIELD_FLOAT: {
		double v;
		if (!*t)
			goto empty;
		errno = 0;
		v = strtod(t, &end);
		if (*end || errno == ERANGE || !isfinite(v)) {
			snprintf(err, errcap, "%s: '%s' is not a number", fld->name, t);
			return UI_E_VALUE;
		}
		if (v < fld->min || v > fld->max) {
			snprintf(err, errcap, "%s: must be between %.10g and %.10g", fld->name,
				 fld->min, fld->max);
			return UI_E_VALUE;
		}
		snprintf(out, cap, "%.10g", v);
		return 0;
	}
	case UI_FIELD_BOOL: {
		static const char *const yes[] = { "true", "yes", "on", "1" };
		static const char *const no[] = { "false", "no", "off", "0" };
		for (int i = 0; i < 4; i++) {
			if (!strcasecmp(t, yes[i])) {
				snprintf(out, cap, "true");
				return 0;
			}
			if (!strcasecmp(t, no[i])) {
				snprintf(out, cap, "false");
				return 0;
			}
		}
		snprintf(err, errcap, "%s: '%s' is not true/false", fld->name, t);
		return UI_E_VALUE;
	}
	case UI_FIELD_STRING:
		for (const char *p = text; *p; p++) {
			if ((unsigned char)*p < 0x20) {
				snprintf(err, errcap, "%s: control characters are not allowed",
					 fld->name);
				return UI_E_VALUE;
			}
		}
		snprintf(out, cap, "%s", text);
		return 0;
	}
	snprintf(err, errcap, "%s: unknown field type", fld->name);
	return UI_E_VALUE;
empty:
	snprintf(err, errcap, "%s: a value is required", fld->name);
	return UI_E_VALUE;
}
