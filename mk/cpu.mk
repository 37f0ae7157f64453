# mk/cpu.mk — the compute layer's front end (gpu/gpu.c: validation and
# dispatch), the backend registry and the CPU backend (gpu/cpu/), with its
# op tests.
#
# Extra flags for libgpu only: full vectorizer cost model (-O2 alone uses
# gcc's "very cheap" model, which skips most of the lane loops in
# gpu/cpu/matmul.c) and FMA contraction (-std=c11 turns it off; only matters
# in the AVX2 clones built by CPU_HOT).  Nothing here changes the target ISA:
# the default build runs on any x86-64.
gpu_libgpu_a_SOURCES += gpu/gpu.c gpu/gpu_impl.h gpu/registry.c \
	gpu/cpu/cpu_impl.h gpu/cpu/pool.c gpu/cpu/backend.c gpu/cpu/matmul.c \
	gpu/cpu/ops.c gpu/cpu/attention.c gpu/cpu/moe.c gpu/moe_plan.c \
	gpu/kvq.c \
	gpu/moe_plan.h
gpu_libgpu_a_CFLAGS = $(AM_CFLAGS) -ftree-vectorize -fvect-cost-model=dynamic \
	-ffp-contract=fast

tests_check_gpu_SOURCES += tests/gpu/test_cpu_ops.c tests/gpu/test_kvq.c
