/* tests/app/test_store.c — conversation trees (edit/regenerate keep the old
 * branch), JSON round trips, atomic saves, and corrupt files set aside. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/store.h"
#include "common/file.h"

START_TEST(test_branches)
{
	struct app_conv *c = app_conv_new("t");
	int u1, a1, u2, a2, a2b, u1b, path[16], idx, n;

	u1 = app_conv_add(c, -1, APP_ROLE_USER, "hi");
	a1 = app_conv_add(c, u1, APP_ROLE_ASSISTANT, "hello");
	u2 = app_conv_add(c, a1, APP_ROLE_USER, "how are you");
	a2 = app_conv_add(c, u2, APP_ROLE_ASSISTANT, "fine");
	ck_assert_uint_eq(app_conv_path(c, path, 16), 4);
	ck_assert_int_eq(path[3], a2);
	/* Regenerate the last reply: a sibling of a2. */
	a2b = app_conv_add(c, u2, APP_ROLE_ASSISTANT, "great");
	ck_assert_int_eq(app_conv_leaf(c), a2b);
	app_conv_siblings(c, a2b, &idx, &n);
	ck_assert_int_eq(idx, 2);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(app_conv_switch(c, a2b, -1), a2);
	ck_assert_int_eq(app_conv_leaf(c), a2);
	ck_assert_int_eq(app_conv_switch(c, a2, -1), a2); /* no earlier one */
	/* Edit the first user message: a new root branch; the old one stays. */
	u1b = app_conv_add(c, -1, APP_ROLE_USER, "hey");
	ck_assert_uint_eq(app_conv_path(c, path, 16), 1);
	ck_assert_int_eq(path[0], u1b);
	ck_assert_int_eq(app_conv_switch(c, u1b, -1), u1);
	/* Back on the old branch, its last choices are remembered. */
	ck_assert_uint_eq(app_conv_path(c, path, 16), 4);
	ck_assert_int_eq(path[3], a2);
	app_conv_free(c);
}
END_TEST

START_TEST(test_json_roundtrip)
{
	struct app_conv *c = app_conv_new("Ünïcode \"title\""), *r;
	struct diag d;
	char *a, *b;
	int u;

	app_conv_set_content(c, app_conv_add(c, -1, APP_ROLE_USER, "x"), "line1\nline2 \xe2\x82\xac");
	u = app_conv_add(c, 0, APP_ROLE_ASSISTANT, "part");
	app_conv_append_content(c, u, "ial", 3);
	c->msgs[u].partial = 1;
	free(c->system);
	c->system = strdup("be brief");
	a = app_conv_to_json(c);
	ck_assert_msg(app_conv_from_json(a, strlen(a), &r, &d) == 0, "%s", d.msg);
	b = app_conv_to_json(r);
	ck_assert_str_eq(a, b);
	ck_assert_str_eq(r->msgs[1].content, "partial");
	ck_assert_int_eq(r->msgs[1].partial, 1);
	ck_assert_str_eq(r->system, "be brief");
	free(a);
	free(b);
	app_conv_free(r);
	app_conv_free(c);
}
END_TEST

/* A reply's NUL bytes (a model's <0x00> token) are kept, on disk too. */
START_TEST(test_nul_bytes_roundtrip)
{
	static const char reply[] = "a\0b\0\0c";
	char dir[] = "/tmp/tern-store-XXXXXX", cmd[256], *a, *warn;
	struct app_conv *c = app_conv_new(NULL), *r, **all;
	struct diag d;
	size_t n;
	int u;

	u = app_conv_add(c, -1, APP_ROLE_USER, "Once");
	u = app_conv_add(c, u, APP_ROLE_ASSISTANT, "");
	app_conv_append_content(c, u, reply, 3);
	app_conv_append_content(c, u, reply + 3, sizeof reply - 4);
	app_conv_append_content(c, u, "\0", 1);
	ck_assert_uint_eq(c->msgs[u].content_bytes, sizeof reply);
	ck_assert_int_eq(memcmp(c->msgs[u].content, reply, sizeof reply), 0);
	a = app_conv_to_json(c);
	ck_assert_ptr_nonnull(strstr(a, "\"a\\u0000b\\u0000\\u0000c\\u0000\""));
	ck_assert_msg(app_conv_from_json(a, strlen(a), &r, &d) == 0, "%s", d.msg);
	ck_assert_uint_eq(r->msgs[1].content_bytes, sizeof reply);
	ck_assert_int_eq(memcmp(r->msgs[1].content, reply, sizeof reply), 0);
	ck_assert_int_eq(r->msgs[1].content[sizeof reply], '\0');
	ck_assert_uint_eq(r->msgs[0].content_bytes, 4);
	app_conv_free(r);
	/* and through a file */
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(app_conv_save(c, dir, &d), 0);
	ck_assert_int_eq(app_store_load_all(dir, &all, &n, &warn, &d), 0);
	ck_assert_ptr_null(warn);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(all[0]->msgs[1].content_bytes, sizeof reply);
	ck_assert_int_eq(memcmp(all[0]->msgs[1].content, reply, sizeof reply), 0);
	app_conv_free(all[0]);
	free(all);
	free(a);
	app_conv_free(c);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* A file of a later format version is refused and left alone: saving it
 * back as version 1 would drop what this tern does not know. */
START_TEST(test_newer_version_left_alone)
{
	const char *v99 = "{\"version\":99,\"id\":\"x\",\"messages\":[]}";
	const char *v1 = "{\"version\":1,\"id\":\"x\",\"messages\":[]}";
	const char *none = "{\"id\":\"x\",\"messages\":[]}";
	const char *bad = "{\"version\":\"2\",\"id\":\"x\",\"messages\":[]}";
	char dir[] = "/tmp/tern-store-XXXXXX", cmd[256], *path, *warn, *text;
	struct app_conv *c, **all;
	struct diag d;
	size_t n, len;

	ck_assert_int_eq(app_conv_from_json(v99, strlen(v99), &c, &d), APP_STORE_E_NEWER);
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(strstr(d.msg, "newer tern (format version 99"));
	ck_assert_int_eq(app_conv_from_json(bad, strlen(bad), &c, &d), APP_STORE_E_FORMAT);
	ck_assert_int_eq(app_conv_from_json(v1, strlen(v1), &c, &d), 0);
	app_conv_free(c);
	ck_assert_int_eq(app_conv_from_json(none, strlen(none), &c, &d), 0);
	app_conv_free(c);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	path = file_join(dir, "x.json");
	ck_assert_int_eq(file_write_atomic(path, v99, strlen(v99), &d), 0);
	ck_assert_int_eq(app_store_load_all(dir, &all, &n, &warn, &d), 0);
	ck_assert_uint_eq(n, 0);
	free(all);
	ck_assert_ptr_nonnull(warn);
	ck_assert_msg(strstr(warn, "x.json: written by a newer tern") && strstr(warn, "left as it is"),
		      "%s", warn);
	free(warn);
	/* untouched: same name, same bytes */
	ck_assert_int_eq(file_read_all(path, 1 << 20, &text, &len, &d), 0);
	ck_assert_str_eq(text, v99);
	free(text);
	free(path);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(test_blank)
{
	struct app_conv *c = app_conv_new(NULL);

	ck_assert(app_conv_is_blank(c));
	free(c->system);
	c->system = strdup("be brief");
	ck_assert(!app_conv_is_blank(c));
	app_conv_free(c);
	c = app_conv_new("named");
	ck_assert(!app_conv_is_blank(c));
	app_conv_free(c);
	c = app_conv_new(NULL);
	app_conv_add(c, -1, APP_ROLE_USER, "hi");
	ck_assert(!app_conv_is_blank(c));
	app_conv_free(c);
}
END_TEST

START_TEST(test_rejects_bad_structure)
{
	struct app_conv *c;
	struct diag d;
	const char *cyc = "{\"id\":\"x\",\"messages\":[{\"parent\":0,\"role\":\"user\",\"content\":\"a\"}]}";
	const char *role = "{\"id\":\"x\",\"messages\":[{\"parent\":-1,\"role\":\"robot\",\"content\":\"a\"}]}";

	ck_assert_int_eq(app_conv_from_json(cyc, strlen(cyc), &c, &d), -1);
	ck_assert_int_eq(app_conv_from_json(role, strlen(role), &c, &d), -1);
	ck_assert_int_eq(app_conv_from_json("{", 1, &c, &d), -1);
	ck_assert_ptr_nonnull(strstr(d.msg, "line 1"));
	/* ids name the file a save writes (DIR/ID.json): none that leaves DIR */
	{
		static const char *const bad[] = {"../x", "/tmp/x", "a/b", ".hidden", "", "a\\b"};
		char j[256];
		size_t i;

		for (i = 0; i < sizeof bad / sizeof *bad; i++) {
			snprintf(j, sizeof j, "{\"id\":\"%s\",\"messages\":[]}", bad[i]);
			ck_assert_msg(app_conv_from_json(j, strlen(j), &c, &d) == -1, "%s", j);
		}
		snprintf(j, sizeof j, "{\"id\":\"%s\",\"messages\":[]}",
			 "1764361234-123456-4242-0");
		ck_assert_msg(app_conv_from_json(j, strlen(j), &c, &d) == 0, "%s", d.msg);
		app_conv_free(c);
	}
}
END_TEST

START_TEST(test_save_load_and_corrupt)
{
	char dir[] = "/tmp/tern-store-XXXXXX", cmd[256], *warn, *bad;
	struct app_conv *a, *b, **all;
	struct diag d;
	size_t n;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	a = app_conv_new("first");
	app_conv_add(a, -1, APP_ROLE_USER, "one");
	a->updated = 100;
	b = app_conv_new("second");
	app_conv_add(b, -1, APP_ROLE_USER, "two");
	b->updated = 200;
	ck_assert_int_eq(app_conv_save(a, dir, &d), 0);
	ck_assert_int_eq(app_conv_save(b, dir, &d), 0);
	bad = file_join(dir, "broken.json");
	ck_assert_int_eq(file_write_atomic(bad, "{\"id\": tru", 10, &d), 0);
	ck_assert_int_eq(app_store_load_all(dir, &all, &n, &warn, &d), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(all[0]->title, "second"); /* newest first */
	ck_assert_str_eq(all[1]->msgs[0].content, "one");
	ck_assert_ptr_nonnull(warn);
	ck_assert_ptr_nonnull(strstr(warn, "broken.json: damaged (line 1"));
	ck_assert_ptr_nonnull(strstr(warn, "set aside as broken.json.corrupt-"));
	ck_assert(!file_is_file(bad)); /* moved aside, not deleted: */
	snprintf(cmd, sizeof cmd, "ls '%s' | grep -q 'broken.json.corrupt-'", dir);
	ck_assert_int_eq(system(cmd), 0);
	free(warn);
	ck_assert_int_eq(app_conv_delete(all[0], dir, &d), 0);
	app_conv_free(all[0]);
	app_conv_free(all[1]);
	free(all);
	ck_assert_int_eq(app_store_load_all(dir, &all, &n, &warn, &d), 0);
	ck_assert_uint_eq(n, 1);
	app_conv_free(all[0]);
	free(all);
	app_conv_free(a);
	app_conv_free(b);
	free(bad);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_branches);
	tcase_add_test(tc, test_json_roundtrip);
	tcase_add_test(tc, test_nul_bytes_roundtrip);
	tcase_add_test(tc, test_newer_version_left_alone);
	tcase_add_test(tc, test_blank);
	tcase_add_test(tc, test_rejects_bad_structure);
	tcase_add_test(tc, test_save_load_and_corrupt);
	suite_add_tcase(s, tc);
	return s;
}
