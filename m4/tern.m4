# m4/tern.m4 — small macros of our own (kept here so that bootstrapping needs
# no autoconf-archive).

# AX_APPEND_FLAG_IF_WORKS(FLAG, VAR): append FLAG to VAR when $CC accepts it
# (with -Werror so that "unknown option" warnings count as failure).
AC_DEFUN([AX_APPEND_FLAG_IF_WORKS], [
  AC_MSG_CHECKING([whether $CC accepts $1])
  tern_save_CFLAGS="$CFLAGS"
  CFLAGS="$CFLAGS -Werror $1"
  AC_COMPILE_IFELSE([AC_LANG_PROGRAM([], [])],
    [AC_MSG_RESULT([yes]); $2="$$2 $1"],
    [AC_MSG_RESULT([no])])
  CFLAGS="$tern_save_CFLAGS"
])

# AX_PTHREAD_SIMPLE: POSIX threads through -pthread (glibc, musl, BSDs).
AC_DEFUN([AX_PTHREAD_SIMPLE], [
  AC_MSG_CHECKING([whether $CC accepts -pthread])
  tern_save_CFLAGS="$CFLAGS"
  CFLAGS="$CFLAGS -pthread"
  AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <pthread.h>]],
                  [[pthread_t t; (void)pthread_create(&t, 0, 0, 0);]])],
    [AC_MSG_RESULT([yes]); PTHREAD_CFLAGS="-pthread"; PTHREAD_LIBS="-pthread"],
    [AC_MSG_ERROR([POSIX threads are required])])
  CFLAGS="$tern_save_CFLAGS"
  AC_SUBST([PTHREAD_CFLAGS])
  AC_SUBST([PTHREAD_LIBS])
])
