/* inference/sampler.c — the token sampler pipeline (struct llm_sampler).
 *
 * Owns: a copy of the parameters (logit biases, banned ids, DRY breaker
 * strings), the accepted-token history ring, position bans, mirostat's mu,
 * the random generator and every scratch buffer.  Public API and semantics
 * of each stage: inference/llm.h, section "Sampling".
 *
 * Invariants:
 *   - All scratch is allocated in llm_sampler_new / set_params, sized for
 *     n_vocab and hist_cap; llm_sampler_sample/probs/accept never allocate.
 *   - The candidate list cand[0..n_cand) holds finite logits only: -inf
 *     (banned, biased away) and NaN entries are dropped when it is filled,
 *     so every stage works on real numbers and n_cand >= 1 after filling.
 *   - `sorted` means cand is ordered by logit descending, id ascending on
 *     ties (a total order: the result never depends on qsort's stability);
 *     `p_valid` means cand[].p is the softmax of the current logits.
 *   - hist[] is a ring of the last min(n_hist, hist_cap) accepted tokens;
 *     mu_hist[] holds mirostat's mu *before* each of them was accepted.
 *
 * Stage semantics follow llama.cpp's src/llama-sampling.cpp (read, not
 * copied); where they differ it is said at the stage.
 */
#include "config.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "inference/llm.h"

#define MAX_POS_BANS 1024

struct cand {
	int32_t id;
	float logit;
	float p;
};

/* (position, token) pair for llm_sampler_ban_here */
struct pos_ban {
	int64_t pos;
	int32_t token;
};

struct llm_sampler {
	struct llm_sampler_params p; /* pointers below point at owned copies */
	int32_t n_vocab;

	/* owned copies of the params' arrays */
	struct llm_logit_bias *bias;
	int32_t *banned;
	char **breakers; /* n_dry_sequence_breakers strings, one block */

	/* borrowed token pieces (llm_sampler_set_pieces) and derived mask */
	const char *const *pieces;
	const size_t *piece_lens;
	unsigned char *is_breaker; /* n_vocab */

	/* history */
	int32_t *hist;   /* ring, hist_cap */
	float *mu_hist;  /* ring, hist_cap */
	int32_t hist_cap;
	int32_t hist_len;   /* entries valid in the ring (<= hist_cap) */
	int32_t hist_head;  /* index of the next write */
	int64_t n_past;

	struct pos_ban bans[MAX_POS_BANS];
	int32_t n_bans;

	float mu;
	bool have_dist; /* cand[] holds a distribution not yet accepted */

	uint64_t rng[4];

	/* scratch */
	struct cand *cand, *cand2; /* n_vocab each */
	int32_t n_cand;
	bool sorted, p_valid;
	int32_t *count;   /* n_vocab, all zero between uses */
	int32_t *zbuf;    /* hist_cap: Z values / DRY max repeat list */
	int32_t *dry_max; /* n_vocab, all zero between uses */
	int32_t *touched; /* hist_cap */
	float *key;       /* n_vocab (typical: shifted scores) */
};

/* ---- random generator ------------------------------------------------------
 * xoshiro256** (Blackman & Vigna) with its state filled by splitmix64 from
 * the 64-bit seed, as the authors recommend.  Pure integer arithmetic: the
 * same seed gives the same stream everywhere. */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(uint64_t s[4])
{
	uint64_t r = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

static void rng_seed(struct llm_sampler *s)
{
	uint64_t x = s->p.seed;
	if (x == LLM_SAMPLER_SEED_RANDOM) {
		struct timespec ts;
		timespec_get(&ts, TIME_UTC);
		x = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
		x ^= clock_now_ns() * 0x2545f4914f6cdd1dull;
		x ^= (uint64_t)(uintptr_t)s;
	}
	for (int i = 0; i < 4; i++)
		s->rng[i] = splitmix64(&x);
}

/* 53 random bits -> [0, 1) */
static double rng_uniform(uint64_t s[4])
{
	return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

/* ---- parameters -------------------------------------------------------------- */

static const char *const default_breakers[] = { "\n", ":", "\"", "*" };

static const enum llm_sampler_stage default_order[] = {
	LLM_SAMPLER_STAGE_PENALTIES, LLM_SAMPLER_STAGE_DRY,
	LLM_SAMPLER_STAGE_TOP_N_SIGMA, LLM_SAMPLER_STAGE_TOP_K,
	LLM_SAMPLER_STAGE_TYPICAL, LLM_SAMPLER_STAGE_TOP_P,
	LLM_SAMPLER_STAGE_MIN_P, LLM_SAMPLER_STAGE_XTC,
	LLM_SAMPLER_STAGE_TEMPERATURE,
};

struct llm_sampler_params llm_sampler_default_params(void)
{
	struct llm_sampler_params p;
	memset(&p, 0, sizeof p);
	p.temperature = 0.8f;
	p.top_k = 40;
	p.top_p = 0.95f;
	p.min_p = 0.05f;
	p.typical_p = 1.0f;
	p.top_n_sigma = -1.0f;
	p.xtc_probability = 0.0f;
	p.xtc_threshold = 0.1f;
	p.min_keep = 0;
	p.dry_multiplier = 0.0f;
	p.dry_base = 1.75f;
	p.dry_allowed_length = 2;
	p.dry_penalty_last_n = -1;
	p.dry_sequence_breakers = default_breakers;
	p.n_dry_sequence_breakers = sizeof default_breakers / sizeof *default_breakers;
	p.repeat_penalty = 1.0f;
	p.frequency_penalty = 0.0f;
	p.presence_penalty = 0.0f;
	p.penalty_last_n = 64;
	p.mirostat = 0;
	p.mirostat_tau = 5.0f;
	p.mirostat_eta = 0.1f;
	p.seed = LLM_SAMPLER_SEED_RANDOM;
	p.n_order = (int32_t)(sizeof default_order / sizeof *default_order);
	for (int32_t i = 0; i < p.n_order; i++)
		p.order[i] = default_order[i];
	p.n_history_max = 4096;
	return p;
}

static const char *const stage_names[LLM_SAMPLER_STAGE_COUNT] = {
	"penalties", "dry", "top_n_sigma", "top_k", "typical_p",
	"top_p", "min_p", "xtc", "temperature",
};

const char *llm_sampler_stage_name(enum llm_sampler_stage stage)
{
	if ((int)stage < 0 || stage >= LLM_SAMPLER_STAGE_COUNT)
		return "?";
	return stage_names[stage];
}

int llm_sampler_stage_parse(const char *name, enum llm_sampler_stage *out,
			    struct diag *d)
{
	if (!name || !out)
		return diag_fail(d, LLM_E_INVALID, "sampler stage: no name");
	for (int i = 0; i < LLM_SAMPLER_STAGE_COUNT; i++) {
		if (strcmp(name, stage_names[i]) == 0) {
			*out = (enum llm_sampler_stage)i;
			return 0;
		}
	}
	if (strcmp(name, "typical") == 0) {
		*out = LLM_SAMPLER_STAGE_TYPICAL;
		return 0;
	}
	if (strcmp(name, "temp") == 0) {
		*out = LLM_SAMPLER_STAGE_TEMPERATURE;
		return 0;
	}
	return diag_fail(d, LLM_E_INVALID, "unknown sampler stage '%s'", name);
}

/* Window length a `last_n` parameter resolves to (-1: all history). */
static int32_t window_of(int32_t last_n, int32_t n_history_max)
{
	return last_n < 0 ? n_history_max : last_n;
}

static int validate(const struct llm_sampler_params *p, int32_t n_vocab,
		    struct diag *d)
{
	if (!p)
		return diag_fail(d, LLM_E_INVALID, "sampler: no parameters");
	if (n_vocab <= 0)
		return diag_fail(d, LLM_E_INVALID, "sampler: n_vocab %d", (int)n_vocab);
	if (isnan(p->temperature) || isnan(p->top_p) || isnan(p->min_p) ||
	    isnan(p->typical_p) || isnan(p->top_n_sigma) ||
	    isnan(p->xtc_probability) || isnan(p->xtc_threshold) ||
	    !isfinite(p->dry_multiplier) || !isfinite(p->dry_base) ||
	    !isfinite(p->repeat_penalty) || !isfinite(p->frequency_penalty) ||
	    !isfinite(p->presence_penalty) || !isfinite(p->mirostat_tau) ||
	    !isfinite(p->mirostat_eta))
		return diag_fail(d, LLM_E_INVALID, "sampler: a parameter is not a number");
	if (p->repeat_penalty <= 0.0f)
		return diag_fail(d, LLM_E_INVALID, "sampler: repeat_penalty %g must be > 0",
				 (double)p->repeat_penalty);
	if (p->penalty_last_n < -1 || p->dry_penalty_last_n < -1)
		return diag_fail(d, LLM_E_INVALID, "sampler: a penalty window is < -1");
	if (p->dry_allowed_length < 0 || p->min_keep < 0)
		return diag_fail(d, LLM_E_INVALID, "sampler: dry_allowed_length and min_keep must be >= 0");
	if (p->n_history_max < 1)
		return diag_fail(d, LLM_E_INVALID, "sampler: n_history_max %d must be >= 1",
				 (int)p->n_history_max);
	if (p->mirostat == 1)
		return diag_fail(d, LLM_E_UNSUPPORTED, "sampler: mirostat v1 is not supported (use 2)");
	if (p->mirostat != 0 && p->mirostat != 2)
		return diag_fail(d, LLM_E_INVALID, "sampler: mirostat %d (0 or 2)", (int)p->mirostat);
	if (p->n_order < 0 || p->n_order > LLM_SAMPLER_MAX_STAGES)
		return diag_fail(d, LLM_E_INVALID, "sampler: %d stages (at most %d)",
				 (int)p->n_order, LLM_SAMPLER_MAX_STAGES);
	for (int32_t i = 0; i < p->n_order; i++)
		if ((int)p->order[i] < 0 || p->order[i] >= LLM_SAMPLER_STAGE_COUNT)
			return diag_fail(d, LLM_E_INVALID, "sampler: order[%d] = %d is not a stage",
					 (int)i, (int)p->order[i]);
	if (p->n_logit_bias && !p->logit_bias)
		return diag_fail(d, LLM_E_INVALID, "sampler: logit_bias is NULL");
	for (size_t i = 0; i < p->n_logit_bias; i++) {
		const struct llm_logit_bias *b = &p->logit_bias[i];
		if (b->token < 0 || b->token >= n_vocab)
			return diag_fail(d, LLM_E_INVALID, "sampler: logit bias for token %d outside vocab of %d",
					 (int)b->token, (int)n_vocab);
		if (isnan(b->bias) || b->bias == INFINITY)
			return diag_fail(d, LLM_E_INVALID, "sampler: logit bias for token %d is not finite",
					 (int)b->token);
	}
	if (p->n_banned_tokens && !p->banned_tokens)
		return diag_fail(d, LLM_E_INVALID, "sampler: banned_tokens is NULL");
	for (size_t i = 0; i < p->n_banned_tokens; i++)
		if (p->banned_tokens[i] < 0 || p->banned_tokens[i] >= n_vocab)
			return diag_fail(d, LLM_E_INVALID, "sampler: banned token %d outside vocab of %d",
					 (int)p->banned_tokens[i], (int)n_vocab);
	if (p->n_dry_sequence_breakers && !p->dry_sequence_breakers)
		return diag_fail(d, LLM_E_INVALID, "sampler: dry_sequence_breakers is NULL");
	for (size_t i = 0; i < p->n_dry_sequence_breakers; i++)
		if (!p->dry_sequence_breakers[i])
			return diag_fail(d, LLM_E_INVALID, "sampler: dry sequence breaker %zu is NULL", i);
	return 0;
}

/* Owned copies of the params' arrays (all-or-nothing). */
struct owned {
	struct llm_logit_bias *bias;
	int32_t *banned;
	char **breakers;
};

static void owned_free(struct owned *o)
{
	free(o->bias);
	free(o->banned);
	free(o->breakers);
}

static int owned_copy(const struct llm_sampler_params *p, struct owned *o,
		      struct diag *d)
{
	memset(o, 0, sizeof *o);
	if (p->n_logit_bias) {
		o->bias = malloc(p->n_logit_bias * sizeof *o->bias);
		if (!o->bias)
			goto nomem;
		memcpy(o->bias, p->logit_bias, p->n_logit_bias * sizeof *o->bias);
	}
	if (p->n_banned_tokens) {
		o->banned = malloc(p->n_banned_tokens * sizeof *o->banned);
		if (!o->banned)
			goto nomem;
		memcpy(o->banned, p->banned_tokens, p->n_banned_tokens * sizeof *o->banned);
	}
	if (p->n_dry_sequence_breakers) {
		/* one block: the pointer array, then the strings */
		size_t n = p->n_dry_sequence_breakers, bytes = n * sizeof(char *);
		for (size_t i = 0; i < n; i++)
			bytes += strlen(p->dry_sequence_breakers[i]) + 1;
		o->breakers = malloc(bytes);
		if (!o->breakers)
			goto nomem;
		char *w = (char *)(o->breakers + n);
		for (size_t i = 0; i < n; i++) {
			size_t l = strlen(p->dry_sequence_breakers[i]) + 1;
			memcpy(w, p->dry_sequence_breakers[i], l);
			o->breakers[i] = w;
			w += l;
		}
	}
	return 0;
nomem:
	owned_free(o);
	return diag_fail(d, LLM_E_NOMEM, "sampler: out of memory copying parameters");
}

/* is_breaker[t] = token t's piece contains a breaker string */
static void compute_breakers(struct llm_sampler *s)
{
	memset(s->is_breaker, 0, (size_t)s->n_vocab);
	if (!s->pieces || !s->piece_lens)
		return;
	for (int32_t t = 0; t < s->n_vocab; t++) {
		const char *pc = s->pieces[t];
		size_t pl = s->piece_lens[t];
		if (!pc)
			continue;
		for (size_t b = 0; b < s->p.n_dry_sequence_breakers; b++) {
			const char *br = s->breakers[b];
			size_t bl = strlen(br);
			if (bl == 0 || bl > pl)
				continue;
			for (size_t i = 0; i + bl <= pl; i++) {
				if (memcmp(pc + i, br, bl) == 0) {
					s->is_breaker[t] = 1;
					break;
				}
			}
			if (s->is_breaker[t])
				break;
		}
	}
}

static int32_t history_needed(const struct llm_sampler_params *p)
{
	int32_t a = window_of(p->penalty_last_n, p->n_history_max);
	int32_t b = window_of(p->dry_penalty_last_n, p->n_history_max);
	int32_t n = a > b ? a : b;
	return n < 1 ? 1 : n;
}

/* Resize the history ring to cap entries, keeping the newest ones. */
static int history_resize(struct llm_sampler *s, int32_t cap, struct diag *d)
{
	int32_t *h = malloc((size_t)cap * sizeof *h);
	float *m = malloc((size_t)cap * sizeof *m);
	int32_t *z = malloc((size_t)cap * sizeof *z);
	int32_t *t = malloc((size_t)cap * sizeof *t);
	if (!h || !m || !z || !t) {
		free(h);
		free(m);
		free(z);
		free(t);
		return diag_fail(d, LLM_E_NOMEM, "sampler: out of memory for %d history tokens",
				 (int)cap);
	}
	int32_t keep = s->hist_len < cap ? s->hist_len : cap;
	for (int32_t i = 0; i < keep; i++) {
		/* i-th oldest of the kept ones */
		int32_t src = s->hist_head - keep + i;
		while (src < 0)
			src += s->hist_cap;
		h[i] = s->hist[src % s->hist_cap];
		m[i] = s->mu_hist[src % s->hist_cap];
	}
	free(s->hist);
	free(s->mu_hist);
	free(s->zbuf);
	free(s->touched);
	s->hist = h;
	s->mu_hist = m;
	s->zbuf = z;
	s->touched = t;
	s->hist_cap = cap;
	s->hist_len = keep;
	s->hist_head = keep % cap;
	return 0;
}

/* Token accepted `back` steps ago (0 = the newest); back < hist_len. */
static int32_t hist_at(const struct llm_sampler *s, int32_t back)
{
	int32_t i = s->hist_head - 1 - back;
	if (i < 0)
		i += s->hist_cap;
	return s->hist[i];
}

static void install_params(struct llm_sampler *s, const struct llm_sampler_params *p,
			   struct owned *o)
{
	owned_free(&(struct owned){ s->bias, s->banned, s->breakers });
	s->p = *p;
	s->bias = o->bias;
	s->banned = o->banned;
	s->breakers = o->breakers;
	s->p.logit_bias = s->bias;
	s->p.banned_tokens = s->banned;
	s->p.dry_sequence_breakers = (const char *const *)s->breakers;
	compute_breakers(s);
}

void llm_sampler_free(struct llm_sampler *s)
{
	if (!s)
		return;
	free(s->bias);
	free(s->banned);
	free(s->breakers);
	free(s->is_breaker);
	free(s->hist);
	free(s->mu_hist);
	free(s->cand);
	free(s->cand2);
	free(s->count);
	free(s->zbuf);
	free(s->dry_max);
	free(s->touched);
	free(s->key);
	free(s);
}

int llm_sampler_new(const struct llm_sampler_params *p, int32_t n_vocab,
		    struct llm_sampler **out, struct diag *d)
{
	int rc = validate(p, n_vocab, d);
	if (rc)
		return rc;
	if (!out)
		return diag_fail(d, LLM_E_INVALID, "sampler: no output pointer");
	struct llm_sampler *s = calloc(1, sizeof *s);
	if (!s)
		return diag_fail(d, LLM_E_NOMEM, "sampler: out of memory");
	size_t nv = (size_t)n_vocab;
	s->n_vocab = n_vocab;
	s->cand = malloc(nv * sizeof *s->cand);
	s->cand2 = malloc(nv * sizeof *s->cand2);
	s->count = calloc(nv, sizeof *s->count);
	s->dry_max = calloc(nv, sizeof *s->dry_max);
	s->key = malloc(nv * sizeof *s->key);
	s->is_breaker = calloc(nv, 1);
	/* a one-entry ring so that history_resize has something to copy from */
	s->hist_cap = 1;
	s->hist = calloc(1, sizeof *s->hist);
	s->mu_hist = calloc(1, sizeof *s->mu_hist);
	if (!s->cand || !s->cand2 || !s->count || !s->dry_max || !s->key ||
	    !s->is_breaker || !s->hist || !s->mu_hist) {
		llm_sampler_free(s);
		return diag_fail(d, LLM_E_NOMEM, "sampler: out of memory for a vocab of %d",
				 (int)n_vocab);
	}
	rc = history_resize(s, history_needed(p), d);
	if (rc) {
		llm_sampler_free(s);
		return rc;
	}
	struct owned o;
	rc = owned_copy(p, &o, d);
	if (rc) {
		llm_sampler_free(s);
		return rc;
	}
	install_params(s, p, &o);
	llm_sampler_reset(s);
	*out = s;
	return 0;
}

int llm_sampler_set_params(struct llm_sampler *s,
			   const struct llm_sampler_params *p, struct diag *d)
{
	if (!s)
		return diag_fail(d, LLM_E_INVALID, "sampler: NULL");
	int rc = validate(p, s->n_vocab, d);
	if (rc)
		return rc;
	struct owned o;
	rc = owned_copy(p, &o, d);
	if (rc)
		return rc;
	int32_t need = history_needed(p);
	if (need > s->hist_cap) {
		rc = history_resize(s, need, d);
		if (rc) {
			owned_free(&o);
			return rc;
		}
	}
	bool reseed = p->seed != s->p.seed;
	bool miro_changed = p->mirostat != s->p.mirostat ||
			    p->mirostat_tau != s->p.mirostat_tau;
	install_params(s, p, &o);
	if (reseed)
		rng_seed(s);
	if (miro_changed)
		s->mu = 2.0f * s->p.mirostat_tau;
	return 0;
}

void llm_sampler_set_pieces(struct llm_sampler *s, const char *const *pieces,
			    const size_t *piece_lens)
{
	if (!s)
		return;
	s->pieces = pieces;
	s->piece_lens = piece_lens;
	compute_breakers(s);
}

void llm_sampler_reset(struct llm_sampler *s)
{
	if (!s)
		return;
	s->hist_len = 0;
	s->hist_head = 0;
	s->n_past = 0;
	s->n_bans = 0;
	s->mu = 2.0f * s->p.mirostat_tau;
	s->have_dist = false;
	s->n_cand = 0;
	rng_seed(s);
}

int64_t llm_sampler_n_past(const struct llm_sampler *s)
{
	return s ? s->n_past : 0;
}

float llm_sampler_token_prob(const struct llm_sampler *s, int32_t token)
{
	if (!s)
		return 0.0f;
	for (int32_t i = 0; i < s->n_cand; i++)
		if (s->cand[i].id == token)
			return s->cand[i].p;
	return 0.0f;
}

int llm_sampler_accept(struct llm_sampler *s, int32_t token)
{
	if (!s || token < 0 || token >= s->n_vocab)
		return LLM_E_INVALID;
	float mu_before = s->mu;
	if (s->p.mirostat == 2 && s->have_dist) {
		float pt = llm_sampler_token_prob(s, token);
		/* a token outside the truncated set has infinite surprise; keep
		 * the update finite (it can only come from a caller override) */
		float surprise = pt > 0.0f ? -log2f(pt) : 64.0f;
		s->mu -= s->p.mirostat_eta * (surprise - s->p.mirostat_tau);
	}
	s->have_dist = false;
	s->hist[s->hist_head] = token;
	s->mu_hist[s->hist_head] = mu_before;
	s->hist_head = (s->hist_head + 1) % s->hist_cap;
	if (s->hist_len < s->hist_cap)
		s->hist_len++;
	s->n_past++;
	return 0;
}

void llm_sampler_rollback(struct llm_sampler *s, int32_t n)
{
	if (!s || n <= 0)
		return;
	if (n > s->n_past)
		n = (int32_t)s->n_past;
	int32_t k = n < s->hist_len ? n : s->hist_len;
	for (int32_t i = 0; i < k; i++) {
		s->hist_head = (s->hist_head - 1 + s->hist_cap) % s->hist_cap;
		s->mu = s->mu_hist[s->hist_head];
	}
	s->hist_len -= k;
	s->n_past -= n;
	s->have_dist = false;
	int32_t w = 0;
	for (int32_t i = 0; i < s->n_bans; i++)
		if (s->bans[i].pos <= s->n_past)
			s->bans[w++] = s->bans[i];
	s->n_bans = w;
}

int llm_sampler_ban_here(struct llm_sampler *s, int32_t token, struct diag *d)
{
	if (!s || token < 0 || token >= s->n_vocab)
		return diag_fail(d, LLM_E_INVALID, "sampler: ban of token %d outside the vocab",
				 (int)token);
	for (int32_t i = 0; i < s->n_bans; i++)
		if (s->bans[i].pos == s->n_past && s->bans[i].token == token)
			return 0;
	if (s->n_bans == MAX_POS_BANS)
		return diag_fail(d, LLM_E_LIMIT, "sampler: more than %d position bans",
				 MAX_POS_BANS);
	s->bans[s->n_bans].pos = s->n_past;
	s->bans[s->n_bans].token = token;
	s->n_bans++;
	return 0;
}

/* ---- candidate helpers --------------------------------------------------------- */

/* logit descending, id ascending: a total order on candidates */
static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (x->logit > y->logit)
		return -1;
	if (x->logit < y->logit)
		return 1;
	return (x->id > y->id) - (x->id < y->id);
}

static void cand_sort(struct llm_sampler *s)
{
	if (!s->sorted) {
		qsort(s->cand, (size_t)s->n_cand, sizeof *s->cand, cand_cmp);
		s->sorted = true;
	}
}

/* p_i = exp(l_i - max) / sum_j exp(l_j - max), over the current candidates */
static void softmax(struct llm_sampler *s)
{
	if (s->p_valid)
		return;
	float mx = -INFINITY;
	for (int32_t i = 0; i < s->n_cand; i++)
		if (s->cand[i].logit > mx)
			mx = s->cand[i].logit;
	double sum = 0.0;
	for (int32_t i = 0; i < s->n_cand; i++) {
		float e = expf(s->cand[i].logit - mx);
		s->cand[i].p = e;
		sum += e;
	}
	for (int32_t i = 0; i < s->n_cand; i++)
		s->cand[i].p = (float)(s->cand[i].p / sum);
	s->p_valid = true;
}

/* Keep the first n candidates (the caller ordered them). */
static void cand_truncate(struct llm_sampler *s, int32_t n)
{
	if (n < 1)
		n = 1;
	if (n < s->n_cand) {
		s->n_cand = n;
		s->p_valid = false;
	}
}

/* Keep candidates with keep[i] (written into key[] as 0/1), in order. */
static void cand_filter_by_key(struct llm_sampler *s)
{
	int32_t w = 0;
	for (int32_t i = 0; i < s->n_cand; i++)
		if (s->key[i] != 0.0f)
			s->cand[w++] = s->cand[i];
	if (w != s->n_cand)
		s->p_valid = false;
	s->n_cand = w;
}

/* ---- stages ------------------------------------------------------------------------- */

/* Repetition, frequency and presence penalties over the last W accepted
 * tokens (count c_t of token t in the window, applied when c_t > 0):
 *   l_t = l_t > 0 ? l_t / repeat : l_t * repeat     (CTRL paper, sign-fixed)
 *   l_t -= c_t * frequency + presence                (OpenAI's definition) */
static void stage_penalties(struct llm_sampler *s)
{
	const struct llm_sampler_params *p = &s->p;
	int32_t w = window_of(p->penalty_last_n, p->n_history_max);
	if (w > s->hist_len)
		w = s->hist_len;
	if (w == 0 || (p->repeat_penalty == 1.0f && p->frequency_penalty == 0.0f &&
		       p->presence_penalty == 0.0f))
		return;
	for (int32_t i = 0; i < w; i++)
		s->count[hist_at(s, i)]++;
	for (int32_t i = 0; i < s->n_cand; i++) {
		struct cand *c = &s->cand[i];
		int32_t n = s->count[c->id];
		if (n == 0)
			continue;
		if (c->logit <= 0.0f)
			c->logit *= p->repeat_penalty;
		else
			c->logit /= p->repeat_penalty;
		c->logit -= (float)n * p->frequency_penalty + p->presence_penalty;
	}
	for (int32_t i = 0; i < w; i++)
		s->count[hist_at(s, i)] = 0;
	s->sorted = false;
	s->p_valid = false;
}

/* DRY (Weidmann's "Don't Repeat Yourself", as in llama.cpp/koboldcpp).
 * Over the last N tokens x[0..N) (x[N-1] newest): let L_j be the length of
 * the longest common suffix of x[0..j] and x[0..N-1] (j < N-1), capped at
 * the number of tokens after the newest sequence breaker.  Emitting x[j+1]
 * next would make that repeat L_j + 1 long, so for every j with
 * L_j >= allowed, token x[j+1] (unless it is itself a breaker) gets
 *   l -= multiplier * base^(max_j L_j - allowed).
 * L_j for all j comes from the Z-function of the reversed window (linear). */
static void stage_dry(struct llm_sampler *s)
{
	const struct llm_sampler_params *p = &s->p;
	if (p->dry_multiplier == 0.0f || p->dry_base < 1.0f || p->dry_penalty_last_n == 0)
		return;
	int32_t n = window_of(p->dry_penalty_last_n, p->n_history_max);
	if (n > s->hist_len)
		n = s->hist_len;
	if (n <= p->dry_allowed_length || n < 2)
		return;

	/* repeats may not reach back over the newest breaker */
	int32_t limit = n;
	for (int32_t i = 0; i < n; i++) {
		if (s->is_breaker[hist_at(s, i)]) {
			limit = i;
			break;
		}
	}
	if (limit < p->dry_allowed_length)
		return;

	/* Z-function of r[k] = hist_at(k), k = 0..n-1:
	 * z[k] = longest common prefix of r and r[k..]. */
	int32_t *z = s->zbuf;
	int32_t lo = 0, hi = 0; /* [lo, hi) is the rightmost match window */
	z[0] = n;
	for (int32_t k = 1; k < n; k++) {
		int32_t v = 0;
		if (k < hi) {
			v = z[k - lo];
			if (v > hi - k)
				v = hi - k;
		}
		while (k + v < n && hist_at(s, v) == hist_at(s, k + v))
			v++;
		z[k] = v;
		if (k + v > hi) {
			lo = k;
			hi = k + v;
		}
	}

	/* z[k] is the repeat ending k tokens back; the token after it
	 * (k - 1 back) would extend it. */
	int32_t n_touched = 0;
	for (int32_t k = 1; k < n; k++) {
		int32_t len = z[k] < limit ? z[k] : limit;
		if (len < p->dry_allowed_length)
			continue;
		int32_t t = hist_at(s, k - 1);
		/* stored +1 so that 0 means "no repeat" even for len 0 */
		if (s->dry_max[t] == 0)
			s->touched[n_touched++] = t;
		if (s->dry_max[t] < len + 1)
			s->dry_max[t] = len + 1;
	}
	if (n_touched == 0)
		return;

	/* keep base^e finite: e <= ln(FLT_MAX) / ln(base) */
	int32_t max_exp = 0;
	if (p->dry_base > 1.000001f)
		max_exp = (int32_t)(88.7228391f / logf(p->dry_base));
	for (int32_t i = 0; i < s->n_cand; i++) {
		struct cand *c = &s->cand[i];
		int32_t m = s->dry_max[c->id];
		if (m == 0 || s->is_breaker[c->id])
			continue;
		int32_t e = m - 1 - p->dry_allowed_length;
		if (max_exp > 0 && e > max_exp)
			e = max_exp;
		c->logit -= p->dry_multiplier * powf(p->dry_base, (float)e);
	}
	for (int32_t i = 0; i < n_touched; i++)
		s->dry_max[s->touched[i]] = 0;
	s->sorted = false;
	s->p_valid = false;
}

/* top-n-sigma (Tang et al. 2024): keep l_i >= max - n * sigma, sigma the
 * population standard deviation of the candidates' logits. */
static void stage_top_n_sigma(struct llm_sampler *s)
{
	float nsig = s->p.top_n_sigma;
	if (nsig <= 0.0f || s->n_cand <= 1)
		return;
	double mx = -INFINITY, sum = 0.0;
	for (int32_t i = 0; i < s->n_cand; i++) {
		if (s->cand[i].logit > mx)
			mx = s->cand[i].logit;
		sum += s->cand[i].logit;
	}
	double mean = sum / s->n_cand, acc = 0.0;
	for (int32_t i = 0; i < s->n_cand; i++) {
		double dv = s->cand[i].logit - mean;
		acc += dv * dv;
	}
	double sd = sqrt(acc / s->n_cand);
	float thr = (float)(mx - nsig * sd);
	for (int32_t i = 0; i < s->n_cand; i++)
		s->key[i] = s->cand[i].logit >= thr ? 1.0f : 0.0f;
	cand_filter_by_key(s);
}

/* heap of the k best candidates: the worst (by cand_cmp) at the root */
static void heap_down(struct cand *h, int32_t n, int32_t i)
{
	for (;;) {
		int32_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && cand_cmp(&h[l], &h[m]) > 0)
			m = l;
		if (r < n && cand_cmp(&h[r], &h[m]) > 0)
			m = r;
		if (m == i)
			return;
		struct cand t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

/* The best m candidates (by cand_cmp), sorted, into cand2[0..m); cand is
 * left as it was.  O(n log m). */
static void select_top(struct llm_sampler *s, int32_t m)
{
	struct cand *h = s->cand2;
	for (int32_t i = 0; i < m; i++)
		h[i] = s->cand[i];
	for (int32_t i = m / 2 - 1; i >= 0; i--)
		heap_down(h, m, i);
	for (int32_t i = m; i < s->n_cand; i++) {
		if (cand_cmp(&s->cand[i], &h[0]) < 0) {
			h[0] = s->cand[i];
			heap_down(h, m, 0);
		}
	}
	qsort(h, (size_t)m, sizeof *h, cand_cmp);
}

/* top-k: the k highest logits (ties at the boundary: lower ids). */
static void stage_top_k(struct llm_sampler *s)
{
	int32_t k = s->p.top_k;
	if (k <= 0 || k >= s->n_cand)
		return;
	if (!s->sorted) {
		select_top(s, k);
		memcpy(s->cand, s->cand2, (size_t)k * sizeof *s->cand);
		s->n_cand = k;
		s->sorted = true;
		s->p_valid = false;
	} else {
		cand_truncate(s, k);
	}
}

/* top-p (nucleus, Holtzman et al.): the shortest prefix of the sorted list
 * whose mass reaches p, and at least min_keep.  On a long unsorted list the
 * prefix is found by selecting the best 256, 1024, ... candidates instead
 * of sorting all of them (a full sort of 150k entries costs ~40 ms); the
 * probabilities are those of the whole list and the prefix is summed in
 * the same order, so the result is the same as after a full sort. */
static void stage_top_p(struct llm_sampler *s)
{
	float tp = s->p.top_p;
	if (tp >= 1.0f)
		return;
	softmax(s);
	if (!s->sorted) {
		for (int32_t m = 256; m < s->n_cand / 2; m *= 4) {
			select_top(s, m);
			double cum = 0.0;
			for (int32_t i = 0; i < m; i++) {
				cum += s->cand2[i].p;
				if (cum >= tp && i + 1 >= s->p.min_keep) {
					memcpy(s->cand, s->cand2, (size_t)(i + 1) * sizeof *s->cand);
					s->n_cand = i + 1;
					s->sorted = true;
					s->p_valid = false;
					return;
				}
			}
		}
		cand_sort(s);
	}
	double cum = 0.0;
	for (int32_t i = 0; i < s->n_cand; i++) {
		cum += s->cand[i].p;
		if (cum >= tp && i + 1 >= s->p.min_keep) {
			cand_truncate(s, i + 1);
			return;
		}
	}
}

/* min-p: keep p_i >= min_p * p_max, i.e. l_i >= l_max + ln(min_p); at least
 * min_keep (the highest). */
static void stage_min_p(struct llm_sampler *s)
{
	float mp = s->p.min_p;
	if (mp <= 0.0f)
		return;
	float mx = -INFINITY;
	for (int32_t i = 0; i < s->n_cand; i++)
		if (s->cand[i].logit > mx)
			mx = s->cand[i].logit;
	float thr = mx + logf(mp);
	int32_t kept = 0;
	for (int32_t i = 0; i < s->n_cand; i++)
		kept += s->cand[i].logit >= thr;
	if (kept >= s->p.min_keep) {
		for (int32_t i = 0; i < s->n_cand; i++)
			s->key[i] = s->cand[i].logit >= thr ? 1.0f : 0.0f;
		cand_filter_by_key(s);
	} else {
		cand_sort(s);
		cand_truncate(s, s->p.min_keep);
	}
}

/* For stage_typical's sort, a struct cand carries the shifted score in
 * .logit and the candidate's index in .id: score ascending, then index. */
static int typical_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (x->logit < y->logit)
		return -1;
	if (x->logit > y->logit)
		return 1;
	return (x->id > y->id) - (x->id < y->id);
}

/* Locally typical sampling (Meister et al. 2022): with entropy
 * H = -sum p_i ln p_i, order tokens by |-ln p_i - H| ascending and keep the
 * shortest prefix whose mass exceeds typical_p (and at least min_keep).
 * llama.cpp's version keeps everything when min_keep is 0 (size_t
 * underflow); here min_keep 0 means no minimum. */
static void stage_typical(struct llm_sampler *s)
{
	float tp = s->p.typical_p;
	if (tp >= 1.0f || s->n_cand <= 1)
		return;
	cand_sort(s);
	softmax(s);
	double h = 0.0;
	for (int32_t i = 0; i < s->n_cand; i++)
		if (s->cand[i].p > 0.0f)
			h -= s->cand[i].p * log(s->cand[i].p);
	struct cand *t = s->cand2;
	for (int32_t i = 0; i < s->n_cand; i++) {
		float pi = s->cand[i].p;
		t[i].id = i;
		t[i].logit = pi > 0.0f ? (float)fabs(-log(pi) - h) : INFINITY;
		t[i].p = 0.0f;
	}
	qsort(t, (size_t)s->n_cand, sizeof *t, typical_cmp);
	double cum = 0.0;
	int32_t last = s->n_cand;
	for (int32_t i = 0; i < s->n_cand; i++) {
		cum += s->cand[t[i].id].p;
		if (cum > tp && i + 1 >= s->p.min_keep) {
			last = i + 1;
			break;
		}
	}
	/* t[i] is read (its index) before it is overwritten */
	for (int32_t i = 0; i < last; i++)
		t[i] = s->cand[t[i].id];
	s->cand2 = s->cand;
	s->cand = t;
	s->n_cand = last;
	s->sorted = false;
	s->p_valid = false;
}

/* XTC ("exclude top choices"): with probability xtc_probability, when at
 * least two tokens have p >= threshold, remove all of them but the least
 * probable one (keeping at least min_keep tokens overall). */
static void stage_xtc(struct llm_sampler *s)
{
	const struct llm_sampler_params *p = &s->p;
	if (p->xtc_probability <= 0.0f || p->xtc_threshold > 0.5f || s->n_cand < 2)
		return;
	if (rng_uniform(s->rng) > p->xtc_probability)
		return;
	cand_sort(s);
	softmax(s);
	int32_t last = 0; /* index of the least probable token above threshold */
	for (int32_t i = 0; i < s->n_cand && s->cand[i].p >= p->xtc_threshold; i++)
		last = i;
	if (last > 0 && s->n_cand - last >= p->min_keep) {
		memmove(s->cand, s->cand + last, (size_t)(s->n_cand - last) * sizeof *s->cand);
		s->n_cand -= last;
		s->p_valid = false;
	}
}

/* temperature: l_i / T; T <= 0 keeps only the argmax (ties: lowest id). */
static void stage_temperature(struct llm_sampler *s)
{
	float t = s->p.temperature;
	if (t <= 0.0f) {
		int32_t best = 0;
		for (int32_t i = 1; i < s->n_cand; i++)
			if (cand_cmp(&s->cand[i], &s->cand[best]) < 0)
				best = i;
		s->cand[0] = s->cand[best];
		s->n_cand = 1;
		s->sorted = true;
		s->p_valid = false;
		return;
	}
	if (t == 1.0f)
		return;
	for (int32_t i = 0; i < s->n_cand; i++)
		s->cand[i].logit /= t;
	s->p_valid = false;
}

/* mirostat v2 truncation (Basu et al. 2021): keep the sorted prefix with
 * surprise -log2 p_i <= mu (at least one token). */
static void stage_mirostat2(struct llm_sampler *s)
{
	cand_sort(s);
	softmax(s);
	int32_t n = 0;
	while (n < s->n_cand && -log2f(s->cand[n].p) <= s->mu)
		n++;
	cand_truncate(s, n);
	softmax(s);
}

static void run_stage(struct llm_sampler *s, enum llm_sampler_stage st)
{
	switch (st) {
	case LLM_SAMPLER_STAGE_PENALTIES: stage_penalties(s); break;
	case LLM_SAMPLER_STAGE_DRY: stage_dry(s); break;
	case LLM_SAMPLER_STAGE_TOP_N_SIGMA: stage_top_n_sigma(s); break;
	case LLM_SAMPLER_STAGE_TOP_K: stage_top_k(s); break;
	case LLM_SAMPLER_STAGE_TYPICAL: stage_typical(s); break;
	case LLM_SAMPLER_STAGE_TOP_P: stage_top_p(s); break;
	case LLM_SAMPLER_STAGE_MIN_P: stage_min_p(s); break;
	case LLM_SAMPLER_STAGE_XTC: stage_xtc(s); break;
	case LLM_SAMPLER_STAGE_TEMPERATURE: stage_temperature(s); break;
	case LLM_SAMPLER_STAGE_COUNT: break;
	}
}

/* Fill the candidates from logits, apply bias and bans, run the stages and
 * leave the final distribution in cand[].p. */
static int run_pipeline(struct llm_sampler *s, const float *logits, struct diag *d)
{
	const struct llm_sampler_params *p = &s->p;
	if (!logits)
		return diag_fail(d, LLM_E_INVALID, "sampler: no logits");
	/* bias and bans go through key[] (indexed by id) so that the list
	 * is filled in one pass */
	float *add = s->key;
	memset(add, 0, (size_t)s->n_vocab * sizeof *add);
	for (size_t i = 0; i < p->n_logit_bias; i++)
		add[p->logit_bias[i].token] += p->logit_bias[i].bias;
	for (size_t i = 0; i < p->n_banned_tokens; i++)
		add[p->banned_tokens[i]] = -INFINITY;
	for (int32_t i = 0; i < s->n_bans; i++)
		if (s->bans[i].pos == s->n_past)
			add[s->bans[i].token] = -INFINITY;
	int32_t n = 0;
	for (int32_t t = 0; t < s->n_vocab; t++) {
		float l = logits[t] + add[t];
		if (isnan(l) || l == -INFINITY)
			continue;
		if (l == INFINITY)
			l = FLT_MAX; /* keep arithmetic finite; still the maximum */
		s->cand[n].id = t;
		s->cand[n].logit = l;
		s->cand[n].p = 0.0f;
		n++;
	}
	s->n_cand = n;
	s->sorted = false;
	s->p_valid = false;
	s->have_dist = false;
	if (n == 0)
		return diag_fail(d, LLM_E_INVALID, "sampler: every token is banned or -inf");

	bool temp_listed = false;
	for (int32_t i = 0; i < p->n_order; i++) {
		enum llm_sampler_stage st = p->order[i];
		if (st == LLM_SAMPLER_STAGE_TEMPERATURE)
			temp_listed = true;
		if (p->mirostat == 2 && st != LLM_SAMPLER_STAGE_PENALTIES &&
		    st != LLM_SAMPLER_STAGE_DRY)
			continue;
		run_stage(s, st);
	}
	if (!temp_listed || p->mirostat == 2)
		stage_temperature(s);
	if (p->mirostat == 2)
		stage_mirostat2(s);
	softmax(s);
	s->have_dist = true;
	return 0;
}

static int32_t draw_from_cands(struct llm_sampler *s)
{
	double u = rng_uniform(s->rng), cum = 0.0;
	for (int32_t i = 0; i < s->n_cand; i++) {
		cum += s->cand[i].p;
		if (u < cum)
			return s->cand[i].id;
	}
	/* rounding left u above the total: the last token with mass */
	for (int32_t i = s->n_cand - 1; i > 0; i--)
		if (s->cand[i].p > 0.0f)
			return s->cand[i].id;
	return s->cand[0].id;
}

int32_t llm_sampler_sample(struct llm_sampler *s, const float *logits,
			   struct diag *d)
{
	if (!s)
		return diag_fail(d, LLM_E_INVALID, "sampler: NULL");
	int rc = run_pipeline(s, logits, d);
	if (rc)
		return rc;
	if (s->n_cand == 1)
		return s->cand[0].id; /* no draw: greedy consumes no randomness */
	return draw_from_cands(s);
}

int llm_sampler_probs(struct llm_sampler *s, const float *logits,
		      float *probs, struct diag *d)
{
	if (!s || !probs)
		return diag_fail(d, LLM_E_INVALID, "sampler: NULL");
	int rc = run_pipeline(s, logits, d);
	if (rc)
		return rc;
	memset(probs, 0, (size_t)s->n_vocab * sizeof *probs);
	for (int32_t i = 0; i < s->n_cand; i++)
		probs[s->cand[i].id] = s->cand[i].p;
	return 0;
}

int32_t llm_sampler_draw(struct llm_sampler *s, const float *w, int32_t n)
{
	if (!s || !w || n <= 0)
		return LLM_E_INVALID;
	double total = 0.0;
	for (int32_t i = 0; i < n; i++)
		if (w[i] > 0.0f)
			total += w[i];
	if (!(total > 0.0) || !isfinite(total))
		return LLM_E_INVALID;
	double u = rng_uniform(s->rng) * total, cum = 0.0;
	int32_t last = -1;
	for (int32_t i = 0; i < n; i++) {
		if (!(w[i] > 0.0f))
			continue;
		cum += w[i];
		last = i;
		if (u < cum)
			return i;
	}
	return last;
}

double llm_sampler_uniform(struct llm_sampler *s)
{
	return s ? rng_uniform(s->rng) : 0.0;
}
