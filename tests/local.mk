# tests/ — one Check program per layer, each linking only its layer and the
# layers below it (a wrong-way call fails at link time).  Suites are listed in
# tests/LAYER/suites.def; tests/check_main.c is the shared runner.
TESTS_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests \
	-DTEST_DATA_DIR_DEFAULT='"$(abs_top_srcdir)/tests/data"' \
	-DTEST_SHARED_DIR_DEFAULT='"$(abs_top_srcdir)/../shared/fixtures"' \
	-DTEST_BUILD_DIR='"$(abs_top_builddir)"'
TESTS_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(JANSSON_CFLAGS) -Wno-missing-prototypes
TEST_COMMON = tests/check_main.c tests/testutil.c tests/testutil.h

check_PROGRAMS += tests/check_common tests/check_gpu tests/check_inference \
	tests/check_themes tests/check_ui tests/check_app
TESTS += scripts/check-layers.sh scripts/check-kernels.sh tests/check_common tests/check_gpu \
	tests/check_inference tests/check_themes tests/check_ui tests/check_app
EXTRA_DIST += scripts/check-layers.sh scripts/check-kernels.sh tests/data/README.md tests/data/images \
	tests/common/suites.def tests/gpu/suites.def tests/inference/suites.def \
	tests/themes/suites.def tests/ui/suites.def tests/app/suites.def

tests_check_common_SOURCES = $(TEST_COMMON) tests/common/test_common.c
tests_check_common_CPPFLAGS = $(TESTS_CPPFLAGS) -DTERN_SUITES='"common/suites.def"'
tests_check_common_CFLAGS = $(TESTS_CFLAGS)
tests_check_common_LDADD = common/libcommon.a $(CHECK_LIBS)

tests_check_gpu_SOURCES = $(TEST_COMMON) tests/stfile.c tests/stfile.h \
	tests/gpu/gpupair.c tests/gpu/gpupair.h
tests_check_gpu_CPPFLAGS = $(TESTS_CPPFLAGS) -DTERN_SUITES='"gpu/suites.def"'
tests_check_gpu_CFLAGS = $(TESTS_CFLAGS)
tests_check_gpu_LDADD = $(GPU_LIBS) common/libcommon.a $(CHECK_LIBS) $(LIBS)

tests_check_inference_SOURCES = $(TEST_COMMON) tests/inference/refutil.c tests/inference/refutil.h
tests_check_inference_CPPFLAGS = $(TESTS_CPPFLAGS) -DTERN_SUITES='"inference/suites.def"'
tests_check_inference_CFLAGS = $(TESTS_CFLAGS) $(PCRE2_CFLAGS) $(UTF8PROC_CFLAGS)
tests_check_inference_LDADD = $(LLM_LIBS) $(GPU_LIBS) common/libcommon.a $(CHECK_LIBS) $(LIBS)

tests_check_themes_SOURCES = $(TEST_COMMON)
tests_check_themes_CPPFLAGS = $(TESTS_CPPFLAGS) -DTERN_SUITES='"themes/suites.def"'
tests_check_themes_CFLAGS = $(TESTS_CFLAGS) $(YAML_CFLAGS)
tests_check_themes_LDADD = $(THEMES_LIBS) common/libcommon.a $(CHECK_LIBS) $(LIBS)

tests_check_ui_SOURCES = $(TEST_COMMON)
tests_check_ui_CPPFLAGS = $(TESTS_CPPFLAGS) -DTERN_SUITES='"ui/suites.def"'
tests_check_ui_CFLAGS = $(TESTS_CFLAGS) $(NCURSES_CFLAGS) $(UTF8PROC_CFLAGS)
tests_check_ui_LDADD = $(UI_LIBS) $(THEMES_LIBS) common/libcommon.a $(CHECK_LIBS) $(LIBS)

tests_check_app_SOURCES = $(TEST_COMMON) tests/app/test_cli.c tests/app/test_config.c tests/app/test_store.c tests/app/test_image.c tests/app/test_cmds.c \
	tests/app/test_worker.c tests/app/test_reply.c tests/app/vlmodel.c tests/app/vlmodel.h \
	tests/stfile.c tests/stfile.h
tests_check_app_CPPFLAGS = $(TESTS_CPPFLAGS) -DTERN_SUITES='"app/suites.def"' \
	-DTERN_BINARY='"$(abs_top_builddir)/tern$(EXEEXT)"'\
	-DTERN_SRCDIR='"$(abs_top_srcdir)"'
tests_check_app_CFLAGS = $(TESTS_CFLAGS) $(YAML_CFLAGS)
tests_check_app_LDADD = $(APP_ALL_LIBS) $(CHECK_LIBS)
tests/check_app-test_cli.$(OBJEXT): tern$(EXEEXT)

# ---- GPU tests: `make check-gpu` on a machine with an NVIDIA GPU --------------
check-gpu: tests/check_gpu$(EXEEXT) tests/check_inference$(EXEEXT) tern$(EXEEXT)
	$(SHELL) $(top_srcdir)/scripts/check-gpu.sh $(abs_top_builddir)
.PHONY: check-gpu
EXTRA_DIST += scripts/check-gpu.sh scripts/tokenizer-vs-hf.py

# Show Check's per-program summary on the terminal (see scripts/test-run.sh).
LOG_COMPILER = $(SHELL) $(top_srcdir)/scripts/test-run.sh
AM_TESTS_FD_REDIRECT = 9>&2
EXTRA_DIST += scripts/test-run.sh

# The TUI end to end, in tmux (skips when tmux is missing).
TESTS += tests/e2e/tui.sh tests/e2e/tui_errors.sh
EXTRA_DIST += tests/e2e/tui.sh tests/e2e/tui_errors.sh tests/e2e/tmux.sh
TESTS_ENVIRONMENT = TERN='$(abs_top_builddir)/tern$(EXEEXT)'; export TERN; \
	CK_DEFAULT_TIMEOUT="$${CK_DEFAULT_TIMEOUT:-120}"; export CK_DEFAULT_TIMEOUT;
