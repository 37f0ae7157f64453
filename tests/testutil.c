/* tests/testutil.c — see testutil.h. */
#include "config.h"

#include "testutil.h"

#include <math.h>
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

/* ---- float conversions (see testutil.h) ---------------------------- */

uint16_t test_to_bf16(float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	u += 0x7fff + ((u >> 16) & 1);
	return (uint16_t)(u >> 16);
}

float test_from_bf16(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;

	memcpy(&f, &u, 4);
	return f;
}

/* f32 -> f16 by a slow but obvious route (normal range only, as used). */
uint16_t test_to_f16(float f)
{
	int e;
	double m = frexp(fabs((double)f), &e); /* f = m 2^e, m in [0.5, 1) */
	uint16_t sign = f < 0 ? 0x8000 : 0;
	long mant;

	if (fabs((double)f) < 1.0 / 16384.0) /* below the normal range: 0 */
		return sign;
	/* half: 1.mmmmmmmmmm * 2^(E-15) ; here m*2 = 1.x, exponent e-1 */
	mant = lrint((m * 2.0 - 1.0) * 1024.0);
	if (mant == 1024) {
		mant = 0;
		e++;
	}
	return (uint16_t)(sign | (uint16_t)((e - 1 + 15) << 10) | (uint16_t)mant);
}

float test_from_f16(uint16_t h)
{
	int e = (h >> 10) & 31;
	double m = (double)(h & 1023) / 1024.0;
	double v = e ? ldexp(1.0 + m, e - 15) : ldexp(m, -14);

	return (float)((h & 0x8000) ? -v : v);
}
