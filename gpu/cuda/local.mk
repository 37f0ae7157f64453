# gpu/cuda/ — the CUDA backend: host C compiled by $(CC), kernels by nvcc.
# Built only when configure found CUDA (HAVE_CUDA); the registry in
# gpu/registry.c is the only place that knows whether it exists.
EXTRA_DIST += gpu/cuda/cuda_check.h gpu/cuda/kernels.h gpu/cuda/cuda_impl.h gpu/cuda/cuda_common.cuh gpu/cuda/cuda_backend.c gpu/cuda/probe.cu
if HAVE_CUDA
CUDA_KHDRS = $(top_srcdir)/gpu/cuda/kernels.h $(top_srcdir)/gpu/cuda/cuda_common.cuh
gpu_libgpu_a_SOURCES += \
	gpu/cuda/cuda_backend.c gpu/cuda/cuda_check.h gpu/cuda/kernels.h gpu/cuda/cuda_impl.h \
	gpu/cuda/cuda_common.cuh gpu/cuda/probe.cu
gpu/cuda/probe.o: $(CUDA_KHDRS)
endif
