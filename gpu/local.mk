# gpu/ — device memory and numeric ops behind one vtable (gpu/gpu.h).
# Backends append their sources: the CPU backend in mk/cpu.mk, CUDA below.
noinst_LIBRARIES += gpu/libgpu.a
gpu_libgpu_a_SOURCES = gpu/gpu.h gpu/half.h
gpu_libgpu_a_CPPFLAGS = $(AM_CPPFLAGS) $(CUDA_CPPFLAGS)
GPU_LIBS = gpu/libgpu.a $(CUDA_LDFLAGS) $(CUDA_LIBS)
include gpu/cuda/local.mk
