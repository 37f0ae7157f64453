/* tests/stfile.c — see stfile.h. */
#include "config.h"

#include "stfile.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "testutil.h"

void test_st_open(struct test_st *s, const char *rel)
{
	char *path = test_data_path(rel);
	uint64_t hl = 0;
	json_error_t je;
	int i;

	s->buf = test_read_file(path, &s->len);
	ck_assert_msg(s->len >= 8, "%s: too short", path);
	for (i = 7; i >= 0; i--) /* little-endian u64 header length */
		hl = (hl << 8) | (unsigned char)s->buf[i];
	ck_assert_msg(hl <= s->len - 8, "%s: header length", path);
	s->hdr = json_loadb(s->buf + 8, (size_t)hl, 0, &je);
	ck_assert_msg(s->hdr != NULL, "%s: %s", path, je.text);
	s->data = 8 + (size_t)hl;
	free(path);
}

void test_st_close(struct test_st *s)
{
	json_decref(s->hdr);
	free(s->buf);
}

const void *test_st_get(const struct test_st *s, const char *name,
			const char *dtype, int n_dims, long long *shape,
			size_t *n_bytes)
{
	json_t *t = json_object_get(s->hdr, name), *sh, *off;
	size_t i, b, e;

	ck_assert_msg(t != NULL, "fixture tensor %s missing", name);
	ck_assert_str_eq(json_string_value(json_object_get(t, "dtype")), dtype);
	sh = json_object_get(t, "shape");
	if (n_dims >= 0)
		ck_assert_int_eq((int)json_array_size(sh), n_dims);
	if (shape)
		for (i = 0; i < json_array_size(sh); i++)
			shape[i] = json_integer_value(json_array_get(sh, i));
	off = json_object_get(t, "data_offsets");
	b = (size_t)json_integer_value(json_array_get(off, 0));
	e = (size_t)json_integer_value(json_array_get(off, 1));
	ck_assert(b <= e && e <= s->len - s->data);
	if (n_bytes)
		*n_bytes = e - b;
	return s->buf + s->data + b;
}
