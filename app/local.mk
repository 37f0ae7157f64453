# app/ — composition root: CLI, config, conversations, the event loop, the
# engine worker thread, subcommands.  Everything but main.c goes into
# app/libapp.a so that tests/check_app can link it.
noinst_LIBRARIES += app/libapp.a
app_libapp_a_SOURCES = app/app.h app/subcommands.def app/cli.c app/chat.c app/config.c app/config.h app/store.c app/store.h app/worker.c app/worker.h app/image.c app/image.h app/reply.c app/reply.h app/tui.c app/tui.h
app_libapp_a_CPPFLAGS = $(AM_CPPFLAGS) \
	-DTERN_PKGDATADIR='"$(pkgdatadir)"' -DTERN_SRCDIR='"$(abs_top_srcdir)"'
app_libapp_a_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(YAML_CFLAGS) $(NCURSES_CFLAGS) $(PNG_CFLAGS) $(JPEG_CFLAGS)

bin_PROGRAMS += tern
tern_SOURCES = app/main.c
tern_CPPFLAGS = $(app_libapp_a_CPPFLAGS)
tern_CFLAGS = $(app_libapp_a_CFLAGS)
APP_ALL_LIBS = app/libapp.a $(UI_LIBS) $(THEMES_LIBS) $(LLM_LIBS) $(GPU_LIBS) \
	common/libcommon.a $(JANSSON_LIBS) $(YAML_LIBS) $(NCURSES_LIBS) \
	$(UTF8PROC_LIBS) $(PCRE2_LIBS) $(PNG_LIBS) $(JPEG_LIBS) $(LIBS)
tern_LDADD = $(APP_ALL_LIBS)

# The bundled default model (models/stories260k), installed so that an
# installed tern runs out of the box.
bundledmodeldir = $(pkgdatadir)/models/stories260k
dist_bundledmodel_DATA = models/stories260k/config.json \
	models/stories260k/generation_config.json models/stories260k/model.safetensors \
	models/stories260k/tokenizer.json models/stories260k/tokenizer_config.json \
	models/stories260k/README.md
