/* tests/stfile.h — a tiny, independent safetensors reader for tests of
 * layers that may not link inference/ (gpu tests reading fixtures): the
 * file is read whole, the JSON header parsed with jansson, tensors found by
 * name.  Every check is a test assertion. */
#ifndef TERN_TESTS_STFILE_H
#define TERN_TESTS_STFILE_H

#include <jansson.h>
#include <stddef.h>

struct test_st {
	char *buf;
	size_t len;
	json_t *hdr;
	size_t data; /* offset of the data section */
};

/* Open REL under the test data directory. */
void test_st_open(struct test_st *s, const char *rel);
void test_st_close(struct test_st *s);
/* Tensor NAME, which must have dtype DTYPE (e.g. "F16") and, when
 * n_dims >= 0, that many dims (its shape into shape[] when non-NULL);
 * *n_bytes (when non-NULL) gets its size.  Returns a pointer to its bytes
 * (any alignment). */
const void *test_st_get(const struct test_st *s, const char *name,
			const char *dtype, int n_dims, long long *shape,
			size_t *n_bytes);

#endif
