#!/bin/sh
# scripts/check-kernels.sh — enforce the launch rule of gpu/cuda/pdl.cuh:
# every CUDA kernel (__global__ function in gpu/cuda/*.cu) starts with
# tern_pdl_wait(), and kernels are launched through tern_launch, never
# with <<<...>>> (except in gpu/cuda/pdl.cuh itself and the start-up probe
# gpu/cuda/probe.cu).  A kernel launched with the programmatic attribute
# that reads before waiting would race with the kernel before it; a
# <<<>>> launch would silently lose the overlap.  The one exception: a
# kernel whose first statement is TERN_PDL_LATE_WAIT(); (pdl.cuh: it
# loads only what no kernel writes first) must call tern_pdl_wait()
# further down.
#
# Usage: check-kernels.sh [SRCDIR]   exit 0 when clean, 1 on a violation.
# It first proves itself on a scratch tree with two known violations.
set -u

check_tree() { # root -> prints one line per violation
	for f in "$1"/gpu/cuda/*.cu; do
		[ -f "$f" ] || continue
		case "$f" in */probe.cu) continue ;; esac
		# the first statement after the "{" that opens a __global__
		# function must be tern_pdl_wait();
		awk -v F="$f" '
			/__global__/ { g = 1 }
			g && /^\{/ { want = 1; g = 0; infn = 1; late = 0; start = NR; next }
			want && /^[ \t]*$/ { next }
			want {
				if ($0 ~ /^[ \t]*TERN_PDL_LATE_WAIT\(\);/)
					late = 1
				else if ($0 !~ /^[ \t]*tern_pdl_wait\(\);/)
					printf "%s:%d: kernel does not start with tern_pdl_wait()\n", F, NR
				want = 0
				next
			}
			infn && late == 1 && /tern_pdl_wait\(\);/ { late = 2 }
			infn && /^\}/ {
				if (late == 1)
					printf "%s:%d: kernel marked TERN_PDL_LATE_WAIT never waits\n", F, start
				infn = 0
			}
			/<<</ { printf "%s:%d: <<<>>> launch (use tern_launch)\n", F, NR }
		' "$f"
	done
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tern-kernels.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/gpu/cuda"
printf '__global__ void a(int *p)\n{\n\ttern_pdl_wait();\n\t*p = 1;\n}\n__global__ void b(int *p)\n{\n\t*p = 2;\n}\nvoid c(void) { b<<<1, 1>>>(0); }\n' \
	> "$tmp/gpu/cuda/t.cu"
printf '__global__ void d(int *p)\n{\n\tTERN_PDL_LATE_WAIT();\n\tint v = 1;\n\ttern_pdl_wait();\n\t*p = v;\n}\n__global__ void e(int *p)\n{\n\tTERN_PDL_LATE_WAIT();\n\t*p = 2;\n}\n' \
	> "$tmp/gpu/cuda/u.cu"
n=$(check_tree "$tmp" | wc -l)
if [ "$n" -ne 3 ]; then
	echo "check-kernels: self-test expected 3 violations, found $n" >&2
	exit 1
fi

root=${1:-$(dirname "$0")/..}
out=$(check_tree "$root")
if [ -n "$out" ]; then
	printf '%s\n' "$out" >&2
	echo "check-kernels: $(printf '%s\n' "$out" | wc -l) violation(s) of the launch rule (gpu/cuda/pdl.cuh)" >&2
	exit 1
fi
echo "check-kernels: every kernel waits first and is launched with tern_launch"
exit 0
