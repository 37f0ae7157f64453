/* gpu/cpu/pool.c — the CPU backend's persistent thread pool.
 *
 * n_threads - 1 workers live as long as the backend handle; the caller of
 * cpu_pool_run is thread 0.  A job is published by bumping `gen` (under the
 * mutex, so a worker about to sleep cannot miss it); workers spin briefly
 * on `gen` before sleeping on the condition variable, because ops come in
 * quick succession during a forward pass and a futex wake-up per op would
 * cost more than small ops take.  Completion is a countdown (`pending`)
 * the caller spins on.
 *
 * Invariants: one job in flight at a time (cpu_pool_run is not reentrant
 * and is called from one thread); fn/ctx are written before the release
 * increment of gen and read after the acquire load.
 */
#include "config.h"

#include "gpu/cpu/cpu_impl.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

/* Spin iterations before a worker sleeps (a few tens of microseconds). */
#define SPIN_BEFORE_SLEEP 20000

struct cpu_worker {
	struct cpu_pool *pool;
	int tid;
	pthread_t thread;
};

struct cpu_pool {
	int n_threads;
	int n_started;
	struct cpu_worker *workers;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_uint gen;
	atomic_int pending;
	int stop;
	cpu_job_fn fn;
	void *ctx;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static void *worker_main(void *arg)
{
	struct cpu_worker *w = arg;
	struct cpu_pool *p = w->pool;
	unsigned seen = 0;

	for (;;) {
		unsigned g;
		int spins = 0;

		while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) ==
		       seen) {
			if (++spins < SPIN_BEFORE_SLEEP) {
				cpu_relax();
				if ((spins & 1023) == 0)
					sched_yield();
				continue;
			}
			pthread_mutex_lock(&p->mu);
			while (atomic_load_explicit(&p->gen, memory_order_acquire) ==
			       seen)
				pthread_cond_wait(&p->cv, &p->mu);
			pthread_mutex_unlock(&p->mu);
			spins = 0;
		}
		seen = g;
		if (p->stop)
			break;
		p->fn(p->ctx, w->tid, p->n_threads);
		atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
	}
	return NULL;
}

static void publish(struct cpu_pool *p)
{
	pthread_mutex_lock(&p->mu);
	atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

int cpu_pool_new(int n_threads, struct cpu_pool **out)
{
	struct cpu_pool *p;
	int i;

	*out = NULL;
	if (n_threads < 1)
		n_threads = 1;
	p = calloc(1, sizeof *p);
	if (!p)
		return GPU_E_NOMEM;
	p->n_threads = n_threads;
	atomic_init(&p->gen, 0);
	atomic_init(&p->pending, 0);
	if (pthread_mutex_init(&p->mu, NULL) != 0) {
		free(p);
		return GPU_E_NOMEM;
	}
	if (pthread_cond_init(&p->cv, NULL) != 0) {
		pthread_mutex_destroy(&p->mu);
		free(p);
		return GPU_E_NOMEM;
	}
	p->workers = calloc((size_t)n_threads, sizeof *p->workers);
	if (!p->workers) {
		cpu_pool_free(p);
		return GPU_E_NOMEM;
	}
	for (i = 1; i < n_threads; i++) {
		p->workers[i].pool = p;
		p->workers[i].tid = i;
		if (pthread_create(&p->workers[i].thread, NULL, worker_main,
				   &p->workers[i]) != 0) {
			/* run with the threads we got */
			break;
		}
		p->n_started++;
	}
	p->n_threads = p->n_started + 1;
	*out = p;
	return 0;
}

void cpu_pool_free(struct cpu_pool *p)
{
	int i;

	if (!p)
		return;
	if (p->n_started > 0) {
		p->stop = 1;
		publish(p);
		for (i = 1; i <= p->n_started; i++)
			pthread_join(p->workers[i].thread, NULL);
	}
	free(p->workers);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

int cpu_pool_size(const struct cpu_pool *p)
{
	return p->n_threads;
}

void cpu_pool_run(struct cpu_pool *p, cpu_job_fn fn, void *ctx)
{
	if (p->n_threads == 1) {
		fn(ctx, 0, 1);
		return;
	}
	p->fn = fn;
	p->ctx = ctx;
	atomic_store_explicit(&p->pending, p->n_threads - 1,
			      memory_order_relaxed);
	publish(p);
	fn(ctx, 0, p->n_threads);
	while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0)
		cpu_relax();
}
