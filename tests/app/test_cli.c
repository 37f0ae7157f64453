/* tests/app/test_cli.c — the tern binary's command line: --version, --help,
 * help SUBCOMMAND, and clear errors with a non-zero status for unknown
 * options and subcommands, worded alike in every subcommand. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "app/app.h"

/* Run the tern binary with ARGS; capture stdout+stderr (truncated to cap). */
static int run_tern(const char *args, char *out, size_t cap)
{
	char cmd[1024];
	FILE *p;
	size_t n;
	int st;

	snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", TERN_BINARY, args);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	n = fread(out, 1, cap - 1, p);
	out[n] = '\0';
	st = pclose(p);
	ck_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

START_TEST(test_version)
{
	char out[4096];

	ck_assert_int_eq(run_tern("--version", out, sizeof out), 0);
	ck_assert_str_eq(out, "tern " PACKAGE_VERSION "\n");
}
END_TEST

START_TEST(test_help_lists_subcommands)
{
	char out[8192];

	ck_assert_int_eq(run_tern("--help", out, sizeof out), 0);
	ck_assert_ptr_nonnull(strstr(out, "Usage: tern"));
#define SUBCOMMAND(n, s) ck_assert_ptr_nonnull(strstr(out, "  " #n " "));
#include "app/subcommands.def"
#undef SUBCOMMAND
	ck_assert_int_eq(run_tern("help", out, sizeof out), 0);
	ck_assert_ptr_nonnull(strstr(out, "Usage: tern"));
}
END_TEST

START_TEST(test_help_subcommand)
{
	char out[16384], args[128];

#define SUBCOMMAND(n, s)                                                  \
	snprintf(args, sizeof args, "help %s", #n);                      \
	ck_assert_int_eq(run_tern(args, out, sizeof out), 0);             \
	ck_assert_msg(strncmp(out, "Usage: tern " #n " ", 12 + strlen(#n) + 1) == 0, \
		      "help for " #n " does not start with its usage: %s", out);
#include "app/subcommands.def"
#undef SUBCOMMAND
	/* help on help is the general help */
	ck_assert_int_eq(run_tern("help help", out, sizeof out), 0);
	ck_assert_ptr_nonnull(strstr(out, "Usage: tern"));
	ck_assert_ptr_nonnull(strstr(out, "tern help [SUBCOMMAND]"));
	ck_assert_int_eq(run_tern("help nosuchthing", out, sizeof out), 2);
	ck_assert_ptr_nonnull(strstr(out, "no such subcommand 'nosuchthing'"));
}
END_TEST

START_TEST(test_unknown_option_and_subcommand)
{
	char out[4096];

	ck_assert_int_eq(run_tern("--frobnicate", out, sizeof out), 2);
	ck_assert_ptr_nonnull(strstr(out, "unknown option '--frobnicate'"));
	ck_assert_int_eq(run_tern("frobnicate", out, sizeof out), 2);
	ck_assert_ptr_nonnull(strstr(out, "unknown subcommand 'frobnicate'"));
	/* the chat's KV cache: f16 or quantized; f32 is for scripts */
	ck_assert_int_eq(run_tern("--kv-type q9", out, sizeof out), 2);
	ck_assert_ptr_nonnull(strstr(out, "unknown KV type 'q9' for the chat"));
	ck_assert_int_eq(run_tern("--kv-type f32", out, sizeof out), 2);
	ck_assert_ptr_nonnull(strstr(out, "unknown KV type 'f32' for the chat"));
	/* a good one gets as far as wanting a terminal */
	ck_assert_int_eq(run_tern("--kv-type q8,q4", out, sizeof out), 2);
	ck_assert_ptr_nonnull(strstr(out, "needs a terminal"));
}
END_TEST

/* Every subcommand words a bad option the same way: "tern: NAME: ...",
 * the option as typed, and where to look. */
START_TEST(test_subcommand_bad_option)
{
	static const struct {
		const char *args, *msg;
	} cases[] = {
		{ "run -p hi -n", "tern: run: option '-n' needs an argument (see 'tern run --help')" },
		{ "run --max-tokens", "tern: run: option '--max-tokens' needs an argument" },
		{ "run --ngram=1", "tern: run: option '--ngram' takes no argument" },
		{ "run -p hi -qz", "tern: run: unrecognized option '-q'" },
		{ "bench --json=1 -x", "tern: bench: option '--json' takes no argument" },
		{ "bench -j -x", "tern: bench: unrecognized option '-x'" },
	};
	char out[4096], args[128];
	size_t i;

#define SUBCOMMAND(n, s)                                                              \
	snprintf(args, sizeof args, "%s --bogus", #n);                               \
	ck_assert_int_eq(run_tern(args, out, sizeof out), 2);                         \
	ck_assert_msg(strcmp(out, "tern: " #n ": unrecognized option '--bogus' (see " \
			     "'tern " #n " --help')\n") == 0, "%s: %s", args, out);
#include "app/subcommands.def"
#undef SUBCOMMAND
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ck_assert_int_eq(run_tern(cases[i].args, out, sizeof out), 2);
		ck_assert_msg(strstr(out, cases[i].msg) != NULL, "%s: %s", cases[i].args, out);
	}
}
END_TEST

START_TEST(test_parse_ids)
{
	char err[128];
	size_t n;
	int *ids;

	ck_assert_int_eq(app_parse_ids(" 1 2\t30000 ", &ids, &n, err, sizeof err), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(ids[2], 30000);
	free(ids);
	ck_assert_int_eq(app_parse_ids("1 x", &ids, &n, err, sizeof err), -1);
	ck_assert_int_eq(app_parse_ids("-4", &ids, &n, err, sizeof err), -1);
	ck_assert_int_eq(app_parse_ids("99999999999", &ids, &n, err, sizeof err), -1);
}
END_TEST

Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("core");

	/* Each case starts tern several times; a CUDA build loads cuBLAS at
	 * start-up, which takes a while on a loaded 2-core machine. */
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_version);
	tcase_add_test(tc, test_help_lists_subcommands);
	tcase_add_test(tc, test_help_subcommand);
	tcase_add_test(tc, test_unknown_option_and_subcommand);
	tcase_add_test(tc, test_subcommand_bad_option);
	tcase_add_test(tc, test_parse_ids);
	suite_add_tcase(s, tc);
	return s;
}
