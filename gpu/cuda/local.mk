# gpu/cuda/ — the CUDA backend: host C compiled by $(CC), kernels by nvcc.
# Built only when configure found CUDA (HAVE_CUDA); the registry in
# gpu/registry.c is the only place that knows whether it exists.
CUDA_SRCS = gpu/cuda/cuda_backend.c gpu/cuda/cuda_check.h gpu/cuda/kernels.h \
	gpu/cuda/cuda_impl.h gpu/cuda/switches.h gpu/cuda/cuda_common.cuh \
	gpu/cuda/pdl.cuh gpu/cuda/rope_dev.cuh gpu/cuda/kvq_dev.cuh gpu/cuda/probe.cu \
	gpu/cuda/ops.cu gpu/cuda/gemv.cu gpu/cuda/attention.cu
EXTRA_DIST += $(CUDA_SRCS)
if HAVE_CUDA
CUDA_KHDRS = $(top_srcdir)/gpu/cuda/kernels.h $(top_srcdir)/gpu/cuda/cuda_common.cuh \
	$(top_srcdir)/gpu/cuda/pdl.cuh $(top_srcdir)/gpu/cuda/rope_dev.cuh \
	$(top_srcdir)/gpu/cuda/switches.h $(top_srcdir)/gpu/cuda/kvq_dev.cuh
gpu_libgpu_a_SOURCES += $(CUDA_SRCS)
# nvcc's host stubs use the C++ runtime (guarded statics, EH personality)
GPU_LIBS += -lstdc++
gpu/cuda/probe.o gpu/cuda/ops.o gpu/cuda/gemv.o gpu/cuda/attention.o: $(CUDA_KHDRS)
gpu/cuda/attention.o: $(top_srcdir)/gpu/cuda/exl3_dev.cuh $(top_srcdir)/gpu/exl3_cb.h
endif
