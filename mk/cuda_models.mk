# mk/cuda_models.mk — whole-model parity on the CUDA backend (issue 7):
# suite cuda_models (every tiny fixture on CUDA vs the CPU and vs
# transformers, recorded decode graphs vs unrecorded, load/free memory).
# Built in every configuration; its CUDA cases skip without a device.
tests_check_inference_SOURCES += tests/inference/test_cuda_models.c
