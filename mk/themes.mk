# mk/themes.mk — the themes feature: role table, YAML loader, compiled-in
# default, and the shipped theme files (installed to $(pkgdatadir)/themes).
themes_libthemes_a_SOURCES += themes/theme.h themes/theme.c themes/builtin.c

themesdir = $(pkgdatadir)/themes
dist_themes_DATA = themes/default.yaml themes/light.yaml themes/high-contrast.yaml

tests_check_themes_SOURCES += tests/themes/test_theme.c
tests_check_themes_CPPFLAGS += -DTERN_THEMES_DIR='"$(abs_top_srcdir)/themes"'
