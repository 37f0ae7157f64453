/* tests/gpu/gpupair.c — see gpupair.h. */
#include "config.h"

#include "gpupair.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t test_seed;
static uint64_t rng_state;

void test_rng_seed(void)
{
	const char *s = getenv("TERN_TEST_SEED");

	test_seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) * 2654435761u;
	rng_state = test_seed;
}

static uint64_t step(void)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return rng_state;
}

uint32_t test_urand32(void)
{
	return (uint32_t)(step() >> 32);
}

float test_frand(void)
{
	return (float)((step() >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

unsigned test_urand(unsigned n)
{
	return (unsigned)((step() >> 33) % n);
}

int gpu_pair_open(struct gpu_pair *p, int cpu_threads)
{
	static int said;
	struct gpu_params prm = gpu_default_params();
	struct diag d;
	int rc;

	memset(p, 0, sizeof *p);
	test_rng_seed();
	diag_clear(&d);
	rc = gpu_open(GPU_KIND_CUDA, NULL, &p->cuda, &d);
	if (rc == GPU_E_NODEVICE) {
		const char *env = getenv("TERN_GPU_TESTS");

		if (env && !strcmp(env, "1"))
			ck_abort_msg("TERN_GPU_TESTS=1 but no CUDA device: %s",
				     diag_message(&d, "?"));
		if (!said++)
			printf("SKIP: no CUDA device (%s)\n", diag_message(&d, "?"));
		return 0;
	}
	ck_assert_msg(rc == 0, "gpu_open(cuda): %s", diag_message(&d, "?"));
	if (cpu_threads > 0)
		prm.n_threads = cpu_threads;
	ck_assert_int_eq(gpu_open(GPU_KIND_CPU, &prm, &p->cpu, NULL), 0);
	return 1;
}

void gpu_pair_close(struct gpu_pair *p)
{
	gpu_close(p->cuda);
	gpu_close(p->cpu);
}
