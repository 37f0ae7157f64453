#!/bin/sh
# scripts/check-gpu.sh BUILDDIR — the GPU test suite (`make check-gpu`):
# CUDA-vs-CPU parity for every op (suite cuda_parity, tests/check_gpu) and
# whole models (suite cuda_models, tests/check_inference), then both under
# compute-sanitizer memcheck.  Exits 77 (automake's SKIP) when this build
# has no CUDA backend or the machine has no NVIDIA GPU.
#
# TERN_GPU_TESTS=1 makes the suites fail (not skip) without a device.
# Under memcheck: the device-filling memory test is skipped
# (TERN_GPU_NO_FILL: the tool needs device memory of its own), and API
# errors are not reported, since the suite provokes cudaMalloc failures on
# purpose (the backend checks every call's status itself).
# TERN_GPU_BENCH=1 in the environment adds the timings of docs/PERFORMANCE.md.
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
# (an empty CK_RUN_SUITE would make Check run no suite at all)
if [ -n "${CK_RUN_SUITE:-}" ]; then
	TERN_GPU_TESTS=1 "$b/tests/check_gpu" || status=1
else
	env -u CK_RUN_SUITE TERN_GPU_TESTS=1 "$b/tests/check_gpu" || status=1
fi
# the prefill attention's plain K/V loop (TERN_ATT_PF_PIPE=0, see
# gpu/cuda/attention.cu; the fallback where two tiles do not fit the
# shared memory) against the CPU too
echo "check-gpu: parity ops with TERN_ATT_PF_PIPE=0"
TERN_GPU_TESTS=1 TERN_ATT_PF_PIPE=0 CK_RUN_SUITE=cuda_parity CK_RUN_CASE=ops \
	"$b/tests/check_gpu" || status=1
# whole models: every fixture on CUDA against the CPU and transformers'
# logits, graphs, batched decode, load/free (tests/inference/test_cuda_models.c)
echo "check-gpu: whole models (cuda_models)"
env -u CK_RUN_CASE TERN_GPU_TESTS=1 CK_RUN_SUITE=cuda_models \
	"$b/tests/check_inference" || status=1
if command -v compute-sanitizer >/dev/null 2>&1; then
	echo "check-gpu: compute-sanitizer memcheck"
	TERN_GPU_TESTS=1 TERN_GPU_NO_FILL=1 TERN_GPU_BENCH= \
		CK_RUN_SUITE="${CK_RUN_SUITE:-cuda_parity}" \
		compute-sanitizer --tool memcheck --report-api-errors no \
		--error-exitcode 1 "$b/tests/check_gpu" || status=1
	echo "check-gpu: compute-sanitizer memcheck of cuda_models"
	env -u CK_RUN_CASE TERN_GPU_TESTS=1 CK_RUN_SUITE=cuda_models \
		compute-sanitizer --tool memcheck --report-api-errors no \
		--error-exitcode 1 "$b/tests/check_inference" || status=1
else
	echo "check-gpu: compute-sanitizer not found; memcheck skipped"
fi
exit $status
