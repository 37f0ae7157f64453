# themes/ — theme roles, YAML loader, compiled-in default; *.yaml shipped.
noinst_LIBRARIES += themes/libthemes.a
themes_libthemes_a_SOURCES =
themes_libthemes_a_CFLAGS = $(AM_CFLAGS) $(YAML_CFLAGS)
THEMES_LIBS = themes/libthemes.a $(YAML_LIBS)
