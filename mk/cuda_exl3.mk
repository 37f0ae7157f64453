# mk/cuda_exl3.mk — EXL3 linears on the CUDA backend (issue 8, GPU side):
# the fused trellis-decode kernels (gpu/cuda/exl3.cu), the prefill path's
# dequantise kernels (gpu/cuda/exl3_dq.cu), the quantizer's trellis
# search (gpu/cuda/exl3_quant.cu), their host side
# (gpu/cuda/cuda_exl3.c), and the CUDA-vs-CPU suite cuda_exl3, which is
# built in every configuration and skips without a CUDA device.
CUDA_EXL3_SRCS = gpu/cuda/exl3.cu gpu/cuda/exl3_dq.cu gpu/cuda/cuda_exl3.c \
	gpu/cuda/cuda_exl3.h gpu/cuda/exl3_dev.cuh gpu/cuda/exl3_quant.cu
EXTRA_DIST += $(CUDA_EXL3_SRCS)
if HAVE_CUDA
gpu_libgpu_a_SOURCES += $(CUDA_EXL3_SRCS)
gpu/cuda/exl3.o gpu/cuda/exl3_dq.o gpu/cuda/exl3_quant.o: $(top_srcdir)/gpu/cuda/cuda_exl3.h \
	$(top_srcdir)/gpu/cuda/exl3_dev.cuh $(top_srcdir)/gpu/exl3_cb.h $(CUDA_KHDRS)
endif
tests_check_gpu_SOURCES += tests/gpu/test_cuda_exl3.c
