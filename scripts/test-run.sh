#!/bin/sh
# scripts/test-run.sh PROGRAM — automake LOG_COMPILER for the Check programs.
# The harness sends a test's output to its .log file; this wrapper also
# copies Check's summary line ("100%: Checks: 9, Failures: 0, Errors: 0") to
# fd 9, which Makefile.am points at the terminal, so `make check` shows each
# layer's counts.  The exit status is the program's; a program that runs
# past TEST_TIMEOUT seconds (default 1200) is killed and fails, so that a
# hang can never stall CI.
if command -v timeout >/dev/null 2>&1; then
	out=$(timeout -k 10 "${TEST_TIMEOUT:-1200}" "$@" 2>&1)
else
	out=$("$@" 2>&1)
fi
st=$?
printf '%s\n' "$out"
summary=$(printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks: ' | tail -n 1)
if [ -n "$summary" ] && { true >&9; } 2>/dev/null; then
	printf '%s: %s\n' "$(basename "$1")" "$(printf '%s\n' "$out" | grep -m1 '^Running suite')" >&9
	printf '%s\n' "$summary" >&9
fi
exit $st
