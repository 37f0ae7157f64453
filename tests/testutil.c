/* tests/testutil.c — see testutil.h. */
#include "config.h"

#include "testutil.h"

#include <sys/stat.h>

#include "common/file.h"

#ifndef TEST_DATA_DIR_DEFAULT
#define TEST_DATA_DIR_DEFAULT "tests/data"
#endif
#ifndef TEST_SHARED_DIR_DEFAULT
#define TEST_SHARED_DIR_DEFAULT "../shared/fixtures"
#endif

static char *join(const char *a, const char *b)
{
	char *p = file_join(a, b);

	if (!p) {
		fprintf(stderr, "testutil: out of memory\n");
		abort();
	}
	return p;
}

char *test_data_path(const char *rel)
{
	const char *dir = getenv("TEST_DATA_DIR");

	return join(dir && *dir ? dir : TEST_DATA_DIR_DEFAULT, rel);
}

char *test_shared_path(const char *rel)
{
	const char *dir = getenv("TEST_SHARED_DIR");
	char *p = join(dir && *dir ? dir : TEST_SHARED_DIR_DEFAULT, rel);
	struct stat st;

	if (stat(p, &st) != 0) {
		fprintf(stderr, "SKIP: shared fixture %s not found (%s)\n", rel, p);
		free(p);
		return NULL;
	}
	return p;
}

char *test_read_file(const char *path, size_t *len)
{
	struct diag d;
	char *buf;

	diag_clear(&d);
	if (file_read_all(path, 0, &buf, len, &d) < 0) {
		fprintf(stderr, "testutil: %s\n", d.msg);
		abort();
	}
	return buf;
}
