/* tests/gpu/gpupair.h — what the CUDA-vs-CPU suites share: a seeded random
 * source (fresh seed per run, TERN_TEST_SEED to repeat one; the seed goes
 * into failure messages) and the pair of backends, with the skip rule (no
 * CUDA device: the case passes with one SKIP line, unless TERN_GPU_TESTS=1
 * demands a device). */
#ifndef TERN_TESTS_GPU_GPUPAIR_H
#define TERN_TESTS_GPU_GPUPAIR_H

#include <stdint.h>

#include "gpu/gpu.h"

/* The seed of the current random data (print it on failure). */
extern uint64_t test_seed;

/* Reseed from TERN_TEST_SEED or the clock. */
void test_rng_seed(void);
/* 32 random bits (LCG, high half). */
uint32_t test_urand32(void);
/* Uniform in [-1, 1). */
float test_frand(void);
/* Uniform in [0, n). */
unsigned test_urand(unsigned n);

struct gpu_pair {
	struct gpu *cpu, *cuda;
};

/* Reseed, then open CUDA and the CPU backend (cpu_threads 0: the default).
 * Returns 0 (nothing open) when there is no CUDA device and the case should
 * skip; 1 when both are open. */
int gpu_pair_open(struct gpu_pair *p, int cpu_threads);
void gpu_pair_close(struct gpu_pair *p);

#endif
