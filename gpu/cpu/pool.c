/* gpu/cpu/pool.c — the CPU backend's persistent thread pool.
 *
 * n_threads - 1 workers live as long as the backend handle; the caller of
 * cpu_pool_for is thread 0 and works too.  A job is n_chunks independent
 * chunks; every participating thread claims chunks from a shared atomic
 * counter until none are left.  Dynamic claiming matters on a loaded
 * machine: a worker that is not scheduled when a job starts simply takes
 * no chunks, and the caller does them, instead of the caller spinning
 * until that worker runs (with static partitions that wait was 80% of the
 * decode time on a busy 2-core machine).
 *
 * Protocol.  `state` packs (generation << 9) | CLOSED bit | active count.
 *   - the caller publishes a job: fn/ctx/n_chunks/next, then state = new
 *     generation, open, 0 active (release), under the mutex with a
 *     broadcast for sleeping workers;
 *   - a worker that sees a new generation joins by CAS (active + 1) only
 *     while the job is open and still that generation; only then does it
 *     read fn/ctx; it leaves with active - 1 (release) after the counter
 *     ran out;
 *   - the caller, once the counter ran out, sets CLOSED and waits for
 *     active == 0: late workers cannot join, and no joined worker still
 *     touches the job when cpu_pool_for returns.
 * Workers spin briefly on `state` before sleeping on the condition
 * variable, because ops come in quick succession in a forward pass.
 *
 * Invariants: one job at a time (cpu_pool_for is called by one thread and
 * is not reentrant); fn/ctx are read by a worker only between a successful
 * join and its leave.
 */
#include "config.h"

#include "gpu/cpu/cpu_impl.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

/* Spin iterations before a worker sleeps (tens of microseconds). */
#define SPIN_BEFORE_SLEEP 20000

#define ST_ACTIVE_MASK 0xffu
#define ST_CLOSED 0x100u
#define ST_GEN_SHIFT 9

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
	atomic_uint state;
	atomic_size_t next;
	size_t n_chunks;
	unsigned gen;
	int stop;
	cpu_chunk_fn fn;
	void *ctx;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Claim and run chunks until none are left. */
static void drain(struct cpu_pool *p, cpu_chunk_fn fn, void *ctx, int tid)
{
	size_t c;

	while ((c = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed)) <
	       p->n_chunks)
		fn(ctx, c, tid);
}

static void *worker_main(void *arg)
{
	struct cpu_worker *w = arg;
	struct cpu_pool *p = w->pool;
	/* generation 0 is the pool's state at creation: a worker that starts
	 * late must still see every job (and the stop job) published since */
	unsigned seen = 0;

	for (;;) {
		unsigned s;
		int spins = 0;

		while (((s = atomic_load_explicit(&p->state, memory_order_acquire)) >>
			ST_GEN_SHIFT) == seen) {
			if (++spins < SPIN_BEFORE_SLEEP) {
				cpu_relax();
				if ((spins & 255) == 0)
					sched_yield();
				continue;
			}
			pthread_mutex_lock(&p->mu);
			while ((atomic_load_explicit(&p->state, memory_order_acquire) >>
				ST_GEN_SHIFT) == seen)
				pthread_cond_wait(&p->cv, &p->mu);
			pthread_mutex_unlock(&p->mu);
			spins = 0;
		}
		seen = s >> ST_GEN_SHIFT;
		/* join while open and still this generation */
		while (!(s & ST_CLOSED) && (s >> ST_GEN_SHIFT) == seen) {
			if (atomic_compare_exchange_weak_explicit(
				    &p->state, &s, s + 1, memory_order_acq_rel,
				    memory_order_acquire)) {
				if (p->stop) {
					atomic_fetch_sub_explicit(&p->state, 1,
								  memory_order_release);
					return NULL;
				}
				drain(p, p->fn, p->ctx, w->tid);
				atomic_fetch_sub_explicit(&p->state, 1,
							  memory_order_release);
				break;
			}
		}
	}
}

/* Publish the job already stored in p (fn, ctx, n_chunks, next). */
static void publish(struct cpu_pool *p)
{
	pthread_mutex_lock(&p->mu);
	p->gen = (p->gen + 1) & ((1u << (32 - ST_GEN_SHIFT)) - 1);
	atomic_store_explicit(&p->state, p->gen << ST_GEN_SHIFT,
			      memory_order_release);
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* Close the current job and wait until no worker is inside it. */
static void close_job(struct cpu_pool *p)
{
	unsigned spins = 0;

	atomic_fetch_or_explicit(&p->state, ST_CLOSED, memory_order_acq_rel);
	while (atomic_load_explicit(&p->state, memory_order_acquire) &
	       ST_ACTIVE_MASK) {
		cpu_relax();
		if ((++spins & 255) == 0)
			sched_yield(); /* a joined worker may be preempted */
	}
}

int cpu_pool_new(int n_threads, struct cpu_pool **out)
{
	struct cpu_pool *p;
	int i;

	*out = NULL;
	if (n_threads < 1)
		n_threads = 1;
	if (n_threads > (int)ST_ACTIVE_MASK)
		n_threads = (int)ST_ACTIVE_MASK;
	p = calloc(1, sizeof *p);
	if (!p)
		return GPU_E_NOMEM;
	atomic_init(&p->state, 0);
	atomic_init(&p->next, 0);
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
		pthread_cond_destroy(&p->cv);
		pthread_mutex_destroy(&p->mu);
		free(p);
		return GPU_E_NOMEM;
	}
	for (i = 1; i < n_threads; i++) {
		p->workers[i].pool = p;
		p->workers[i].tid = i;
		if (pthread_create(&p->workers[i].thread, NULL, worker_main,
				   &p->workers[i]) != 0)
			break; /* run with the threads we got */
		p->n_started++;
	}
	p->n_threads = p->n_started + 1;
	*out = p;
	return 0;
}

/* Every worker must see `stop`: keep publishing stop jobs until all have
 * joined one and left. */
void cpu_pool_free(struct cpu_pool *p)
{
	int i;

	if (!p)
		return;
	if (p->n_started > 0) {
		p->stop = 1;
		p->n_chunks = 0;
		atomic_store_explicit(&p->next, 0, memory_order_relaxed);
		publish(p);
		/* a worker that joined returns; one that found the job closed
		 * would wait for the next generation, so the job stays open
		 * until every thread has exited (join below) */
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

void cpu_pool_for(struct cpu_pool *p, size_t n_chunks, cpu_chunk_fn fn,
		  void *ctx)
{
	size_t c;

	if (n_chunks == 0)
		return;
	if (p->n_threads == 1 || n_chunks == 1) {
		for (c = 0; c < n_chunks; c++)
			fn(ctx, c, 0);
		return;
	}
	p->fn = fn;
	p->ctx = ctx;
	p->n_chunks = n_chunks;
	atomic_store_explicit(&p->next, 0, memory_order_relaxed);
	publish(p);
	drain(p, fn, ctx, 0);
	close_job(p);
}
