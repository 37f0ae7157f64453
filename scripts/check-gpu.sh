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
# Check runs no suite (case) at all for an empty CK_RUN_SUITE (CK_RUN_CASE):
# treat empty as unset.  The caller's values narrow the check_gpu steps;
# the whole-model steps run when no suite or cuda_models is asked for.
suite=${CK_RUN_SUITE:-}
case_=${CK_RUN_CASE:-}
unset CK_RUN_SUITE CK_RUN_CASE
[ -n "$suite" ] && export CK_RUN_SUITE="$suite"
[ -n "$case_" ] && export CK_RUN_CASE="$case_"
gpu=1 models=1
case "$suite" in
'') [ -n "$case_" ] && models=0 ;; # a case alone names check_gpu's
cuda_models) gpu=0 ;;
*) models=0 ;;
esac
export TERN_GPU_TESTS=1

# run [VAR=VALUE...] -- PROGRAM...: PROGRAM with the given variables set
# (a subshell, so that nothing leaks into the next step)
run() {
	(
		while [ "$1" != -- ]; do
			export "$1"
			shift
		done
		shift
		exec "$@"
	) || status=1
}

if [ $gpu = 1 ]; then
	echo "check-gpu: parity suites"
	run -- "$b/tests/check_gpu"
	if { [ -z "$suite" ] || [ "$suite" = cuda_parity ]; } &&
	    { [ -z "$case_" ] || [ "$case_" = ops ]; }; then
		# the prefill attention's plain K/V loop (TERN_ATT_PF_PIPE=0,
		# see gpu/cuda/attention.cu; the fallback where two tiles do
		# not fit the shared memory) against the CPU too
		echo "check-gpu: parity ops with TERN_ATT_PF_PIPE=0"
		run TERN_ATT_PF_PIPE=0 CK_RUN_SUITE=cuda_parity CK_RUN_CASE=ops -- \
			"$b/tests/check_gpu"
	fi
	if { [ -z "$suite" ] || [ "$suite" = cuda_parity ]; } &&
	    { [ -z "$case_" ] || [ "$case_" = ops ]; }; then
		# the tensor-core decode attention at every span and on
		# quantized pools (TERN_ATT_TC=1; by default only f16 pools
		# over long tables take it)
		echo "check-gpu: parity ops with TERN_ATT_TC=1"
		run TERN_ATT_TC=1 CK_RUN_SUITE=cuda_parity CK_RUN_CASE=ops -- \
			"$b/tests/check_gpu"
	fi
	if { [ -z "$suite" ] || [ "$suite" = cuda_parity ]; } &&
	    { [ -z "$case_" ] || [ "$case_" = gemv ]; }; then
		# gpu_swiglu_ffn's composition where bf16 prefill would keep
		# half intermediates (TERN_FFN_HALF=0)
		echo "check-gpu: parity gemv case with TERN_FFN_HALF=0"
		run TERN_FFN_HALF=0 CK_RUN_SUITE=cuda_parity CK_RUN_CASE=gemv -- \
			"$b/tests/check_gpu"
	fi
fi
# whole models: every fixture on CUDA against the CPU and transformers'
# logits, graphs, batched decode, load/free (tests/inference/test_cuda_models.c)
if [ $models = 1 ]; then
	echo "check-gpu: whole models (cuda_models)"
	run CK_RUN_SUITE=cuda_models -- "$b/tests/check_inference"
	echo "check-gpu: whole models with TERN_ATT_TC=1 (cuda_models)"
	run TERN_ATT_TC=1 CK_RUN_SUITE=cuda_models -- "$b/tests/check_inference"
fi
if command -v compute-sanitizer >/dev/null 2>&1; then
	# (cuda_parity by default: cuda_exl3's sizes make memcheck slow)
	ms="compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 1"
	if [ $gpu = 1 ]; then
		echo "check-gpu: compute-sanitizer memcheck"
		run TERN_GPU_NO_FILL=1 TERN_GPU_BENCH= \
			CK_RUN_SUITE="${suite:-cuda_parity}" -- \
			$ms "$b/tests/check_gpu"
		if { [ -z "$suite" ] || [ "$suite" = cuda_parity ]; } &&
		    { [ -z "$case_" ] || [ "$case_" = ops ]; }; then
			echo "check-gpu: compute-sanitizer memcheck, ops with TERN_ATT_TC=1"
			run TERN_ATT_TC=1 TERN_GPU_NO_FILL=1 CK_RUN_SUITE=cuda_parity \
				CK_RUN_CASE=ops -- $ms "$b/tests/check_gpu"
		fi
	fi
	if [ $models = 1 ]; then
		echo "check-gpu: compute-sanitizer memcheck of cuda_models"
		run CK_RUN_SUITE=cuda_models -- $ms "$b/tests/check_inference"
	fi
else
	echo "check-gpu: compute-sanitizer not found; memcheck skipped"
fi
exit $status
