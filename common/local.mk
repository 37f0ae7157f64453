# common/ — error context, buffers, files, UTF-8, clock. Depends on nothing.
noinst_LIBRARIES += common/libcommon.a
common_libcommon_a_SOURCES = \
	common/diag.c common/diag.h \
	common/strbuf.c common/strbuf.h \
	common/xalloc.c common/xalloc.h \
	common/clock.c common/clock.h \
	common/file.c common/file.h \
	common/utf8.c common/utf8.h
