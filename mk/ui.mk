# mk/ui.mk — the terminal UI: pure view-models (text, input, transcript,
# layout, list, form, keymap, screen, image) plus ui.c/render.c, and the
# two curses files term.c and draw.c.
ui_libui_a_SOURCES += ui/ui.h ui/ui_impl.h \
	ui/text.c ui/text_impl.h ui/input.c ui/input_impl.h \
	ui/transcript.c ui/transcript_impl.h ui/layout.c ui/layout_impl.h \
	ui/list.c ui/list_impl.h ui/form.c ui/form_impl.h \
	ui/keymap.c ui/keymap_impl.h ui/screen.c ui/screen_impl.h \
	ui/image.c ui/image_impl.h ui/ui.c ui/render.c \
	ui/term.c ui/draw.c ui/term_impl.h

tests_check_ui_SOURCES += tests/ui/test_text.c tests/ui/test_input.c \
	tests/ui/test_transcript.c tests/ui/test_layout.c tests/ui/test_keymap.c \
	tests/ui/test_form.c tests/ui/test_image.c tests/ui/test_ui.c \
	tests/ui/test_screen.c

# A manual self-check: `ui/ui-demo` runs the UI with canned data (no model).
noinst_PROGRAMS += ui/ui-demo
ui_ui_demo_SOURCES = ui/demo.c
ui_ui_demo_CFLAGS = $(AM_CFLAGS) $(NCURSES_CFLAGS)
ui_ui_demo_LDADD = $(UI_LIBS) $(THEMES_LIBS) common/libcommon.a $(LIBS)
