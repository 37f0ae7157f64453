# ui/ — curses only here; pure view-models are testable without a terminal.
noinst_LIBRARIES += ui/libui.a
ui_libui_a_SOURCES =
ui_libui_a_CFLAGS = $(AM_CFLAGS) $(NCURSES_CFLAGS) $(UTF8PROC_CFLAGS)
UI_LIBS = ui/libui.a $(NCURSES_LIBS) $(UTF8PROC_LIBS)
