/* inference/engine_impl.h — internals of the scheduler (inference/engine.c)
 * and of the paged KV-cache bookkeeping (inference/kvcache.c).
 * Engine-internal: never included outside inference/ (tests excepted).
 *
 * struct llm_kvcache is pure host-side bookkeeping over the page indices of
 * a context's KV pool; it never touches K/V data.  A page is in exactly
 * one of three states:
 *   - free:   on the free stack (never used, or its content forgotten);
 *   - used:   ref > 0, mapped in the page table of ref running jobs;
 *   - cached: ref == 0 but hashed (a full page whose content is known),
 *             kept on the LRU list for reuse until evicted.
 * Hashed pages (used or cached) are in the hash table under a key that is
 * the chained hash of all tokens from position 0 to the page's end:
 *   key(p) = H(key(p - 1), tokens[256 p .. 256 p + 255]),  key(-1) = seed.
 * Invariants: n_free + n_cached + n_used == n_pages; a hashed page is
 * read-only (no job writes a position it holds); the pool never promises
 * more pages than it has: n_reserved <= n_free + n_cached, so every
 * reservation can be honoured by llm_kvc_take (evicting LRU cached pages).
 */
#ifndef TERN_INFERENCE_ENGINE_IMPL_H
#define TERN_INFERENCE_ENGINE_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"
#include "inference/llm.h"
#include "inference/model_impl.h"

/* ---- paged KV cache bookkeeping (kvcache.c) --------------------------------- */

#define LLM_KVC_SEED 0x9e3779b97f4a7c15ull

struct llm_kvc_page {
	int32_t ref;       /* running jobs mapping this page */
	bool hashed;       /* content known: in the table under key */
	uint64_t key;      /* chained hash up to this page's end */
	uint64_t parent;   /* key of the previous page (LLM_KVC_SEED for page 0) */
	int32_t hnext;     /* next page in the same hash bucket, -1 */
	int32_t lru_prev;  /* cached pages: LRU list links, -1 at the ends */
	int32_t lru_next;
};

struct llm_kvcache {
	size_t n_pages;
	struct llm_kvc_page *pages; /* [n_pages] */
	int32_t *tokens;            /* [n_pages, LLM_KV_PAGE]: hashed pages' ids */
	int32_t *free_stack;        /* [n_pages] */
	size_t n_free;
	int32_t *buckets;           /* [n_buckets] heads, -1 */
	size_t n_buckets;           /* power of two */
	int32_t lru_head, lru_tail; /* head = least recently used */
	size_t n_cached;
	size_t n_reserved;          /* pages promised to admitted jobs */
	uint64_t n_evicted;
};

/* Set up bookkeeping for N_PAGES pages, all free.  LLM_E_INVALID (0 pages),
 * LLM_E_NOMEM. */
int llm_kvc_init(struct llm_kvcache *kc, size_t n_pages, struct diag *d);
/* Release the arrays (a zeroed struct is fine). */
void llm_kvc_fini(struct llm_kvcache *kc);

/* Chained key of a page: PARENT's key and its LLM_KV_PAGE ids. */
uint64_t llm_kvc_key(uint64_t parent, const int32_t *ids);

/* The hashed page with this key, parent and exact ids, or -1.  Does not
 * change the page's state. */
int32_t llm_kvc_find(const struct llm_kvcache *kc, uint64_t key, uint64_t parent,
		     const int32_t *ids);

/* Pages that could be handed out now beyond existing reservations:
 * n_free + n_cached - n_reserved. */
size_t llm_kvc_available(const struct llm_kvcache *kc);

/* Take a reference on PAGE (a hashed page found by llm_kvc_find, or a used
 * page).  A cached page leaves the LRU list; that needs one available
 * page, else LLM_E_NOSPACE and nothing changes. */
int llm_kvc_ref(struct llm_kvcache *kc, int32_t page);

/* Drop a reference.  At zero a hashed page becomes cached (most recently
 * used end of the LRU list), any other page goes back to the free stack. */
void llm_kvc_unref(struct llm_kvcache *kc, int32_t page);

/* Promise N pages to a job: 0, or LLM_E_NOSPACE when fewer are available
 * (nothing promised). */
int llm_kvc_reserve(struct llm_kvcache *kc, size_t n);
/* Return N unused promised pages. */
void llm_kvc_unreserve(struct llm_kvcache *kc, size_t n);

/* Hand out one promised page (ref 1, unhashed): from the free stack, else
 * by evicting the least recently used cached page (forgetting its hash).
 * The caller must hold a reservation (asserted). */
int32_t llm_kvc_take(struct llm_kvcache *kc);

/* Record that used page PAGE holds the LLM_KV_PAGE tokens IDS under KEY
 * (child of PARENT), making it findable.  No-op when the page is already
 * hashed or another page has the same content (then this one stays
 * private and is freed when released). */
void llm_kvc_publish(struct llm_kvcache *kc, int32_t page, uint64_t key,
		     uint64_t parent, const int32_t *ids);

/* Counts: used = referenced pages. */
size_t llm_kvc_n_used(const struct llm_kvcache *kc);

/* ---- scheduler (engine.c) ---------------------------------------------------- */

enum llm_job_phase {
	LLM_JOB_WAITING = 0, /* queued, holds nothing */
	LLM_JOB_PREFILL,     /* admitted: prompt positions [n_kv, n_prompt) to compute */
	LLM_JOB_DECODE,      /* feeding tokens[n_tokens - 1] at position n_tokens - 1 */
	LLM_JOB_DONE,        /* finished or detached; holds no slot or page */
};

struct llm_job {
	struct llm_engine *engine; /* NULL once detached (engine freed) */
	struct llm_job *next;      /* link in the engine's waiting / running list */
	atomic_bool cancel;        /* set by llm_job_cancel from any thread */
	enum llm_job_phase phase;

	int32_t *tokens;   /* [cap]: prompt then generated ids */
	size_t cap;        /* n_prompt + max_gen */
	size_t n_prompt;
	size_t n_tokens;   /* prompt + generated tokens kept */
	size_t n_kv;       /* positions [0, n_kv) are in the KV cache */
	size_t max_gen;    /* most tokens generated */
	bool to_ctx;       /* max_tokens <= 0: the limit is the context */
	size_t loop_span;  /* stop_on_loop (0 off) */

	uint64_t *page_keys;     /* [n_shareable]: chained keys of the prompt's
				  * full pages below n_prompt - 1 */
	size_t n_shareable;
	bool no_share;           /* images: no page reuse or publishing */
	float *embd;             /* [n_embd rows, E] image embeddings, or NULL */
	int32_t *erow;           /* [n_prompt]: embedding row of each prompt
				  * token, -1 for text */
	int32_t *mpos;           /* [3][n_prompt] or NULL */
	int64_t mpos_delta;      /* generated position p is at p + delta */
	int32_t slot;            /* sequence slot, -1 */
	size_t n_pages_total;    /* pages of the longest run */
	size_t n_pages_reserved; /* promised pages not yet taken */

	struct llm_sampler *smp;
	struct llm_stop *stop;
	struct llm_detok *detok; /* NULL without a tokenizer */
	llm_job_callback cb;
	void *user;

	/* this step */
	size_t step_rows;   /* rows in the batch (prefill, or a decode row
			     * and its n_prop proposals) */
	int32_t logit_idx;  /* first of its rows in the logits output, -1 */

	/* speculative decoding: this step's proposals for the positions
	 * after tokens[n_tokens - 1]; d_kv: positions [0, d_kv) of tokens
	 * are in the draft model's cache (slot `slot`) */
	int32_t *prop;      /* [par.n_draft] */
	size_t n_prop;
	size_t k_prop;      /* par.draft_adaptive: proposals wanted a step */
	unsigned n_miss;    /* adaptive: verify steps in a row that kept none */
	unsigned n_pause;   /* adaptive: steps left without proposals */
	size_t d_kv;
	int32_t d_row;      /* its logits row in the draft batch being built,
			     * for proposal d_step; -1 */
	size_t d_step;

	char *evtext;       /* text of the FINISH event (stop + detok flush) */
	size_t evtext_cap;

	enum llm_finish_reason finish;
	int err;
	char errmsg[DIAG_MSG_MAX];
	struct llm_job_stats st;
	double t_submit, t_admit, t_first;
};

/* Test hook: called with each row of logits before it is sampled. */
typedef void (*llm_engine_logits_hook)(struct llm_job *job, const float *logits,
				       size_t n_vocab, void *user);

struct llm_engine {
	struct llm_model *model;
	const struct llm_tokenizer *tok;
	struct llm_context *ctx;
	struct llm_engine_params par;
	size_t n_vocab;
	struct llm_kvcache kc;

	struct llm_job **slots;      /* [n_slots] */
	struct llm_job *wait_head, *wait_tail;
	struct llm_job *run_head;    /* admission order */
	size_t n_running, n_waiting;

	/* one batch, sized at creation */
	int32_t *b_ids, *b_seq, *b_pos;
	uint8_t *b_want;
	float *b_logits;             /* [n_slots * (1 + n_draft), n_vocab] */
	float *b_embd;               /* [n_batch, n_embd], on the first image job */
	int32_t *b_mpos;             /* [3, n_batch] */
	struct llm_job **b_jobs;     /* [n_slots]: job of each logits row */

	/* speculative decoding (par.n_draft > 0): the draft model (NULL for
	 * n-gram proposals), its context (a slot per job slot, pages taken
	 * as positions grow), one row of its logits, its batch */
	struct llm_model *draft;
	struct llm_context *dctx;
	float *d_logits;             /* [n_slots, n_vocab] */
	int32_t *d_ids, *d_seq, *d_pos;
	uint8_t *d_want;
	size_t d_n, d_nw;            /* rows queued, of which want logits */
	uint64_t n_drafted, n_accepted;

	/* DRY's token texts, built on first need */
	char **pieces;
	size_t *piece_lens;

	uint64_t n_reused, n_computed, n_steps;

	llm_engine_logits_hook logits_hook;
	void *logits_hook_user;
};

#endif
