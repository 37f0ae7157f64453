# m4/cuda.m4 — TERN_CHECK_CUDA: --with-cuda=auto|yes|no|DIR and
# --with-cuda-arch="80 86 89 90".
#
# auto (default): use CUDA when nvcc is found in /usr/local/cuda/bin or on
# PATH; a CUDA build then requires the runtime and cuBLAS (an error names
# what is missing).  No nvcc: a CPU-only build under auto, an error under an
# explicit --with-cuda=yes|DIR.  Host code is C compiled by $(CC) against
# the runtime API; only .cu files go through nvcc (one suffix rule in
# Makefile.am).
AC_DEFUN([TERN_CHECK_CUDA], [
  AC_ARG_WITH([cuda],
    [AS_HELP_STRING([--with-cuda=auto|yes|no|DIR],
      [build the CUDA backend (default: auto = when nvcc is found)])],
    [], [with_cuda=auto])
  AC_ARG_WITH([cuda-arch],
    [AS_HELP_STRING([--with-cuda-arch=LIST],
      [SM versions to build for (default: "80 86 89 90")])],
    [], [with_cuda_arch="80 86 89 90"])

  tern_have_cuda=no
  tern_cuda_summary=no
  AS_CASE([$with_cuda],
    [no], [],
    [auto|yes], [tern_cuda_dirs="/usr/local/cuda"],
    [tern_cuda_dirs="$with_cuda"])

  AS_IF([test "x$with_cuda" != xno], [
    NVCC=""
    for d in $tern_cuda_dirs; do
      AS_IF([test -x "$d/bin/nvcc"], [NVCC="$d/bin/nvcc"; CUDA_HOME="$d"; break])
    done
    dnl auto/yes also look on PATH; an explicit DIR does not.
    AS_IF([test -z "$NVCC"],
      [AS_CASE([$with_cuda], [auto|yes],
        [AC_PATH_PROG([NVCC], [nvcc], [])
         AS_IF([test -n "$NVCC"], [CUDA_HOME=`AS_DIRNAME([AS_DIRNAME(["$NVCC"])])`])])])
    AS_IF([test -n "$NVCC"], [
      CUDA_CPPFLAGS="-I$CUDA_HOME/include"
      tern_cuda_libdir="$CUDA_HOME/lib64"
      AS_IF([test -d "$CUDA_HOME/targets/x86_64-linux/lib" && test ! -e "$tern_cuda_libdir/libcudart.so"],
            [tern_cuda_libdir="$CUDA_HOME/targets/x86_64-linux/lib"])
      CUDA_LDFLAGS="-L$tern_cuda_libdir -Wl,-rpath,$tern_cuda_libdir"
      tern_save_CPPFLAGS="$CPPFLAGS"; tern_save_LDFLAGS="$LDFLAGS"; tern_save_LIBS="$LIBS"
      CPPFLAGS="$CPPFLAGS $CUDA_CPPFLAGS"; LDFLAGS="$LDFLAGS $CUDA_LDFLAGS"
      tern_cuda_ok=yes
      AC_CHECK_HEADER([cuda_runtime.h], [], [tern_cuda_ok="no (cuda_runtime.h missing)"])
      AC_CHECK_HEADER([cublas_v2.h], [], [tern_cuda_ok="no (cublas_v2.h missing)"])
      AC_CHECK_LIB([cudart], [cudaGetDeviceCount], [:], [tern_cuda_ok="no (libcudart missing)"])
      AC_CHECK_LIB([cublas], [cublasCreate_v2], [:], [tern_cuda_ok="no (libcublas missing)"])
      CPPFLAGS="$tern_save_CPPFLAGS"; LDFLAGS="$tern_save_LDFLAGS"; LIBS="$tern_save_LIBS"
      AS_IF([test "x$tern_cuda_ok" = xyes],
        [tern_have_cuda=yes],
        [AC_MSG_ERROR([CUDA found at $CUDA_HOME but $tern_cuda_ok: install the CUDA runtime and cuBLAS, or configure --with-cuda=no for a CPU-only build])])
    ], [
      AS_IF([test "x$with_cuda" != xauto],
        [AC_MSG_ERROR([CUDA requested (--with-cuda=$with_cuda) but nvcc was not found])])
    ])
  ])

  NVCC_ARCH_FLAGS=""
  AS_IF([test "x$tern_have_cuda" = xyes], [
    for sm in $with_cuda_arch; do
      AS_CASE([$sm], [*@<:@!0-9a@:>@*], [AC_MSG_ERROR([bad --with-cuda-arch entry '$sm'])])
      NVCC_ARCH_FLAGS="$NVCC_ARCH_FLAGS -gencode=arch=compute_$sm,code=sm_$sm"
    done
    AC_DEFINE([HAVE_CUDA], [1], [Define when the CUDA backend is built])
    CUDA_LIBS="-lcublasLt -lcublas -lcudart"
    tern_cuda_summary="yes ($NVCC; sm: $with_cuda_arch)"
  ])
  AC_SUBST([NVCC])
  AC_SUBST([NVCC_ARCH_FLAGS])
  AC_SUBST([CUDA_CPPFLAGS])
  AC_SUBST([CUDA_LDFLAGS])
  AC_SUBST([CUDA_LIBS])
  AM_CONDITIONAL([HAVE_CUDA], [test "x$tern_have_cuda" = xyes])
])
