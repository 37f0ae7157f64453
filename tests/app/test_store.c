/* tests/app/test_store.c — conversation trees (edit/regenerate keep the old
 * branch), JSON round trips, atomic saves, corrupt files set aside, and
 * two terns saving one conversation (merged, or saved as a copy). */
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

/* The only conversation in DIR, loaded afresh (as a second tern would). */
static struct app_conv *load_one(const char *dir)
{
	struct app_conv **all, *c;
	struct diag d;
	char *warn;
	size_t n;

	ck_assert_int_eq(app_store_load_all(dir, &all, &n, &warn, &d), 0);
	ck_assert_ptr_null(warn);
	ck_assert_uint_eq(n, 1);
	c = all[0];
	free(all);
	return c;
}

static int find_content(const struct app_conv *c, const char *text)
{
	size_t i;

	for (i = 0; i < c->n_msgs; i++)
		if (strcmp(c->msgs[i].content, text) == 0)
			return (int)i;
	return -1;
}

static void rm_rf(const char *dir)
{
	char cmd[256];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* Two terns on one directory, both in one conversation: neither's
 * messages are lost; the second to save merges, its indices unchanged. */
START_TEST(test_two_processes_merge)
{
	char dir[] = "/tmp/tern-store-XXXXXX";
	struct app_conv *c, *a, *b, *r;
	int a1, ua, ra, ub, rb, i, idx, n;
	struct diag d;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	c = app_conv_new("shared");
	a1 = app_conv_add(c, app_conv_add(c, -1, APP_ROLE_USER, "hi"), APP_ROLE_ASSISTANT, "hello");
	ck_assert_int_eq(app_conv_save(c, dir, &d), 0);
	app_conv_free(c);
	a = load_one(dir);
	b = load_one(dir);
	ck_assert_int_eq(app_conv_save(a, dir, &d), 0); /* unchanged: plain save */
	ua = app_conv_add(a, a1, APP_ROLE_USER, "A asks");
	ra = app_conv_add(a, ua, APP_ROLE_ASSISTANT, "A's reply");
	a->msgs[ra].partial = 1;
	ck_assert_int_eq(app_conv_save(a, dir, &d), 0);
	ub = app_conv_add(b, a1, APP_ROLE_USER, "B asks");
	rb = app_conv_add(b, ub, APP_ROLE_ASSISTANT, "B's reply");
	ck_assert_int_eq(app_conv_save(b, dir, &d), APP_STORE_MERGED);
	ck_assert_ptr_nonnull(strstr(d.msg, "changed by another tern"));
	ck_assert_ptr_nonnull(strstr(d.msg, b->id));
	/* B's own messages kept their indices and stay on B's path */
	ck_assert_uint_eq(b->n_msgs, 6);
	ck_assert_str_eq(b->msgs[ub].content, "B asks");
	ck_assert_int_eq(app_conv_leaf(b), rb);
	i = find_content(b, "A asks");
	ck_assert_int_ge(i, 4);
	ck_assert_int_eq(b->msgs[i].parent, a1);
	app_conv_siblings(b, ub, &idx, &n);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(b->msgs[find_content(b, "A's reply")].parent, i);
	ck_assert_int_eq(app_conv_save(b, dir, &d), 0); /* in step again */
	/* A finishes its reply (content and partial mark) and renames */
	app_conv_append_content(a, ra, " ends", 5);
	a->msgs[ra].partial = 0;
	free(a->title);
	a->title = strdup("renamed by A");
	ck_assert_int_eq(app_conv_save(a, dir, &d), APP_STORE_MERGED);
	ck_assert_uint_eq(a->n_msgs, 6);
	ck_assert_int_eq(app_conv_leaf(a), ra);
	/* B saves again: what only A changed is taken, nothing doubles */
	app_conv_add(b, rb, APP_ROLE_USER, "B again");
	ck_assert_int_eq(app_conv_save(b, dir, &d), APP_STORE_MERGED);
	ck_assert_uint_eq(b->n_msgs, 7);
	ck_assert_str_eq(b->title, "renamed by A");
	i = find_content(b, "A's reply ends");
	ck_assert_int_ge(i, 0);
	ck_assert_int_eq(b->msgs[i].partial, 0);
	r = load_one(dir);
	ck_assert_uint_eq(r->n_msgs, 7);
	ck_assert_int_ge(find_content(r, "A's reply ends"), 0);
	ck_assert_int_ge(find_content(r, "B's reply"), 0);
	ck_assert_int_ge(find_content(r, "B again"), 0);
	ck_assert_str_eq(r->title, "renamed by A");
	app_conv_free(r);
	app_conv_free(a);
	app_conv_free(b);
	rm_rf(dir);
}
END_TEST

/* A file written before message ids: two terns give its messages the
 * same ids, so a merge does not double them. */
START_TEST(test_merge_file_without_ids)
{
	static const char old[] =
		"{\"version\":1,\"id\":\"old\",\"title\":\"t\",\"root_sel\":0,\"messages\":["
		"{\"parent\":-1,\"role\":\"user\",\"content\":\"q\",\"sel\":1,\"time\":1},"
		"{\"parent\":0,\"role\":\"assistant\",\"content\":\"r\",\"sel\":-1,\"time\":2}]}";
	char dir[] = "/tmp/tern-store-XXXXXX", *path;
	struct app_conv *a, *b, *r;
	struct diag d;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	path = file_join(dir, "old.json");
	ck_assert_int_eq(file_write_atomic(path, old, strlen(old), &d), 0);
	a = load_one(dir);
	b = load_one(dir);
	app_conv_add(a, 1, APP_ROLE_USER, "from A");
	app_conv_add(b, 1, APP_ROLE_USER, "from B");
	ck_assert_int_eq(app_conv_save(a, dir, &d), 0);
	ck_assert_int_eq(app_conv_save(b, dir, &d), APP_STORE_MERGED);
	r = load_one(dir);
	ck_assert_uint_eq(r->n_msgs, 4);
	ck_assert_int_ge(find_content(r, "from A"), 2);
	ck_assert_int_ge(find_content(r, "from B"), 2);
	app_conv_free(r);
	app_conv_free(a);
	app_conv_free(b);
	free(path);
	rm_rf(dir);
}
END_TEST

/* A file changed into something that is not a conversation (or one of
 * a newer format) is left alone; ours is saved beside it as a copy. */
START_TEST(test_unmergeable_saved_as_copy)
{
	static const char newer[] = "{\"version\":99,\"id\":\"x\",\"messages\":[]}";
	char dir[] = "/tmp/tern-store-XXXXXX", *path, *text, *old_id;
	struct app_conv *a, **all;
	struct diag d;
	size_t len, n;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	a = app_conv_new("mine");
	app_conv_add(a, -1, APP_ROLE_USER, "keep me");
	ck_assert_int_eq(app_conv_save(a, dir, &d), 0);
	{ /* another tern puts a newer format's file in its place */
		char name[160];

		snprintf(name, sizeof name, "%s.json", a->id);
		path = file_join(dir, name);
	}
	ck_assert_int_eq(file_write_atomic(path, newer, strlen(newer), &d), 0);
	old_id = strdup(a->id);
	app_conv_add(a, 0, APP_ROLE_ASSISTANT, "reply");
	ck_assert_int_eq(app_conv_save(a, dir, &d), APP_STORE_COPIED);
	ck_assert_ptr_nonnull(strstr(d.msg, "cannot be merged"));
	ck_assert_str_ne(a->id, old_id);
	ck_assert_str_eq(a->title, "mine (copy)");
	ck_assert_int_eq(file_read_all(path, 1 << 20, &text, &len, &d), 0);
	ck_assert_str_eq(text, newer); /* untouched */
	free(text);
	ck_assert_int_eq(app_conv_save(a, dir, &d), 0); /* the copy is its own now */
	ck_assert_int_eq(app_store_load_all(dir, &all, &n, &text, &d), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(all[0]->id, a->id);
	ck_assert_uint_eq(all[0]->n_msgs, 2);
	app_conv_free(all[0]);
	free(all);
	free(text);
	free(old_id);
	free(path);
	app_conv_free(a);
	rm_rf(dir);
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
	tcase_add_test(tc, test_two_processes_merge);
	tcase_add_test(tc, test_merge_file_without_ids);
	tcase_add_test(tc, test_unmergeable_saved_as_copy);
	suite_add_tcase(s, tc);
	return s;
}
