/* tests/common/test_common.c — diag, strbuf, utf8 and file helpers. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/diag.h"
#include "common/file.h"
#include "common/strbuf.h"
#include "common/utf8.h"

START_TEST(test_diag_fail_and_prefix)
{
	struct diag d;

	diag_clear(&d);
	ck_assert_str_eq(diag_message(&d, "none"), "none");
	ck_assert_int_eq(diag_fail(&d, -3, "tensor '%s' ends past end of file", "x"), -3);
	diag_prefix(&d, "%s", "model.safetensors");
	ck_assert_int_eq(d.code, -3);
	ck_assert_str_eq(d.msg, "model.safetensors: tensor 'x' ends past end of file");
	/* NULL diag is allowed everywhere. */
	ck_assert_int_eq(diag_fail(NULL, -7, "ignored"), -7);
	diag_prefix(NULL, "x");
}
END_TEST

START_TEST(test_diag_truncates)
{
	struct diag d;
	char big[2 * DIAG_MSG_MAX];

	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	diag_fail(&d, -1, "%s", big);
	ck_assert_uint_eq(strlen(d.msg), DIAG_MSG_MAX - 1);
}
END_TEST

START_TEST(test_strbuf_basic)
{
	struct strbuf sb;
	size_t len;
	char *p;
	int i;

	strbuf_init(&sb, 0);
	ck_assert_str_eq(strbuf_cstr(&sb), "");
	for (i = 0; i < 1000; i++)
		ck_assert_int_eq(strbuf_printf(&sb, "%d,", i), 0);
	ck_assert_uint_eq(sb.len, 3890);
	ck_assert(strncmp(strbuf_cstr(&sb), "0,1,2,", 6) == 0);
	ck_assert_int_eq(strbuf_append(&sb, "\0x", 2), 0); /* embedded NUL kept */
	ck_assert_uint_eq(sb.len, 3892);
	p = strbuf_take(&sb, &len);
	ck_assert_uint_eq(len, 3892);
	ck_assert_int_eq(p[3891], 'x');
	free(p);
	ck_assert_uint_eq(sb.len, 0);
	strbuf_fini(&sb);
}
END_TEST

START_TEST(test_strbuf_cap)
{
	struct strbuf sb;

	strbuf_init(&sb, 10);
	ck_assert_int_eq(strbuf_puts(&sb, "0123456789"), 0);
	ck_assert_int_eq(strbuf_putc(&sb, 'x'), -1); /* over the cap */
	ck_assert_str_eq(strbuf_cstr(&sb), "0123456789"); /* unchanged */
	strbuf_fini(&sb);
}
END_TEST

START_TEST(test_utf8_decode)
{
	uint32_t cp;

	ck_assert_int_eq(utf8_decode("A", 1, &cp), 1);
	ck_assert_uint_eq(cp, 0x41);
	ck_assert_int_eq(utf8_decode("\xC3\xA9", 2, &cp), 2); /* é */
	ck_assert_uint_eq(cp, 0xE9);
	ck_assert_int_eq(utf8_decode("\xE2\x82\xAC", 3, &cp), 3); /* € */
	ck_assert_uint_eq(cp, 0x20AC);
	ck_assert_int_eq(utf8_decode("\xF0\x9F\x98\x80", 4, &cp), 4); /* 😀 */
	ck_assert_uint_eq(cp, 0x1F600);
	ck_assert_int_eq(utf8_decode("\xC0\x80", 2, &cp), -1);     /* overlong */
	ck_assert_int_eq(utf8_decode("\xED\xA0\x80", 3, &cp), -1); /* surrogate */
	ck_assert_int_eq(utf8_decode("\xF4\x90\x80\x80", 4, &cp), -1); /* > 10FFFF */
	ck_assert_int_eq(utf8_decode("\xE2\x82", 2, &cp), -1);     /* truncated */
}
END_TEST

START_TEST(test_utf8_encode_roundtrip)
{
	char buf[4];
	uint32_t cp, c;

	for (c = 0; c <= 0x10FFFF; c += 7) {
		int n = utf8_encode(c, buf);

		if (c >= 0xD800 && c <= 0xDFFF) {
			ck_assert_int_eq(n, 0);
			continue;
		}
		ck_assert_int_eq(utf8_decode(buf, (size_t)n, &cp), n);
		ck_assert_uint_eq(cp, c);
	}
}
END_TEST

START_TEST(test_utf8_complete_prefix)
{
	/* "a€" = 61 E2 82 AC: every cut inside the euro sign is held back. */
	const char *s = "a\xE2\x82\xAC";

	ck_assert_uint_eq(utf8_complete_prefix(s, 1), 1);
	ck_assert_uint_eq(utf8_complete_prefix(s, 2), 1);
	ck_assert_uint_eq(utf8_complete_prefix(s, 3), 1);
	ck_assert_uint_eq(utf8_complete_prefix(s, 4), 4);
	/* A stray continuation byte can never complete: pass it through. */
	ck_assert_uint_eq(utf8_complete_prefix("a\x80", 2), 2);
	/* 4-byte emoji cut after 3 bytes. */
	ck_assert_uint_eq(utf8_complete_prefix("\xF0\x9F\x98", 3), 0);
	ck_assert(utf8_valid("h\xC3\xA9llo", 6));
	ck_assert(!utf8_valid("h\xC3llo", 5));
}
END_TEST

START_TEST(test_file_atomic_roundtrip)
{
	char dir[] = "/tmp/tern-test-XXXXXX";
	char *path, *sub, *buf;
	struct diag d;
	size_t len;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	sub = file_join(dir, "a/b/c");
	ck_assert_int_eq(file_mkdirs(sub, &d), 0);
	ck_assert(file_is_dir(sub));
	path = file_join(sub, "x.json");
	ck_assert_int_eq(file_write_atomic(path, "first", 5, &d), 0);
	ck_assert_int_eq(file_write_atomic(path, "second!", 7, &d), 0);
	ck_assert_int_eq(file_read_all(path, 0, &buf, &len, &d), 0);
	ck_assert_uint_eq(len, 7);
	ck_assert_str_eq(buf, "second!");
	free(buf);
	/* Over the caller's limit: a clear error, nothing returned. */
	ck_assert_int_eq(file_read_all(path, 3, &buf, &len, &d), -EFBIG);
	ck_assert_ptr_null(buf);
	ck_assert_ptr_nonnull(strstr(d.msg, "x.json"));
	/* Missing file names the path. */
	ck_assert_int_eq(file_read_all("/nonexistent/zz", 0, &buf, &len, &d), -ENOENT);
	ck_assert_ptr_nonnull(strstr(d.msg, "/nonexistent/zz"));
	unlink(path);
	free(path);
	free(sub);
	ck_assert_int_eq(system("true"), 0);
	{
		char cmd[128];

		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		ck_assert_int_eq(system(cmd), 0);
	}
}
END_TEST

START_TEST(test_file_map)
{
	char path[] = "/tmp/tern-map-XXXXXX";
	struct file_map m;
	struct diag d;
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "hello", 5), 5);
	close(fd);
	ck_assert_int_eq(file_map_open(path, &m, &d), 0);
	ck_assert_uint_eq(m.size, 5);
	ck_assert(memcmp(m.addr, "hello", 5) == 0);
	file_map_close(&m);
	file_map_close(&m); /* idempotent */
	unlink(path);
}
END_TEST

Suite *common_suite(void)
{
	Suite *s = suite_create("common");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_diag_fail_and_prefix);
	tcase_add_test(tc, test_diag_truncates);
	tcase_add_test(tc, test_strbuf_basic);
	tcase_add_test(tc, test_strbuf_cap);
	tcase_add_test(tc, test_utf8_decode);
	tcase_add_test(tc, test_utf8_encode_roundtrip);
	tcase_add_test(tc, test_utf8_complete_prefix);
	tcase_add_test(tc, test_file_atomic_roundtrip);
	tcase_add_test(tc, test_file_map);
	suite_add_tcase(s, tc);
	return s;
}
