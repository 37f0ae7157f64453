#!/bin/sh
# scripts/check-gpu.sh BUILDDIR — the GPU test suite (`make check-gpu`):
# CUDA-vs-CPU parity for every op and whole model, under compute-sanitizer
# memcheck.  Exits 77 (automake's SKIP) when this build has no CUDA backend or
# the machine has no NVIDIA GPU.
set -u
b=${1:-.}
if ! grep -q '^#define HAVE_CUDA 1' "$b/config.h" 2>/dev/null; then
	echo "check-gpu: SKIP: built without CUDA (configure --with-cuda)"
	exit 77
fi
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
	echo "check-gpu: SKIP: no NVIDIA GPU on this machine"
	exit 77
fi
nvidia-smi -L
status=0
echo "check-gpu: parity suites"
TERN_GPU_TESTS=1 CK_RUN_SUITE="${CK_RUN_SUITE:-}" "$b/tests/check_gpu" || status=1
if command -v compute-sanitizer >/dev/null 2>&1; then
	echo "check-gpu: compute-sanitizer memcheck"
	TERN_GPU_TESTS=1 compute-sanitizer --tool memcheck --error-exitcode 1 \
		"$b/tests/check_gpu" || status=1
else
	echo "check-gpu: compute-sanitizer not found; memcheck skipped"
fi
exit $status
