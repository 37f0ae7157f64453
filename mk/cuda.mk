# mk/cuda.mk — the CUDA backend's tests (the backend's sources are in
# gpu/cuda/local.mk, which is included before tests/local.mk defines the
# test programs).  The parity suite is built in every configuration: it
# skips without a CUDA device (fails under TERN_GPU_TESTS=1).
tests_check_gpu_SOURCES += tests/gpu/test_cuda_parity.c
