/* tests/check_main.c — the runner shared by every layer's test program.
 *
 * Each program is compiled with -DTERN_SUITES='"LAYER/suites.def"'; that file
 * lists SUITE(name) lines, each naming a `Suite *name_suite(void)` defined in
 * a tests/LAYER/test_*.c file.  CK_RUN_SUITE / CK_RUN_CASE (Check's own
 * environment variables) select a subset.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>

#define SUITE(name) Suite *name##_suite(void);
#include TERN_SUITES
#undef SUITE

int main(void)
{
	SRunner *sr = NULL;
	int failed;

#define SUITE(name)                                           \
	do {                                                  \
		if (!sr)                                      \
			sr = srunner_create(name##_suite());  \
		else                                          \
			srunner_add_suite(sr, name##_suite()); \
	} while (0);
#include TERN_SUITES
#undef SUITE

	if (!sr)
		return 77; /* no suites: automake's SKIP */
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
