/* tests/app/test_config.c — config.yaml: defaults, a full file, and errors
 * that name file:line:col for unknown keys and bad values; first start writes
 * a commented default file that parses back to the defaults. */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/config.h"
#include "common/file.h"

static int parse(struct app_config *c, const char *text, struct diag *d)
{
	return app_config_parse(c, "cfg.yaml", text, strlen(text), "/bundled", d);
}

START_TEST(test_defaults)
{
	struct app_config c;
	struct diag d;

	ck_assert_int_eq(parse(&c, "", &d), 0);
	ck_assert_str_eq(c.model, "stories260k");
	ck_assert_str_eq(app_config_find_model(&c, "stories260k")->path, "/bundled");
	ck_assert_ptr_nonnull(app_config_find_preset(&c, "greedy"));
	ck_assert(app_config_find_preset(&c, "greedy")->params.temperature == 0.0f);
	ck_assert_int_eq(app_config_find_preset(&c, "greedy")->stop_on_loop, APP_LOOP_DEFAULT);
	ck_assert_int_eq(app_config_find_preset(&c, "greedy")->thinking, 1);
	app_config_fini(&c);
}
END_TEST

START_TEST(test_full_file)
{
	static const char text[] =
		"model: big\n"
		"preset: mine\n"
		"backend: cpu\n"
		"threads: 3\n"
		"models:\n"
		"  - name: big\n"
		"    path: /m/big\n"
		"    draft: /m/small\n"
		"    context: 8192\n"
		"    k_bits: 4\n"
		"    v_bits: 6\n"
		"presets:\n"
		"  - name: mine\n"
		"    temperature: 0.5\n"
		"    top_k: 7\n"
		"    seed: 42\n"
		"    stop_on_loop: 0\n"
		"    thinking: 0\n"
		"  - name: loopy\n"
		"    temperature: 0.7\n"
		"keys:\n"
		"  quit: C-q\n";
	struct app_config c;
	const struct app_model_entry *m;
	const struct app_preset *p;
	struct diag d;

	ck_assert_msg(parse(&c, text, &d) == 0, "%s", d.msg);
	m = app_config_find_model(&c, "big");
	ck_assert_ptr_nonnull(m);
	ck_assert_str_eq(m->draft, "/m/small");
	ck_assert_int_eq(m->context, 8192);
	ck_assert_int_eq(m->k_bits, 4);
	ck_assert_int_eq(m->v_bits, 6);
	p = app_config_find_preset(&c, "mine");
	ck_assert(p->params.temperature == 0.5f);
	ck_assert_int_eq(p->params.top_k, 7);
	ck_assert_uint_eq(p->params.seed, 42);
	ck_assert_int_eq(p->stop_on_loop, 0);
	ck_assert_int_eq(p->thinking, 0);
	ck_assert_int_eq(app_config_find_preset(&c, "loopy")->thinking, 1);
	/* a preset that does not say keeps the loop stop */
	ck_assert_int_eq(app_config_find_preset(&c, "loopy")->stop_on_loop, APP_LOOP_DEFAULT);
	ck_assert_int_eq(c.threads, 3);
	ck_assert_str_eq(c.backend, "cpu");
	ck_assert_uint_eq(c.n_keys, 1);
	ck_assert_str_eq(c.keys[0].key, "C-q");
	ck_assert_int_eq(c.keys[0].line, 22);
	/* The bundled model is still there. */
	ck_assert_ptr_nonnull(app_config_find_model(&c, "stories260k"));
	app_config_fini(&c);
}
END_TEST

START_TEST(test_errors_have_positions)
{
	struct app_config c;
	struct diag d;

	ck_assert_int_eq(parse(&c, "model: stories260k\nfrobnicate: 1\n", &d), -1);
	ck_assert_str_eq(d.msg, "cfg.yaml:2:1: unknown key 'frobnicate' (model, preset, theme, backend, threads, models, presets, keys)");
	app_config_fini(&c);

	ck_assert_int_eq(parse(&c, "presets:\n  - name: x\n    temperature: hot\n", &d), -1);
	ck_assert_str_eq(d.msg, "cfg.yaml:3:18: temperature: 'hot' is not a number");
	app_config_fini(&c);

	ck_assert_int_eq(parse(&c, "presets:\n  - name: x\n    top_p: 1.5\n", &d), -1);
	ck_assert_ptr_nonnull(strstr(d.msg, "cfg.yaml:3:12: top_p: 1.5 is outside [0, 1]"));
	app_config_fini(&c);

	ck_assert_int_eq(parse(&c, "presets:\n  - name: x\n    stop_on_loop: 5000\n", &d), -1);
	ck_assert_ptr_nonnull(strstr(d.msg, "cfg.yaml:3:19: stop_on_loop: 5000 is outside [0, 1024]"));
	app_config_fini(&c);

	ck_assert_int_eq(parse(&c, "models:\n  - name: a\n    path: /x\n    kv_bits: 12\n", &d), -1);
	ck_assert_ptr_nonnull(strstr(d.msg, "cfg.yaml:4:14:"));
	app_config_fini(&c);

	ck_assert_int_eq(parse(&c, "model: nope\n", &d), -1);
	ck_assert_ptr_nonnull(strstr(d.msg, "'nope' is not in the models list"));
	app_config_fini(&c);

	/* the chat checks the theme's name against the themes it finds and
	 * reports it where it was written */
	ck_assert_int_eq(parse(&c, "backend: cpu\ntheme:   nosuch\n", &d), 0);
	ck_assert_str_eq(c.theme, "nosuch");
	ck_assert_int_eq(c.theme_line, 2);
	ck_assert_int_eq(c.theme_col, 10);
	app_config_fini(&c);

	ck_assert_int_eq(parse(&c, "a: [1, 2\n", &d), -1); /* YAML syntax */
	ck_assert_ptr_nonnull(strstr(d.msg, "cfg.yaml:"));
	/* A failed parse leaves usable defaults. */
	ck_assert_str_eq(c.model, "stories260k");
	app_config_fini(&c);
}
END_TEST

START_TEST(test_first_start_writes_default)
{
	char dir[] = "/tmp/tern-cfg-XXXXXX", cmd[128];
	struct app_config c, c2;
	struct diag d;
	char *path, *text;
	size_t len;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	path = file_join(dir, "sub/config.yaml");
	ck_assert_msg(app_config_load(&c, path, "/bundled/model", &d) == 0, "%s", d.msg);
	ck_assert(file_is_file(path));
	ck_assert_int_eq(file_read_all(path, 0, &text, &len, &d), 0);
	ck_assert_ptr_nonnull(strstr(text, "path: /bundled/model"));
	ck_assert_ptr_nonnull(strstr(text, "# "));
	free(text);
	/* Loading again reads the file and gives the same result. */
	ck_assert_int_eq(app_config_load(&c2, path, "/bundled/model", &d), 0);
	ck_assert_str_eq(c2.models[0].path, c.models[0].path);
	app_config_fini(&c);
	app_config_fini(&c2);
	free(path);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* F10's choice goes into the config file in place: comments, other keys
 * and a comment after the value stay; a name needing quotes is quoted;
 * a file without the key gets it appended; the result parses back. */
START_TEST(test_set_top_in_place)
{
	char dir[] = "/tmp/tern-cfgset-XXXXXX", *path, *text;
	struct app_config c;
	struct diag d;
	size_t len;
	FILE *f;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	path = file_join(dir, "config.yaml");
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("# my settings\nmodel: stories260k\n\n# Theme: ...\ntheme: default   # was dark\n"
	      "threads: 2\n", f);
	fclose(f);
	ck_assert_msg(app_config_set_top(path, "theme", "light", &d) == 0, "%s", d.msg);
	ck_assert_int_eq(file_read_all(path, 0, &text, &len, &d), 0);
	ck_assert_str_eq(text, "# my settings\nmodel: stories260k\n\n# Theme: ...\n"
			       "theme: light  # was dark\nthreads: 2\n");
	free(text);
	ck_assert_msg(app_config_load(&c, path, "/bundled", &d) == 0, "%s", d.msg);
	ck_assert_str_eq(c.theme, "light");
	ck_assert_int_eq(c.threads, 2);
	app_config_fini(&c);
	ck_assert_int_eq(app_config_set_top(path, "theme", "my \"soft\" one", &d), 0);
	ck_assert_msg(app_config_load(&c, path, "/bundled", &d) == 0, "%s", d.msg);
	ck_assert_str_eq(c.theme, "my \"soft\" one");
	app_config_fini(&c);
	/* no theme line (and no final newline): appended */
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("threads: 3", f);
	fclose(f);
	ck_assert_int_eq(app_config_set_top(path, "theme", "high-contrast", &d), 0);
	ck_assert_int_eq(file_read_all(path, 0, &text, &len, &d), 0);
	ck_assert_str_eq(text, "threads: 3\ntheme: high-contrast\n");
	free(text);
	remove(path);
	ck_assert_int_lt(app_config_set_top(path, "theme", "light", &d), 0); /* no file */
	free(path);
	rmdir(dir);
}
END_TEST

START_TEST(test_array_fields)
{
	struct app_preset p;
	const struct app_sampler_field *f;
	struct llm_sampler_params sp;
	struct diag d;
	char buf[256];

	memset(&p, 0, sizeof p);
	p.params = llm_sampler_default_params();
	for (f = app_sampler_fields; f->name; f++) {
		if (strcmp(f->name, "order") == 0) {
			ck_assert_int_eq(app_preset_set(&p, f, "top_k, min_p,temperature", &d), 0);
			ck_assert_int_eq(p.params.n_order, 3);
			ck_assert_int_eq(p.params.order[1], LLM_SAMPLER_STAGE_MIN_P);
			app_preset_get(&p, f, buf, sizeof buf);
			ck_assert_str_eq(buf, "top_k,min_p,temperature");
			ck_assert_int_eq(app_preset_set(&p, f, "top_k,bogus", &d), -1);
			ck_assert_ptr_nonnull(strstr(d.msg, "unknown stage 'bogus'"));
			ck_assert_int_eq(p.params.n_order, 3); /* unchanged */
		} else if (strcmp(f->name, "logit_bias") == 0) {
			ck_assert_int_eq(app_preset_set(&p, f, "5=-inf 7=2.5", &d), 0);
			ck_assert_uint_eq(p.n_bias, 2);
			ck_assert(isinf(p.bias[0].bias) && p.bias[0].bias < 0);
			ck_assert(p.bias[1].bias == 2.5f);
			ck_assert_int_eq(app_preset_set(&p, f, "5", &d), -1);
		} else if (strcmp(f->name, "banned_tokens") == 0) {
			ck_assert_int_eq(app_preset_set(&p, f, "1 2,3", &d), 0);
			ck_assert_uint_eq(p.n_banned, 3);
			app_preset_get(&p, f, buf, sizeof buf);
			ck_assert_str_eq(buf, "1 2 3");
		}
	}
	sp = app_preset_params(&p);
	ck_assert_uint_eq(sp.n_logit_bias, 2);
	ck_assert_ptr_eq(sp.banned_tokens, p.banned);
}
END_TEST

/* A preset saved from the panel comes back on the next load, and saving
 * under a built-in name replaces that preset rather than adding a twin. */
START_TEST(test_preset_save_roundtrip)
{
	char dir[] = "/tmp/tern-preset-XXXXXX", cmd[128];
	struct app_config c, c2;
	struct app_preset p;
	struct diag d;
	char *path;
	size_t n;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	path = file_join(dir, "config.yaml");
	ck_assert_msg(app_config_load(&c, path, "/bundled", &d) == 0, "%s", d.msg);
	n = c.n_presets;
	p = *app_config_find_preset(&c, "balanced");
	p.params.temperature = 0.3f;
	p.stop_on_loop = 64;
	p.n_banned = 1;
	p.banned[0] = 7;
	for (p.n_bias = 0; p.n_bias < APP_MAX_BIAS; p.n_bias++) {
		p.bias[p.n_bias].token = 100000 + (int32_t)p.n_bias;
		p.bias[p.n_bias].bias = -1.25f;
	}
	ck_assert_msg(app_preset_save(&c, "mine", &p, &d) == 0, "%s", d.msg);
	p.params.temperature = 0.0f;
	ck_assert_msg(app_preset_save(&c, "greedy", &p, &d) == 0, "%s", d.msg);
	ck_assert_uint_eq(c.n_presets, n + 1);
	ck_assert_int_eq(app_preset_save(&c, "../evil", &p, &d), -1);
	ck_assert_msg(app_config_load(&c2, path, "/bundled", &d) == 0, "%s", d.msg);
	ck_assert_uint_eq(c2.n_presets, n + 1);
	ck_assert(app_config_find_preset(&c2, "mine")->params.temperature == 0.3f);
	ck_assert_int_eq(app_config_find_preset(&c2, "mine")->stop_on_loop, 64);
	ck_assert_uint_eq(app_config_find_preset(&c2, "mine")->n_banned, 1);
	ck_assert_int_eq(app_config_find_preset(&c2, "mine")->banned[0], 7);
	/* the longest field (every bias slot used) is written whole */
	ck_assert_uint_eq(app_config_find_preset(&c2, "mine")->n_bias, APP_MAX_BIAS);
	ck_assert_int_eq(app_config_find_preset(&c2, "mine")->bias[APP_MAX_BIAS - 1].token,
			 100000 + APP_MAX_BIAS - 1);
	ck_assert(app_config_find_preset(&c2, "mine")->bias[APP_MAX_BIAS - 1].bias == -1.25f);
	ck_assert_uint_eq(app_config_find_preset(&c2, "greedy")->n_banned, 1);
	app_config_fini(&c);
	app_config_fini(&c2);
	free(path);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

Suite *config_app_suite(void)
{
	Suite *s = suite_create("config_app");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_full_file);
	tcase_add_test(tc, test_errors_have_positions);
	tcase_add_test(tc, test_first_start_writes_default);
	tcase_add_test(tc, test_array_fields);
	tcase_add_test(tc, test_set_top_in_place);
	tcase_add_test(tc, test_preset_save_roundtrip);
	suite_add_tcase(s, tc);
	return s;
}
