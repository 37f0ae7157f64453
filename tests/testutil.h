/* tests/testutil.h — helpers shared by every test program.
 *
 * Test data lives in tests/data/ (copied from ../shared/fixtures, small
 * files only).  TEST_DATA_DIR (environment, else the compile-time default
 * set by Makefile.am to $(abs_top_srcdir)/tests/data) locates it.  Large
 * fixtures are read from the shared fixtures folder when present
 * (TEST_SHARED_DIR environment, else $(abs_top_srcdir)/../shared/fixtures);
 * tests that need them skip with a message otherwise.
 */
#ifndef TERN_TESTS_TESTUTIL_H
#define TERN_TESTS_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Path of REL under tests/data; a fresh string (free() it). */
char *test_data_path(const char *rel);

/* Path of REL under the shared fixtures folder, or NULL (and a "SKIP: ..."
 * line on stderr naming REL) when that file does not exist here. */
char *test_shared_path(const char *rel);

/* Read a whole file (NUL-terminated); aborts the test on failure. */
char *test_read_file(const char *path, size_t *len);

/* The tests' own float conversions, by a slow but obvious route (not the
 * code under test): f32 -> bf16 bits (nearest even) and back; f32 -> f16
 * bits (normal range only: magnitudes below 2^-14 become +-0) and back. */
uint16_t test_to_bf16(float f);
float test_from_bf16(uint16_t h);
uint16_t test_to_f16(float f);
float test_from_f16(uint16_t h);

#endif
