/* inference/convert.c — `tern convert`: EXL3 quantization of a bf16/f16/
 * f32 Hugging Face model directory (docs/exl3-format.md §4), GPTQ-style
 * layer by layer.
 *
 * Pipeline (llm_convert):
 *   1. The source model is opened on the chosen backend; the calibration
 *      text is tokenized into cal_rows rows of cal_cols tokens (BOS, then
 *      consecutive text; about one row in seven is random token ids, as
 *      ExLlamaV3 mixes them in; without a text, every row is).
 *   2. Bits per linear (§4.12): every quantized linear starts at
 *      floor(bits); groups (q/k/v, o, gate/up, down of a layer; in a MoE
 *      layer every routed expert and the shared one form one) are raised
 *      by one bit, the layers nearest either end first, while the budget
 *      bits x weights allows; lm_head gets head_bits outside the budget.
 *   3. For each layer l: every calibration row runs through the model
 *      with the capture hook on layer l (inference/model_impl.h), which
 *      accumulates H = mean x'x of each input (q/k/v share one, gate/up
 *      one, o and down their own; in a MoE layer every expert's gate/up
 *      take the MLP input's, and each expert's down the H of its own
 *      intermediate silu(x Wg') * (x Wu') over every row, all experts
 *      active as in ExLlamaV3's capture, and the shared expert's likewise)
 *      — through the backend's matmul; the forward stops after layer l.  Layers before l are already the
 *      quantized ones, so each layer is calibrated on the states the
 *      converted model will really produce.  Each linear is quantized
 *      (gpu_exl3_quantize, seed = the job's seed + its index), the layer's
 *      tensors are written to WORK/layer-NNN.safetensors (atomic rename),
 *      loaded back into the model through the EXL3 loader
 *      (llm_exl3_load: the path every converted file takes), and
 *      WORK/job.json records the next layer.  Then lm_head on the final
 *      norm's rows (WORK/head.safetensors).
 *   4. Output: OUT/model.safetensors holds every source tensor that is not
 *      a quantized linear's weight, unchanged, plus the layer and head
 *      files' tensors; config.json gets quantization_config (quant_method
 *      exl3, bits, head_bits, calibration, codebook) and, with a quantized
 *      head, tie_word_embeddings false; quantization_config.json is written;
 *      every other non-weight file is copied.  The work directory is
 *      removed after success.
 *
 * Resuming: WORK/job.json holds the job's arguments and the next layer.
 * With resume set, the arguments must match (bits, head bits, codebook,
 * calibration, seed), finished layers are loaded from their files and the
 * job continues — the result is byte-identical to an uninterrupted run
 * (the states layer l sees come from the same files either way).  Without
 * resume, a work directory holding a job is refused (nothing is deleted).
 *
 * Where it runs: the calibration passes on the chosen backend; the
 * trellis search on the CUDA device when that backend is CUDA (bit-equal
 * to the host's, ~30x the 16 host cores of an H200 machine), else on the
 * host's threads; the rest of gpu_exl3_quantize (regularization, LDL,
 * LDLQ feedback) on the host.
 *
 * Supported: the decoder models tern runs (Llama, Mistral, Qwen2/2.5,
 * Qwen3, Mixtral, Qwen2-MoE, Qwen3-MoE) in the plain "model.layers" layout;
 * MoE routers and shared-expert gates stay as they are (§1.9).
 * Dimensions not multiples of 128 are padded with zeros (§1.5).
 */
#include "config.h"

#include "inference/exl3_impl.h"
#include "inference/model_impl.h"
#include "inference/safetensors_impl.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/file.h"

/* Hessian slots of a layer: its inputs at the capture points, and in a
 * MoE layer each routed expert's down_proj input (slot CV_H_EXPERT + e)
 * and the shared expert's (CV_H_EXPERT + n_expert).  The head's one
 * Hessian is slot CV_H_ATTN_IN of the pass on layer n_layer. */
enum { CV_H_ATTN_IN, CV_H_ATTN_O, CV_H_MLP_IN, CV_H_MLP_DOWN, CV_H_EXPERT };

/* Which weight of struct llm_layer an item replaces. */
enum cv_kind {
	CV_KQ, CV_KK, CV_KV, CV_KO, CV_KGATE, CV_KUP, CV_KDOWN,
	CV_KEGATE, CV_KEUP, CV_KEDOWN, CV_KSGATE, CV_KSUP, CV_KSDOWN,
};

/* One linear to quantize. */
struct cv_item {
	char key[192];   /* HF key, without ".weight" */
	size_t in, out;  /* logical features */
	int hess;        /* Hessian slot */
	int group;       /* allocation group in its layer (§4.12): 0 q/k/v,
			  * 1 o, 2 gate/up (in a MoE layer every expert and
			  * the shared one), 3 down */
	enum cv_kind kind;
	int expert;      /* routed expert, or -1 */
};

static size_t round128(size_t v)
{
	return (v + 127) / 128 * 128;
}

struct llm_convert_params llm_convert_default_params(void)
{
	struct llm_convert_params p;

	memset(&p, 0, sizeof p);
	p.bits = 4.0;
	p.head_bits = 6;
	p.codebook = "mul1";
	p.cal_rows = 64;
	p.cal_cols = 512;
	p.seed = 1;
	p.backend = LLM_BACKEND_CPU;
	return p;
}

/* ---- a small safetensors writer -------------------------------------- */

struct st_entry {
	char *name;
	enum llm_dtype dtype;
	int n_dims;
	int64_t shape[LLM_MAX_DIMS];
	const void *data;  /* borrowed */
	void *own;         /* or owned (freed with the writer) */
	uint64_t n_bytes;
};

struct st_writer {
	struct st_entry *e;
	size_t n, cap;
};

static void stw_free(struct st_writer *w)
{
	size_t i;

	for (i = 0; i < w->n; i++) {
		free(w->e[i].name);
		free(w->e[i].own);
	}
	free(w->e);
	memset(w, 0, sizeof *w);
}

/* Add a tensor; OWN non-NULL makes the writer free it.  LLM_E_NOMEM. */
static int stw_add(struct st_writer *w, const char *name, enum llm_dtype dt,
		   int n_dims, const int64_t *shape, const void *data, void *own,
		   struct diag *d)
{
	struct st_entry *e;
	uint64_t n = 1;
	int i;

	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 64;
		struct st_entry *p = realloc(w->e, cap * sizeof *p);

		if (!p) {
			free(own);
			return diag_fail(d, LLM_E_NOMEM, "out of memory");
		}
		w->e = p;
		w->cap = cap;
	}
	e = &w->e[w->n];
	memset(e, 0, sizeof *e);
	e->name = strdup(name);
	if (!e->name) {
		free(own);
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	}
	e->dtype = dt;
	e->n_dims = n_dims;
	for (i = 0; i < n_dims; i++) {
		e->shape[i] = shape[i];
		n *= (uint64_t)shape[i];
	}
	e->n_bytes = n * llm_dtype_size(dt);
	e->data = data ? data : own;
	e->own = own;
	w->n++;
	return 0;
}

static int stw_cmp(const void *a, const void *b)
{
	return strcmp(((const struct st_entry *)a)->name,
		      ((const struct st_entry *)b)->name);
}

/* Write every tensor to PATH (temporary file, fsync, rename): tensors in
 * name order, the header padded with spaces to a multiple of 8 bytes. */
static int stw_save(struct st_writer *w, const char *path, struct diag *d)
{
	json_t *hdr = json_object(), *meta = json_object();
	char *js = NULL, *tmp = NULL;
	uint64_t off = 0, hlen, pad;
	FILE *f = NULL;
	size_t i;
	int rc = 0, j;

	if (!hdr || !meta) {
		json_decref(hdr);
		json_decref(meta);
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	}
	qsort(w->e, w->n, sizeof *w->e, stw_cmp);
	for (i = 1; i < w->n; i++)
		if (!strcmp(w->e[i - 1].name, w->e[i].name)) {
			json_decref(hdr);
			json_decref(meta);
			return diag_fail(d, LLM_E_INVALID, "%s: tensor '%s' twice", path,
					 w->e[i].name);
		}
	/* every set checked: a tensor missing from the header while its bytes
	 * are written would make the file unreadable */
	rc = json_object_set_new(meta, "format", json_string("pt")) |
	     json_object_set_new(hdr, "__metadata__", meta);
	for (i = 0; rc == 0 && i < w->n; i++) {
		const struct st_entry *e = &w->e[i];
		json_t *t = json_object(), *sh = json_array(), *of = json_array();

		if (!t || !sh || !of) {
			json_decref(t);
			json_decref(sh);
			json_decref(of);
			rc = -1;
			break;
		}
		for (j = 0; j < e->n_dims; j++)
			rc |= json_array_append_new(sh, json_integer(e->shape[j]));
		rc |= json_array_append_new(of, json_integer((json_int_t)off));
		rc |= json_array_append_new(of, json_integer((json_int_t)(off + e->n_bytes)));
		rc |= json_object_set_new(t, "dtype", json_string(llm_dtype_name(e->dtype)));
		rc |= json_object_set_new(t, "shape", sh);
		rc |= json_object_set_new(t, "data_offsets", of);
		rc |= json_object_set_new(hdr, e->name, t);
		off += e->n_bytes;
	}
	js = rc == 0 ? json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(hdr);
	rc = 0;
	if (!js)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	hlen = strlen(js);
	pad = (8 - hlen % 8) % 8;
	tmp = malloc(strlen(path) + 8);
	if (!tmp) {
		free(js);
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	}
	sprintf(tmp, "%s.tmp", path);
	f = fopen(tmp, "wb");
	if (!f) {
		rc = diag_fail(d, LLM_E_IO, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	{
		uint8_t le[8];
		const uint64_t total = hlen + pad;

		for (j = 0; j < 8; j++)
			le[j] = (uint8_t)(total >> (8 * j));
		if (fwrite(le, 1, 8, f) != 8 || fwrite(js, 1, hlen, f) != hlen)
			goto io;
		for (i = 0; i < pad; i++)
			if (fputc(' ', f) == EOF)
				goto io;
	}
	for (i = 0; i < w->n; i++)
		if (w->e[i].n_bytes &&
		    fwrite(w->e[i].data, 1, w->e[i].n_bytes, f) != w->e[i].n_bytes)
			goto io;
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		goto io;
	if (fclose(f) != 0) {
		f = NULL;
		goto io;
	}
	f = NULL;
	if (rename(tmp, path) != 0) {
		rc = diag_fail(d, LLM_E_IO, "%s: %s", path, strerror(errno));
		goto out;
	}
	goto out;
io:
	rc = diag_fail(d, LLM_E_IO, "%s: write failed: %s", tmp, strerror(errno));
	if (f)
		fclose(f);
	unlink(tmp);
out:
	free(js);
	free(tmp);
	return rc;
}

/* ---- the job ----------------------------------------------------------- */

struct cv_job {
	const struct llm_convert_params *p;
	struct llm_model *m;
	struct llm_st_set *src;
	const struct llm_config *cf;
	char prefix[64];          /* "model." */
	int32_t *rows;            /* [cal_rows][cal_cols] token ids */
	size_t n_rows, n_cols;
	int *bits;                /* [n_layer][max_items] */
	size_t max_items;         /* most linears a layer has */
	struct cv_item *items;    /* [max_items] scratch for one layer */
	char **qnames;            /* sorted names of every replaced tensor */
	size_t n_qnames;
	double avg_bits;
	enum gpu_exl3_cb cb;
	/* capture */
	int64_t cap_layer;        /* the layer being captured */
	size_t n_slots;           /* CV_H_EXPERT + n_expert + 1 */
	double **h;               /* [n_slots] accumulators [k][k] or NULL */
	size_t *hk;               /* their k (padded: multiples of 128) */
	size_t *h_rows;
	size_t bad_rows;          /* calibration rows dropped (inf/NaN) */
	struct gpu_buf *eg, *eu;  /* expert intermediates [n, F_e] */
	float *xh, *xt, *hh;      /* host staging [n][k], [k][n], [k][k] */
	size_t xh_cap, hh_cap;
	struct gpu_buf *xb, *hb;  /* backend staging */
	double t0;
	size_t step, n_steps;
	double w_done, w_total, w_start; /* padded weights: done, all, at start */
};

static int cv_cb_parse(const char *s, enum gpu_exl3_cb *cb)
{
	if (!s || !strcmp(s, "mul1"))
		*cb = GPU_EXL3_CB_MUL1;
	else if (!strcmp(s, "mcg"))
		*cb = GPU_EXL3_CB_MCG;
	else if (!strcmp(s, "3inst"))
		*cb = GPU_EXL3_CB_3INST;
	else
		return -1;
	return 0;
}

static const char *cv_cb_name(enum gpu_exl3_cb cb)
{
	return cb == GPU_EXL3_CB_MUL1 ? "mul1" : cb == GPU_EXL3_CB_MCG ? "mcg" : "3inst";
}

static void cv_item_set(struct cv_item *it, const struct cv_job *j, int64_t l,
			const char *name, size_t in, size_t out, int hess,
			int group, enum cv_kind kind, int expert)
{
	if (expert >= 0)
		snprintf(it->key, sizeof it->key, "%slayers.%lld.%s.experts.%d.%s",
			 j->prefix, (long long)l,
			 j->cf->arch == LLM_ARCH_MIXTRAL ? "block_sparse_moe" : "mlp",
			 expert, name);
	else
		snprintf(it->key, sizeof it->key, "%slayers.%lld.%s", j->prefix,
			 (long long)l, name);
	it->in = in;
	it->out = out;
	it->hess = hess;
	it->group = group;
	it->kind = kind;
	it->expert = expert;
}

/* The linears of layer L, in the order they are quantized, into IT (room
 * for j->max_items); returns their count. */
static size_t cv_layer_items(const struct cv_job *j, int64_t l, struct cv_item *it)
{
	const struct llm_config *cf = j->cf;
	const struct llm_layer *ly = &j->m->layers[l];
	const size_t E = (size_t)cf->n_embd, F = (size_t)cf->n_ff;
	const size_t qd = (size_t)(cf->n_head * cf->head_dim);
	const size_t kd = (size_t)(cf->n_head_kv * cf->head_dim);
	const bool mx = cf->arch == LLM_ARCH_MIXTRAL;
	size_t n = 0;
	int e;

	cv_item_set(&it[n++], j, l, "self_attn.q_proj", E, qd, CV_H_ATTN_IN, 0, CV_KQ, -1);
	cv_item_set(&it[n++], j, l, "self_attn.k_proj", E, kd, CV_H_ATTN_IN, 0, CV_KK, -1);
	cv_item_set(&it[n++], j, l, "self_attn.v_proj", E, kd, CV_H_ATTN_IN, 0, CV_KV, -1);
	cv_item_set(&it[n++], j, l, "self_attn.o_proj", qd, E, CV_H_ATTN_O, 1, CV_KO, -1);
	if (!ly->moe) {
		cv_item_set(&it[n++], j, l, "mlp.gate_proj", E, F, CV_H_MLP_IN, 2, CV_KGATE, -1);
		cv_item_set(&it[n++], j, l, "mlp.up_proj", E, F, CV_H_MLP_IN, 2, CV_KUP, -1);
		cv_item_set(&it[n++], j, l, "mlp.down_proj", F, E, CV_H_MLP_DOWN, 3, CV_KDOWN, -1);
		return n;
	}
	for (e = 0; e < (int)cf->n_expert; e++) {
		const size_t Fe = (size_t)cf->n_ff_expert;

		cv_item_set(&it[n++], j, l, mx ? "w1" : "gate_proj", E, Fe, CV_H_MLP_IN, 2,
			    CV_KEGATE, e);
		cv_item_set(&it[n++], j, l, mx ? "w3" : "up_proj", E, Fe, CV_H_MLP_IN, 2,
			    CV_KEUP, e);
		cv_item_set(&it[n++], j, l, mx ? "w2" : "down_proj", Fe, E,
			    CV_H_EXPERT + e, 2, CV_KEDOWN, e);
	}
	if (cf->has_shared_expert) {
		const size_t Fs = (size_t)cf->n_ff_shared;

		cv_item_set(&it[n++], j, l, "mlp.shared_expert.gate_proj", E, Fs,
			    CV_H_MLP_IN, 2, CV_KSGATE, -1);
		cv_item_set(&it[n++], j, l, "mlp.shared_expert.up_proj", E, Fs,
			    CV_H_MLP_IN, 2, CV_KSUP, -1);
		cv_item_set(&it[n++], j, l, "mlp.shared_expert.down_proj", Fs, E,
			    CV_H_EXPERT + (int)cf->n_expert, 2, CV_KSDOWN, -1);
	}
	return n;
}

static void cv_progress(struct cv_job *j, const char *what, int bits,
			double rel_err)
{
	struct llm_convert_progress pr;
	const double el = clock_now_s() - j->t0;

	if (!j->p->progress)
		return;
	pr.step = j->step;
	pr.n_steps = j->n_steps;
	pr.what = what;
	pr.bits = bits;
	pr.rel_err = rel_err;
	pr.elapsed_s = el;
	pr.bad_rows = j->bad_rows;
	/* time goes with the weights (the trellis search per tile dominates) */
	pr.eta_s = j->w_done > j->w_start ?
			   el / (j->w_done - j->w_start) * (j->w_total - j->w_done) :
			   -1.0;
	j->p->progress(j->p->user, &pr);
}

/* §4.12: bits of every linear (j->bits), average into j->avg_bits: all
 * start at floor(bits); whole groups of a layer go up a bit, the layers
 * nearest either end first, in passes, while the budget allows. */
static void cv_allocate(struct cv_job *j)
{
	const int64_t L = j->cf->n_layer;
	const size_t M = j->max_items;
	const int base = (int)floor(j->p->bits + 1e-9);
	double budget, used = 0.0, total = 0.0;
	int64_t l, dist;
	size_t i, n;
	int changed;

	for (l = 0; l < L; l++) {
		n = cv_layer_items(j, l, j->items);
		for (i = 0; i < M; i++)
			j->bits[l * (int64_t)M + (int64_t)i] = base;
		for (i = 0; i < n; i++)
			total += (double)j->items[i].in * (double)j->items[i].out;
	}
	budget = j->p->bits * total;
	used = base * total;
	do {
		changed = 0;
		for (dist = 0; dist <= L / 2; dist++) {
			const int64_t pick[2] = { dist, L - 1 - dist };
			int q, g;

			for (q = 0; q < 2; q++) {
				int *bl;

				l = pick[q];
				if (q == 1 && pick[1] == pick[0])
					continue;
				bl = j->bits + l * (int64_t)M;
				n = cv_layer_items(j, l, j->items);
				for (g = 0; g < 4; g++) {
					double gsize = 0.0;
					int cur = -1;

					for (i = 0; i < n; i++)
						if (j->items[i].group == g) {
							gsize += (double)j->items[i].in *
								 (double)j->items[i].out;
							cur = bl[i];
						}
					if (cur < 0 || cur >= 8 || used + gsize > budget + 1e-6)
						continue;
					for (i = 0; i < n; i++)
						if (j->items[i].group == g)
							bl[i] = cur + 1;
					used += gsize;
					changed = 1;
				}
			}
		}
	} while (changed);
	j->avg_bits = used / total;
}

/* ---- calibration --------------------------------------------------------- */

static int cv_calibration(struct cv_job *j, struct diag *d)
{
	const struct llm_convert_params *p = j->p;
	struct llm_tokenizer *tok = NULL;
	char *text = NULL;
	size_t len = 0, n_ids = 0, r, c, pos = 0;
	int32_t *ids = NULL, bos = llm_model_bos(j->m);
	uint64_t s = p->seed ^ 0xC0FFEEull;
	const int64_t V = j->cf->n_vocab;
	int rc;

	if (!p->cal_file) {
		/* random token ids only (a model without a tokenizer) */
		ids = malloc(sizeof *ids);
		n_ids = 0;
		if (!ids)
			return diag_fail(d, LLM_E_NOMEM, "out of memory");
		goto rows;
	}
	rc = file_read_all(p->cal_file, 0, &text, &len, d);
	if (rc < 0) {
		diag_prefix(d, "calibration text");
		return LLM_E_IO;
	}
	rc = llm_tokenizer_open(p->in_dir, &tok, d);
	if (rc < 0)
		diag_prefix(d, "calibration needs the model's tokenizer (or random "
			       "tokens: --cal random)");
	if (rc == 0)
		rc = llm_tokenizer_encode(tok, text, len, false, &ids, &n_ids, d);
	free(text);
	llm_tokenizer_free(tok);
	if (rc < 0)
		return rc;
	if (n_ids < 16) {
		free(ids);
		return diag_fail(d, LLM_E_INVALID,
				 "calibration text %s has %zu tokens; it needs some text",
				 p->cal_file, n_ids);
	}
rows:
	j->n_rows = p->cal_rows;
	j->n_cols = p->cal_cols;
	j->rows = malloc(j->n_rows * j->n_cols * sizeof *j->rows);
	if (!j->rows) {
		free(ids);
		return diag_fail(d, LLM_E_NOMEM, "out of memory for calibration rows");
	}
	for (r = 0; r < j->n_rows; r++) {
		int32_t *row = j->rows + r * j->n_cols;
		const bool rnd = r % 7 == 6 || n_ids == 0;

		for (c = 0; c < j->n_cols; c++) {
			if (c == 0 && bos >= 0 && !rnd) {
				row[c] = bos;
			} else if (rnd) {
				row[c] = (int32_t)(llm_splitmix64(&s) % (uint64_t)V);
			} else {
				row[c] = ids[pos];
				pos = (pos + 1) % n_ids;
			}
		}
	}
	free(ids);
	return 0;
}

/* *B: an f32 buffer of at least N elements on the model's backend (kept
 * while it is large enough, else replaced).  0, LLM_E_NOMEM or
 * LLM_E_BACKEND. */
static int cv_f32_buf(struct cv_job *j, struct gpu_buf **b, size_t n,
		      struct diag *d)
{
	int rc;

	if (*b && gpu_buf_n_elems(*b) >= n)
		return 0;
	gpu_buf_free(*b);
	*b = NULL;
	rc = gpu_buf_new(j->m->g, GPU_DTYPE_F32, n, b, d);
	if (rc < 0)
		return rc == GPU_E_NOMEM ? LLM_E_NOMEM : LLM_E_BACKEND;
	return 0;
}

/* H[slot] += x' x for the n rows of X (f32 [n, k] on the backend). */
static int cv_accumulate(struct cv_job *j, size_t slot, const struct gpu_buf *x,
			 size_t n, size_t k, struct diag *d)
{
	const size_t kp = j->hk[slot];
	double *h = j->h[slot];
	size_t a, b;
	int rc;

	if (!h)
		return 0;
	if (n * k > j->xh_cap) {
		float *p1 = realloc(j->xh, n * k * sizeof *p1);
		float *p2 = p1 ? realloc(j->xt, n * k * sizeof *p2) : NULL;

		if (p1)
			j->xh = p1;
		if (!p1 || !p2)
			return diag_fail(d, LLM_E_NOMEM, "out of memory");
		j->xt = p2;
		j->xh_cap = n * k;
	}
	if (k * k > j->hh_cap) {
		float *p3 = realloc(j->hh, k * k * sizeof *p3);

		if (!p3)
			return diag_fail(d, LLM_E_NOMEM, "out of memory");
		j->hh = p3;
		j->hh_cap = k * k;
	}
	rc = gpu_buf_read(x, 0, j->xh, n * k, d);
	if (rc < 0)
		return LLM_E_BACKEND;
	/* rows holding inf or NaN are left out (and counted), as §4.3 does */
	{
		size_t kept = 0;

		for (a = 0; a < n; a++) {
			bool fin = true;

			for (b = 0; b < k && fin; b++)
				fin = isfinite(j->xh[a * k + b]);
			if (!fin) {
				j->bad_rows++;
				continue;
			}
			if (kept != a)
				memmove(j->xh + kept * k, j->xh + a * k, k * sizeof *j->xh);
			kept++;
		}
		n = kept;
		if (n == 0)
			return 0;
	}
	/* xt [k][n]: then x' x = xt xt' is one matmul with xt as both the
	 * rows and the weight */
	for (a = 0; a < n; a++)
		for (b = 0; b < k; b++)
			j->xt[b * n + a] = j->xh[a * k + b];
	rc = cv_f32_buf(j, &j->xb, n * k, d);
	if (rc == 0)
		rc = cv_f32_buf(j, &j->hb, k * k, d);
	if (rc < 0)
		return rc;
	if (gpu_buf_write(j->xb, 0, j->xt, n * k, d) < 0 ||
	    gpu_matmul(j->m->g, j->hb, j->xb, j->xb, NULL, k, n, k, d) < 0 ||
	    gpu_buf_read(j->hb, 0, j->hh, k * k, d) < 0)
		return LLM_E_BACKEND;
	/* rows and columns past k (padding) stay zero */
	for (a = 0; a < k; a++)
		for (b = 0; b < k; b++)
			h[a * kp + b] += j->hh[a * k + b];
	j->h_rows[slot] += n;
	return 0;
}

/* A MoE layer's expert inputs from the rows X entering its MLP (f32 [n,
 * E]): every routed expert's down_proj input silu(x Wg') * (x Wu') for
 * every row, as ExLlamaV3's capture activates all experts, and the shared
 * expert's; each into its own Hessian. */
static int cv_experts(struct cv_job *j, const struct gpu_buf *x, size_t n,
		      struct diag *d)
{
	const struct llm_config *cf = j->cf;
	const struct llm_layer *ly = &j->m->layers[j->cap_layer];
	const size_t E = (size_t)cf->n_embd;
	const size_t ne = (size_t)cf->n_expert;
	size_t e, F = (size_t)cf->n_ff_expert;
	int rc;

	if (cf->has_shared_expert && (size_t)cf->n_ff_shared > F)
		F = (size_t)cf->n_ff_shared;
	rc = cv_f32_buf(j, &j->eg, n * F, d);
	if (rc == 0)
		rc = cv_f32_buf(j, &j->eu, n * F, d);
	if (rc < 0)
		return rc;
	for (e = 0; e <= ne; e++) {
		const struct gpu_buf *wg, *wu;
		size_t Fe;

		if (e == ne) {
			if (!cf->has_shared_expert)
				break;
			wg = ly->s_gate;
			wu = ly->s_up;
			Fe = (size_t)cf->n_ff_shared;
		} else {
			wg = ly->e_gate[e];
			wu = ly->e_up[e];
			Fe = (size_t)cf->n_ff_expert;
		}
		if (gpu_matmul(j->m->g, j->eg, x, wg, NULL, n, E, Fe, d) < 0 ||
		    gpu_matmul(j->m->g, j->eu, x, wu, NULL, n, E, Fe, d) < 0 ||
		    gpu_swiglu(j->m->g, j->eg, j->eg, j->eu, n * Fe, d) < 0)
			return LLM_E_BACKEND;
		rc = cv_accumulate(j, CV_H_EXPERT + e, j->eg, n, Fe, d);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The capture hook (model_impl.h): each point's rows into its Hessian;
 * ends the pass after the layer's last input. */
static int cv_capture(void *user, enum llm_capture_point pt,
		      const struct gpu_buf *x, size_t n, size_t k, struct diag *d)
{
	struct cv_job *j = user;
	const bool moe = j->cap_layer < j->cf->n_layer &&
			 j->m->layers[j->cap_layer].moe;
	int rc;

	switch (pt) {
	case LLM_CAPTURE_ATTN_IN:
	case LLM_CAPTURE_HEAD:
		rc = cv_accumulate(j, CV_H_ATTN_IN, x, n, k, d);
		return rc < 0 ? rc : pt == LLM_CAPTURE_HEAD;
	case LLM_CAPTURE_ATTN_O:
		return cv_accumulate(j, CV_H_ATTN_O, x, n, k, d);
	case LLM_CAPTURE_MLP_IN:
		rc = cv_accumulate(j, CV_H_MLP_IN, x, n, k, d);
		if (rc == 0 && moe)
			rc = cv_experts(j, x, n, d);
		return rc < 0 ? rc : moe;
	default:
		rc = cv_accumulate(j, CV_H_MLP_DOWN, x, n, k, d);
		return rc < 0 ? rc : 1;
	}
}

/* Run every calibration row with the hook on LAYER (n_layer: the head),
 * after making the Hessians of its items (slot: k; none for the head's
 * but CV_H_ATTN_IN). */
static int cv_collect(struct cv_job *j, int64_t layer, const struct cv_item *it,
		      size_t n_it, struct diag *d)
{
	struct llm_capture cap = { layer, cv_capture, j };
	struct llm_context *c = NULL;
	size_t i, r;
	int rc;

	for (i = 0; i < j->n_slots; i++)
		j->h_rows[i] = 0;
	if (layer == j->cf->n_layer)
		j->hk[CV_H_ATTN_IN] = round128((size_t)j->cf->n_embd);
	for (i = 0; i < n_it; i++)
		j->hk[it[i].hess] = round128(it[i].in);
	for (i = 0; i < j->n_slots; i++) {
		const bool used = layer == j->cf->n_layer ? i == CV_H_ATTN_IN : false;
		size_t q;
		bool want = used;

		for (q = 0; q < n_it && !want; q++)
			want = (size_t)it[q].hess == i;
		if (!want)
			continue;
		j->h[i] = calloc(j->hk[i] * j->hk[i], sizeof *j->h[i]);
		if (!j->h[i])
			return diag_fail(d, LLM_E_NOMEM,
					 "out of memory for a %zu x %zu Hessian",
					 j->hk[i], j->hk[i]);
	}
	j->cap_layer = layer;
	j->m->capture = &cap;
	rc = llm_context_new(j->m, j->n_cols, &c, d);
	for (r = 0; rc == 0 && r < j->n_rows; r++) {
		llm_context_reset(c);
		rc = llm_context_eval(c, j->rows + r * j->n_cols, j->n_cols,
				      LLM_LOGITS_NONE, NULL, d);
	}
	llm_context_free(c);
	j->m->capture = NULL;
	if (rc < 0)
		diag_prefix(d, "calibration forward (layer %lld)", (long long)layer);
	return rc;
}

static void cv_drop_hessians(struct cv_job *j)
{
	size_t i;

	for (i = 0; j->h && i < j->n_slots; i++) {
		free(j->h[i]);
		j->h[i] = NULL;
	}
}

/* H as the quantizer takes it: f32 mean. */
/* *out = slot PT's mean x'x (f32), or NULL when no row reached it (the
 * quantizer then runs without one).  0 or LLM_E_NOMEM. */
static int cv_mean_h(const struct cv_job *j, int pt, float **out,
		     struct diag *d)
{
	const size_t k = j->hk[pt];
	float *h;
	size_t i;

	*out = NULL;
	if (j->h_rows[pt] == 0 || !j->h[pt])
		return 0;
	h = malloc(k * k * sizeof *h);
	if (!h)
		return diag_fail(d, LLM_E_NOMEM,
				 "out of memory for a %zu x %zu Hessian", k, k);
	for (i = 0; i < k * k; i++)
		h[i] = (float)(j->h[pt][i] / (double)j->h_rows[pt]);
	*out = h;
	return 0;
}

/* Quantize source weight KEY (HF [out, in]) into writer W under KEY. */
static int cv_quantize(struct cv_job *j, const char *key, size_t in, size_t out,
		       int bits, const float *h, uint64_t seed,
		       struct st_writer *w, double *rel_err, struct diag *d)
{
	const size_t kp = round128(in), np = round128(out);
	const struct llm_tensor_info *t, *tb;
	char name[320];
	float *src = NULL, *wt = NULL;
	uint16_t *tr = NULL, *suh = NULL, *svh = NULL;
	struct gpu_exl3_qparams qp;
	struct gpu_exl3_qstats st;
	size_t a, b;
	int rc;
	int64_t shape[3];

	snprintf(name, sizeof name, "%s.weight", key);
	{
		const int64_t sh[2] = { (int64_t)out, (int64_t)in };

		rc = llm_st_expect(j->src, name, 2, sh, &t, d);
		if (rc < 0)
			return rc;
	}
	src = malloc(in * out * sizeof *src);
	wt = calloc(kp * np, sizeof *wt);
	tr = malloc(kp * np / 256 * 16 * (size_t)bits * sizeof *tr);
	suh = malloc(kp * sizeof *suh);
	svh = malloc(np * sizeof *svh);
	if (!src || !wt || !tr || !suh || !svh) {
		rc = diag_fail(d, LLM_E_NOMEM, "%s: out of memory", key);
		goto out;
	}
	rc = llm_tensor_to_f32(t, src, d);
	if (rc < 0)
		goto out;
	for (a = 0; a < out; a++)
		for (b = 0; b < in; b++)
			wt[b * np + a] = src[a * in + b];
	memset(&qp, 0, sizeof qp);
	qp.bits = bits;
	qp.cb = j->cb;
	qp.seed = seed;
	qp.n_threads = j->p->n_threads;
	/* the trellis search on the device when the passes run there */
	qp.g = gpu_get_kind(j->m->g) == GPU_KIND_CUDA ? j->m->g : NULL;
	rc = gpu_exl3_quantize(wt, kp, np, h, &qp, tr, suh, svh, &st, d);
	if (rc < 0) {
		diag_prefix(d, "%s", key);
		rc = rc == GPU_E_NOMEM ? LLM_E_NOMEM :
		     rc == GPU_E_INVALID ? LLM_E_INVALID : LLM_E_BACKEND;
		goto out;
	}
	*rel_err = st.rel_err;
	j->w_done += (double)kp * (double)np;
	shape[0] = (int64_t)(kp / 16);
	shape[1] = (int64_t)(np / 16);
	shape[2] = 16 * bits;
	snprintf(name, sizeof name, "%s.trellis", key);
	rc = stw_add(w, name, LLM_DTYPE_I16, 3, shape, NULL, tr, d);
	tr = NULL;
	if (rc == 0) {
		snprintf(name, sizeof name, "%s.suh", key);
		shape[0] = (int64_t)kp;
		rc = stw_add(w, name, LLM_DTYPE_F16, 1, shape, NULL, suh, d);
		suh = NULL;
	}
	if (rc == 0) {
		snprintf(name, sizeof name, "%s.svh", key);
		shape[0] = (int64_t)np;
		rc = stw_add(w, name, LLM_DTYPE_F16, 1, shape, NULL, svh, d);
		svh = NULL;
	}
	if (rc == 0 && j->cb != GPU_EXL3_CB_3INST) {
		int32_t *flag = malloc(sizeof *flag);

		if (!flag) {
			rc = diag_fail(d, LLM_E_NOMEM, "out of memory");
		} else {
			const uint32_t v = j->cb == GPU_EXL3_CB_MUL1 ? 0x83DCD12Du : 0xCBAC1FEDu;

			memcpy(flag, &v, sizeof v);
			snprintf(name, sizeof name, "%s.%s", key,
				 j->cb == GPU_EXL3_CB_MUL1 ? "mul1" : "mcg");
			rc = stw_add(w, name, LLM_DTYPE_I32, 0, shape, NULL, flag, d);
		}
	}
	/* a bias (qwen2 q/k/v) travels as f16 [np] */
	snprintf(name, sizeof name, "%s.bias", key);
	tb = llm_st_find(j->src, name);
	if (rc == 0 && tb) {
		uint16_t *bias = calloc(np, sizeof *bias);
		float *bf = malloc(out * sizeof *bf);

		if (!bias || !bf || tb->n_elems != (int64_t)out) {
			free(bias);
			free(bf);
			rc = !bias || !bf ? diag_fail(d, LLM_E_NOMEM, "out of memory")
					  : diag_fail(d, LLM_E_FORMAT,
						      "tensor '%s' has %" PRId64
						      " elements, expected %zu",
						      name, tb->n_elems, out);
		} else {
			rc = llm_tensor_to_f32(tb, bf, d);
			for (a = 0; rc == 0 && a < out; a++)
				bias[a] = llm_f32_to_f16(bf[a]);
			free(bf);
			shape[0] = (int64_t)np;
			if (rc == 0)
				rc = stw_add(w, name, LLM_DTYPE_F16, 1, shape, NULL, bias, d);
			else
				free(bias);
		}
	}
out:
	free(src);
	free(wt);
	free(tr);
	free(suh);
	free(svh);
	return rc;
}

/* WORK/layer-NNN.safetensors */
static char *cv_layer_path(const char *dir, long l)
{
	char name[64];

	snprintf(name, sizeof name, "layer-%03ld.safetensors", l);
	return file_join(dir, name);
}

/* Free a layer's dense expert array (n entries) and clear it. */
static void cv_free_bufs(struct gpu_buf ***arr, size_t n)
{
	size_t i;

	if (!*arr)
		return;
	for (i = 0; i < n; i++)
		gpu_buf_free((*arr)[i]);
	free(*arr);
	*arr = NULL;
}

/* Swap layer L's dense linears for the EXL3 ones in FILE (all or, on an
 * error, the model keeps a mix the forward still runs: dense where the
 * EXL3 one did not load). */
static int cv_install_layer(struct cv_job *j, int64_t l, const char *file,
			    struct diag *d)
{
	struct llm_layer *ly = &j->m->layers[l];
	const size_t ne = (size_t)j->cf->n_expert;
	const size_t n = cv_layer_items(j, l, j->items);
	struct llm_st_set *st = NULL;
	size_t i;
	int rc;

	if (ly->moe && !ly->xe_gate) {
		ly->xe_gate = calloc(ne, sizeof *ly->xe_gate);
		ly->xe_up = calloc(ne, sizeof *ly->xe_up);
		ly->xe_down = calloc(ne, sizeof *ly->xe_down);
		if (!ly->xe_gate || !ly->xe_up || !ly->xe_down) {
			free(ly->xe_gate);
			free(ly->xe_up);
			free(ly->xe_down);
			ly->xe_gate = ly->xe_up = ly->xe_down = NULL;
			return diag_fail(d, LLM_E_NOMEM, "out of memory");
		}
	}
	rc = llm_st_open(file, &st, d);
	for (i = 0; rc == 0 && i < n; i++) {
		const struct cv_item *it = &j->items[i];
		struct gpu_exl3_weight **x = NULL;
		struct gpu_buf **w = NULL, **b = NULL;

		switch (it->kind) {
		case CV_KQ: x = &ly->xq; w = &ly->wq; b = &ly->bq; break;
		case CV_KK: x = &ly->xk; w = &ly->wk; b = &ly->bk; break;
		case CV_KV: x = &ly->xv; w = &ly->wv; b = &ly->bv; break;
		case CV_KO: x = &ly->xo; w = &ly->wo; break;
		case CV_KGATE: x = &ly->x_gate; w = &ly->w_gate; break;
		case CV_KUP: x = &ly->x_up; w = &ly->w_up; break;
		case CV_KDOWN: x = &ly->x_down; w = &ly->w_down; break;
		case CV_KEGATE: x = &ly->xe_gate[it->expert]; break;
		case CV_KEUP: x = &ly->xe_up[it->expert]; break;
		case CV_KEDOWN: x = &ly->xe_down[it->expert]; break;
		case CV_KSGATE: x = &ly->xs_gate; w = &ly->s_gate; break;
		case CV_KSUP: x = &ly->xs_up; w = &ly->s_up; break;
		default: x = &ly->xs_down; w = &ly->s_down; break;
		}
		rc = llm_exl3_load(j->m->g, st, it->key, (int64_t)it->in,
				   (int64_t)it->out, 0, x, NULL, NULL, d);
		if (rc == 0 && w) {
			gpu_buf_free(*w);
			*w = NULL;
		}
		if (rc == 0 && b) {
			gpu_buf_free(*b);
			*b = NULL;
		}
	}
	llm_st_close(st);
	/* routed experts: the layer holds one set (gpu_moe_ffn) */
	if (rc == 0 && ly->moe) {
		cv_free_bufs(&ly->e_gate, ne);
		cv_free_bufs(&ly->e_up, ne);
		cv_free_bufs(&ly->e_down, ne);
	}
	return rc;
}

/* Quantize layer L (or the head, l == n_layer) into its work file. */
static int cv_layer(struct cv_job *j, int64_t l, const char *file,
		    struct diag *d)
{
	const struct llm_config *cf = j->cf;
	struct st_writer w = { NULL, 0, 0 };
	char key[160], what[300];
	size_t i, n = 0;
	int rc;

	if (l < cf->n_layer)
		n = cv_layer_items(j, l, j->items);
	rc = cv_collect(j, l, j->items, n, d);
	if (rc < 0)
		goto out;
	if (l == cf->n_layer) {
		float *h = NULL;
		double err = 0.0;
		const char *src_key = llm_st_find(j->src, "lm_head.weight") ?
					      "lm_head" : NULL;

		rc = cv_mean_h(j, CV_H_ATTN_IN, &h, d);
		cv_drop_hessians(j);
		if (rc < 0)
			goto out;
		/* a tied head is quantized from the embedding, written as
		 * lm_head (the embedding stays as it is) */
		if (!src_key) {
			snprintf(key, sizeof key, "%sembed_tokens", j->prefix);
			src_key = key;
		}
		rc = cv_quantize(j, src_key, (size_t)cf->n_embd, (size_t)cf->n_vocab,
				 j->p->head_bits, h, j->p->seed + 1000003ull, &w, &err, d);
		free(h);
		if (rc == 0 && src_key == key) {
			/* rename embed_tokens.* -> lm_head.* */
			size_t q;

			for (q = 0; q < w.n; q++) {
				const char *sfx = strrchr(w.e[q].name, '.');
				char *nn = malloc(strlen("lm_head") + strlen(sfx) + 1);

				if (!nn) {
					rc = diag_fail(d, LLM_E_NOMEM, "out of memory");
					break;
				}
				sprintf(nn, "lm_head%s", sfx);
				free(w.e[q].name);
				w.e[q].name = nn;
			}
		}
		if (rc == 0)
			rc = stw_save(&w, file, d);
		snprintf(what, sizeof what, "lm_head (%d bits, error %.4f)",
			 j->p->head_bits, err);
		j->step++;
		if (rc == 0)
			cv_progress(j, what, j->p->head_bits, err);
		goto out;
	}
	for (i = 0; i < n; i++) {
		const struct cv_item *it = &j->items[i];
		const int bits = j->bits[l * (int64_t)j->max_items + (int64_t)i];
		float *h = NULL;
		double err = 0.0;

		rc = cv_mean_h(j, it->hess, &h, d);
		if (rc < 0)
			goto out;
		rc = cv_quantize(j, it->key, it->in, it->out, bits, h,
				 j->p->seed + (uint64_t)l * j->max_items + i, &w, &err, d);
		free(h);
		if (rc < 0)
			goto out;
		j->step++;
		snprintf(what, sizeof what, "%s (%d bits, error %.4f)",
			 it->key + strlen(j->prefix), bits, err);
		cv_progress(j, what, bits, err);
	}
	cv_drop_hessians(j);
	rc = stw_save(&w, file, d);
	if (rc == 0)
		rc = cv_install_layer(j, l, file, d);
out:
	cv_drop_hessians(j);
	stw_free(&w);
	return rc;
}

/* ---- job file ------------------------------------------------------------ */

/* FNV-1a of the calibration rows: a resumed job must calibrate on the
 * same tokens (the text and its tokenizer, or the random rows). */
static uint64_t cv_rows_digest(const struct cv_job *j)
{
	const unsigned char *b = (const unsigned char *)j->rows;
	const size_t n = j->n_rows * j->n_cols * sizeof *j->rows;
	uint64_t h = 0xcbf29ce484222325ull;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

/* The settings a resumed job must share with the one that began (the
 * calibration rows by digest, the backend because its rounding shapes
 * the Hessians).  NULL when out of memory. */
static json_t *cv_args_json(const struct cv_job *j)
{
	const struct llm_convert_params *p = j->p;
	char dg[32];

	snprintf(dg, sizeof dg, "%016llx", (unsigned long long)cv_rows_digest(j));
	return json_pack("{s:f, s:i, s:s, s:I, s:I, s:I, s:s, s:s}", "bits", p->bits,
			 "head_bits", p->head_bits, "codebook", cv_cb_name(j->cb),
			 "cal_rows", (json_int_t)p->cal_rows, "cal_cols",
			 (json_int_t)p->cal_cols, "seed", (json_int_t)p->seed,
			 "calibration_digest", dg, "backend",
			 gpu_get_kind(j->m->g) == GPU_KIND_CUDA ? "cuda" : "cpu");
}

static int cv_write_job(const struct cv_job *j, const char *work, long next,
			struct diag *d)
{
	json_t *o = json_object();
	char *path = file_join(work, "job.json"), *js;
	int rc;

	if (!o || json_object_set_new(o, "args", cv_args_json(j)) < 0 ||
	    json_object_set_new(o, "next_layer", json_integer(next)) < 0) {
		json_decref(o);
		free(path);
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	}
	js = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!js || !path) {
		free(js);
		free(path);
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	}
	rc = file_write_atomic(path, js, strlen(js), d) < 0 ? LLM_E_IO : 0;
	free(js);
	free(path);
	return rc;
}

/* Read WORK/job.json: its next layer, after checking the arguments match. */
static int cv_read_job(const struct cv_job *j, const char *work, long *next,
		       struct diag *d)
{
	char *path = file_join(work, "job.json");
	json_error_t je;
	json_t *o, *args, *mine;
	const char *k;
	json_t *v;
	int rc = 0;

	o = path ? json_load_file(path, 0, &je) : NULL;
	if (!o) {
		rc = diag_fail(d, LLM_E_FORMAT, "%s: %s", path ? path : work,
			       path ? je.text : "out of memory");
		free(path);
		return rc;
	}
	args = json_object_get(o, "args");
	mine = cv_args_json(j);
	if (!mine) {
		json_decref(o);
		free(path);
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	}
	json_object_foreach(mine, k, v) {
		json_t *theirs = json_object_get(args, k);

		if (!theirs || !json_equal(theirs, v)) {
			char *a = json_dumps(v, JSON_ENCODE_ANY);
			char *b = theirs ? json_dumps(theirs, JSON_ENCODE_ANY) : NULL;

			rc = diag_fail(d, LLM_E_INVALID,
				       "%s: the unfinished job has %s %s, this one %s; "
				       "resume with the same settings or use another "
				       "work directory", path, k, b ? b : "(none)",
				       a ? a : "?");
			free(a);
			free(b);
			break;
		}
	}
	json_decref(mine);
	if (rc == 0) {
		json_t *n = json_object_get(o, "next_layer");

		if (!json_is_integer(n) || json_integer_value(n) < 0)
			rc = diag_fail(d, LLM_E_FORMAT, "%s: no next_layer", path);
		else
			*next = (long)json_integer_value(n);
	}
	json_decref(o);
	free(path);
	return rc;
}

/* ---- output -------------------------------------------------------------- */

/* file_write_atomic and file_mkdirs make private files and directories
 * (0600/0700, for conversations); a model directory's are as readable as
 * the umask allows: MODE (0666 a file, 0777 a directory) less the umask. */
static void cv_publish(const char *path, mode_t mode)
{
	const mode_t um = umask(0);

	umask(um);
	(void)chmod(path, mode & ~um);
}

static int cv_copy_file(const char *from, const char *to, struct diag *d)
{
	char *buf = NULL;
	size_t len = 0;
	int rc = file_read_all(from, 0, &buf, &len, d);

	if (rc == 0)
		rc = file_write_atomic(to, buf, len, d);
	free(buf);
	if (rc == 0)
		cv_publish(to, 0666);
	return rc < 0 ? LLM_E_IO : 0;
}

static int cv_strcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* j->qnames: every source tensor the converted model replaces (each
 * quantized linear's weight and bias, a quantized lm_head's weight),
 * sorted for cv_is_quantized. */
static int cv_list_quantized(struct cv_job *j, struct diag *d)
{
	const size_t cap = (size_t)j->cf->n_layer * j->max_items * 2 + 1;
	int64_t l;
	size_t i, n;

	j->qnames = calloc(cap, sizeof *j->qnames);
	if (!j->qnames)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	for (l = 0; l < j->cf->n_layer; l++) {
		n = cv_layer_items(j, l, j->items);
		for (i = 0; i < n; i++) {
			const char *key = j->items[i].key;
			char *a = malloc(strlen(key) + 8), *b = malloc(strlen(key) + 8);

			if (!a || !b) {
				free(a);
				free(b);
				return diag_fail(d, LLM_E_NOMEM, "out of memory");
			}
			sprintf(a, "%s.weight", key);
			sprintf(b, "%s.bias", key);
			j->qnames[j->n_qnames++] = a;
			j->qnames[j->n_qnames++] = b;
		}
	}
	if (j->p->head_bits != 16) {
		j->qnames[j->n_qnames] = strdup("lm_head.weight");
		if (!j->qnames[j->n_qnames++])
			return diag_fail(d, LLM_E_NOMEM, "out of memory");
	}
	qsort(j->qnames, j->n_qnames, sizeof *j->qnames, cv_strcmp);
	return 0;
}

/* Is NAME a source tensor the converted model replaces? */
static bool cv_is_quantized(const struct cv_job *j, const char *name)
{
	return bsearch(&name, j->qnames, j->n_qnames, sizeof *j->qnames,
		       cv_strcmp) != NULL;
}

static const char *cv_torch_dtype(enum llm_dtype t)
{
	switch (t) {
	case LLM_DTYPE_F32: return "torch.float32";
	case LLM_DTYPE_F16: return "torch.float16";
	case LLM_DTYPE_BF16: return "torch.bfloat16";
	case LLM_DTYPE_I16: return "torch.int16";
	case LLM_DTYPE_I32: return "torch.int32";
	case LLM_DTYPE_I64: return "torch.int64";
	default: return "torch.uint8";
	}
}

/* §1.3's "tensor_storage" of the written file: for every module (a tensor
 * name without its last component), its tensors' shapes, bytes and
 * dtypes, and for an EXL3 linear its format, bits and codebook flag.
 * NULL when out of memory. */
static json_t *cv_tensor_storage(const struct st_writer *w)
{
	json_t *ts = json_object();
	size_t i;
	int q;

	if (!ts)
		return NULL;
	for (i = 0; i < w->n; i++) {
		const struct st_entry *e = &w->e[i];
		const char *dot = strrchr(e->name, '.');
		const char *sfx = dot ? dot + 1 : e->name;
		char mod[256];
		json_t *m, *st, *t, *sh;

		snprintf(mod, sizeof mod, "%.*s",
			 (int)(dot ? (size_t)(dot - e->name) : strlen(e->name)), e->name);
		m = json_object_get(ts, mod);
		if (!m) {
			m = json_object();
			if (!m || json_object_set_new(ts, mod, m) < 0 ||
			    json_object_set_new(m, "stored_tensors", json_object()) < 0)
				goto fail;
		}
		st = json_object_get(m, "stored_tensors");
		t = json_object();
		sh = json_array();
		if (!st || !t || !sh) {
			json_decref(t);
			json_decref(sh);
			goto fail;
		}
		for (q = 0; q < e->n_dims; q++)
			json_array_append_new(sh, json_integer(e->shape[q]));
		json_object_set_new(t, "shape", sh);
		json_object_set_new(t, "n_bytes", json_integer((json_int_t)e->n_bytes));
		json_object_set_new(t, "dtype", json_string(cv_torch_dtype(e->dtype)));
		json_object_set_new(st, e->name, t);
		if (!strcmp(sfx, "trellis") && e->n_dims == 3) {
			json_object_set_new(m, "quant_format", json_string("exl3"));
			json_object_set_new(m, "bits_per_weight",
					    json_integer(e->shape[2] / 16));
		} else if (!strcmp(sfx, "mul1")) {
			json_object_set_new(m, "mul1_multiplier", json_integer(2212286765LL));
		} else if (!strcmp(sfx, "mcg")) {
			json_object_set_new(m, "mcg_multiplier", json_integer(3417055213LL));
		}
	}
	return ts;
fail:
	json_decref(ts);
	return NULL;
}

static int cv_write_config(const struct cv_job *j, const char *out,
			   json_t *storage, struct diag *d)
{
	char *src = file_join(j->p->in_dir, "config.json");
	char *dst = file_join(out, "config.json");
	char *qdst = file_join(out, "quantization_config.json");
	json_error_t je;
	json_t *cfg = src ? json_load_file(src, 0, &je) : NULL, *q;
	char *js = NULL;
	int rc = 0;

	if (!cfg) {
		rc = diag_fail(d, LLM_E_FORMAT, "%s: %s", src ? src : "config.json",
			       src ? je.text : "out of memory");
		goto out;
	}
	q = json_pack("{s:s, s:s, s:f, s:i, s:{s:I, s:I}, s:s, s:s}",
		      "quant_method", "exl3", "version", "tern-" PACKAGE_VERSION,
		      "bits", round(j->avg_bits * 100.0) / 100.0, "head_bits",
		      j->p->head_bits, "calibration", "rows", (json_int_t)j->n_rows,
		      "cols", (json_int_t)j->n_cols, "out_scales", "always",
		      "codebook", cv_cb_name(j->cb));
	json_object_set(cfg, "quantization_config", q);
	if (j->p->head_bits != 16)
		json_object_set_new(cfg, "tie_word_embeddings", json_false());
	js = json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
				     JSON_REAL_PRECISION(10));
	if (!js || file_write_atomic(dst, js, strlen(js), d) < 0) {
		rc = js ? LLM_E_IO : diag_fail(d, LLM_E_NOMEM, "out of memory");
		json_decref(q);
		goto out;
	}
	free(js);
	cv_publish(dst, 0666);
	/* quantization_config.json: the same dict plus the tensor storage */
	json_object_set(q, "tensor_storage", storage);
	js = json_dumps(q, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
			       JSON_REAL_PRECISION(10));
	json_decref(q);
	if (!js || file_write_atomic(qdst, js, strlen(js), d) < 0)
		rc = js ? LLM_E_IO : diag_fail(d, LLM_E_NOMEM, "out of memory");
	else
		cv_publish(qdst, 0666);
out:
	json_decref(cfg);
	free(js);
	free(src);
	free(dst);
	free(qdst);
	return rc;
}

static bool cv_skip_file(const char *name)
{
	static const char *const sfx[] = { ".safetensors", ".bin", ".pt", ".pth",
					   ".ckpt", ".gguf" };
	const size_t n = strlen(name);
	size_t i;

	if (!strcmp(name, "config.json") ||
	    !strcmp(name, "model.safetensors.index.json") ||
	    !strcmp(name, "quantization_config.json") || name[0] == '.')
		return true;
	for (i = 0; i < sizeof sfx / sizeof *sfx; i++) {
		const size_t m = strlen(sfx[i]);

		if (n >= m && !strcmp(name + n - m, sfx[i]))
			return true;
	}
	return false;
}

static int cv_compile(struct cv_job *j, const char *work, struct diag *d)
{
	const char *out = j->p->out_dir;
	struct st_writer w = { NULL, 0, 0 };
	struct llm_st_set *parts[1024];
	json_t *storage = NULL;
	size_t n_parts = 0, i, q;
	char *path = NULL;
	int64_t l;
	int rc = 0;
	DIR *dir;
	struct dirent *de;

	for (i = 0; i < llm_st_count(j->src) && rc == 0; i++) {
		const struct llm_tensor_info *t = llm_st_at(j->src, i);

		if (cv_is_quantized(j, t->name))
			continue;
		rc = stw_add(&w, t->name, t->dtype, t->n_dims, t->shape, t->data, NULL, d);
	}
	for (l = 0; l <= j->cf->n_layer && rc == 0; l++) {
		if (l == j->cf->n_layer && j->p->head_bits == 16)
			break;
		path = l == j->cf->n_layer ? file_join(work, "head.safetensors")
					   : cv_layer_path(work, (long)l);
		if (n_parts == sizeof parts / sizeof *parts) {
			rc = diag_fail(d, LLM_E_UNSUPPORTED, "too many layers");
			break;
		}
		rc = llm_st_open(path, &parts[n_parts], d);
		free(path);
		path = NULL;
		if (rc < 0)
			break;
		for (q = 0; q < llm_st_count(parts[n_parts]) && rc == 0; q++) {
			const struct llm_tensor_info *t = llm_st_at(parts[n_parts], q);

			rc = stw_add(&w, t->name, t->dtype, t->n_dims, t->shape, t->data,
				     NULL, d);
		}
		n_parts++;
	}
	if (rc == 0) {
		path = file_join(out, "model.safetensors");
		rc = path ? stw_save(&w, path, d) : diag_fail(d, LLM_E_NOMEM, "out of memory");
		free(path);
	}
	if (rc == 0) {
		storage = cv_tensor_storage(&w);
		if (!storage)
			rc = diag_fail(d, LLM_E_NOMEM, "out of memory");
	}
	stw_free(&w);
	for (i = 0; i < n_parts; i++)
		llm_st_close(parts[i]);
	if (rc == 0)
		rc = cv_write_config(j, out, storage, d);
	json_decref(storage);
	if (rc < 0)
		return rc;
	dir = opendir(j->p->in_dir);
	if (!dir)
		return diag_fail(d, LLM_E_IO, "%s: %s", j->p->in_dir, strerror(errno));
	while (rc == 0 && (de = readdir(dir))) {
		char *from, *to;

		if (cv_skip_file(de->d_name))
			continue;
		from = file_join(j->p->in_dir, de->d_name);
		to = file_join(out, de->d_name);
		if (from && to && file_is_file(from))
			rc = cv_copy_file(from, to, d);
		free(from);
		free(to);
	}
	closedir(dir);
	return rc;
}

/* Remove the work directory: job.json first (a crash half-way leaves no
 * job pointing at missing layers), then the layers, the head and any
 * temporary file a crash left. */
static void cv_remove_work(const struct cv_job *j, const char *work)
{
	DIR *dir;
	struct dirent *de;
	char *p = file_join(work, "job.json");

	(void)j;
	if (p)
		unlink(p);
	free(p);
	dir = opendir(work);
	while (dir && (de = readdir(dir))) {
		const char *nm = de->d_name;
		const size_t n = strlen(nm);

		if ((n > 12 && !strcmp(nm + n - 12, ".safetensors") &&
		     (!strncmp(nm, "layer-", 6) || !strcmp(nm, "head.safetensors"))) ||
		    (n > 4 && !strcmp(nm + n - 4, ".tmp"))) {
			p = file_join(work, nm);
			if (p)
				unlink(p);
			free(p);
		}
	}
	if (dir)
		closedir(dir);
	rmdir(work);
}

int llm_convert(const struct llm_convert_params *p, struct diag *d)
{
	struct cv_job j;
	struct llm_model_params mp = llm_model_default_params();
	char *work = NULL, *job = NULL;
	bool out_existed;
	long next = 0;
	int64_t l;
	int rc;

	memset(&j, 0, sizeof j);
	j.p = p;
	if (!p || !p->in_dir || !p->out_dir)
		return diag_fail(d, LLM_E_INVALID,
				 "convert: the source and output directories are required");
	if (!(p->bits >= 1.0 && p->bits <= 8.0))
		return diag_fail(d, LLM_E_INVALID,
				 "convert: %g bits per weight (1 to 8)", p->bits);
	if (!((p->head_bits >= 1 && p->head_bits <= 8) || p->head_bits == 16))
		return diag_fail(d, LLM_E_INVALID,
				 "convert: head bits %d (1 to 8, or 16 to keep it)",
				 p->head_bits);
	if (cv_cb_parse(p->codebook, &j.cb) != 0)
		return diag_fail(d, LLM_E_INVALID,
				 "convert: codebook '%s' (mul1, mcg or 3inst)",
				 p->codebook);
	if (p->cal_rows < 1 || p->cal_cols < 16 || p->cal_rows > 100000 ||
	    p->cal_cols > 65536)
		return diag_fail(d, LLM_E_INVALID,
				 "convert: calibration of %zu rows of %zu tokens (at "
				 "least 1 row of 16)", p->cal_rows, p->cal_cols);
	{
		struct stat si, so;

		if (!strcmp(p->in_dir, p->out_dir) ||
		    (stat(p->in_dir, &si) == 0 && stat(p->out_dir, &so) == 0 &&
		     si.st_dev == so.st_dev && si.st_ino == so.st_ino))
			return diag_fail(d, LLM_E_INVALID,
					 "convert: the output directory must not be the "
					 "source");
	}
	out_existed = file_is_dir(p->out_dir);
	work = p->work_dir ? strdup(p->work_dir) : file_join(p->out_dir, "convert-work");
	if (!work)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	job = file_join(work, "job.json");

	mp.backend = p->backend;
	mp.n_threads = p->n_threads;
	mp.kv_type = LLM_KV_F32;
	rc = llm_model_open(p->in_dir, &mp, &j.m, d);
	if (rc < 0)
		goto out;
	j.cf = &j.m->cfg;
	if (j.cf->exl3) {
		rc = diag_fail(d, LLM_E_UNSUPPORTED,
			       "%s is already EXL3-quantized", p->in_dir);
		goto out;
	}
	rc = llm_st_open(p->in_dir, &j.src, d);
	if (rc < 0)
		goto out;
	strcpy(j.prefix, "model.");
	if (!llm_st_find(j.src, "model.layers.0.self_attn.q_proj.weight")) {
		rc = diag_fail(d, LLM_E_UNSUPPORTED,
			       "convert: %s: no model.layers.0.self_attn.q_proj.weight "
			       "(only the plain decoder layout is converted)",
			       p->in_dir);
		goto out;
	}
	j.max_items = 7 + 3 * (size_t)j.cf->n_expert + 3;
	j.n_slots = CV_H_EXPERT + (size_t)j.cf->n_expert + 1;
	j.items = calloc(j.max_items, sizeof *j.items);
	j.bits = malloc((size_t)j.cf->n_layer * j.max_items * sizeof *j.bits);
	j.h = calloc(j.n_slots, sizeof *j.h);
	j.hk = calloc(j.n_slots, sizeof *j.hk);
	j.h_rows = calloc(j.n_slots, sizeof *j.h_rows);
	if (!j.items || !j.bits || !j.h || !j.hk || !j.h_rows) {
		rc = diag_fail(d, LLM_E_NOMEM, "out of memory");
		goto out;
	}
	cv_allocate(&j);
	rc = cv_list_quantized(&j, d);
	if (rc < 0)
		goto out;
	rc = cv_calibration(&j, d);
	if (rc < 0)
		goto out;

	/* the work directory: new, or an unfinished job to resume */
	if (file_is_file(job)) {
		if (!p->resume) {
			rc = diag_fail(d, LLM_E_INVALID,
				       "%s holds an unfinished conversion: resume it "
				       "(--resume) or remove the directory", work);
			goto out;
		}
		rc = cv_read_job(&j, work, &next, d);
		if (rc < 0)
			goto out;
		if (next > j.cf->n_layer + 1) {
			rc = diag_fail(d, LLM_E_FORMAT, "%s: next layer %ld of %lld",
				       job, next, (long long)j.cf->n_layer);
			goto out;
		}
		for (l = 0; l < next && l < j.cf->n_layer; l++) {
			char *f = cv_layer_path(work, (long)l);

			rc = f ? cv_install_layer(&j, l, f, d)
			       : diag_fail(d, LLM_E_NOMEM, "out of memory");
			free(f);
			if (rc < 0) {
				diag_prefix(d, "resuming from %s", work);
				goto out;
			}
		}
	} else if (p->resume) {
		rc = diag_fail(d, LLM_E_INVALID,
			       "--resume: %s holds no unfinished conversion", work);
		goto out;
	} else {
		rc = file_mkdirs(work, d) < 0 ? LLM_E_IO : 0;
		if (rc == 0)
			rc = cv_write_job(&j, work, 0, d);
		if (rc < 0)
			goto out;
	}
	if (file_mkdirs(p->out_dir, d) < 0) {
		rc = LLM_E_IO;
		goto out;
	}
	/* made here (with the work directory inside it, or just now):
	 * readable from the start, so that a job finished by --resume,
	 * which finds it existing, ends with the same mode as one run */
	if (!out_existed)
		cv_publish(p->out_dir, 0777);

	j.t0 = clock_now_s();
	j.n_steps = p->head_bits != 16;
	for (l = 0; l < j.cf->n_layer; l++) {
		const size_t n = cv_layer_items(&j, l, j.items);
		size_t i;

		j.n_steps += n;
		if (l < next)
			j.step += n;
		for (i = 0; i < n; i++) {
			const double wn = (double)round128(j.items[i].in) *
					  (double)round128(j.items[i].out);

			j.w_total += wn;
			if (l < next)
				j.w_done += wn;
		}
	}
	if (p->head_bits != 16)
		j.w_total += (double)round128((size_t)j.cf->n_embd) *
			     (double)round128((size_t)j.cf->n_vocab);
	j.w_start = j.w_done;
	j.step += next > j.cf->n_layer ? 1 : 0;
	for (l = next; l <= j.cf->n_layer; l++) {
		char *f;

		if (l == j.cf->n_layer && p->head_bits == 16)
			break;
		if (p->max_layers > 0 && l - next >= p->max_layers) {
			rc = diag_fail(d, LLM_E_CANCELLED,
				       "stopped after %d layers (resume with --resume)",
				       p->max_layers);
			goto out;
		}
		f = l == j.cf->n_layer ? file_join(work, "head.safetensors")
				       : cv_layer_path(work, (long)l);
		rc = f ? cv_layer(&j, l, f, d) : diag_fail(d, LLM_E_NOMEM, "out of memory");
		free(f);
		if (rc == 0)
			rc = cv_write_job(&j, work, (long)l + 1, d);
		if (rc < 0)
			goto out;
	}
	rc = cv_compile(&j, work, d);
	if (rc == 0 && !p->keep_work)
		cv_remove_work(&j, work);
out:
	cv_drop_hessians(&j);
	free(j.h);
	free(j.hk);
	free(j.h_rows);
	free(j.items);
	if (j.qnames) {
		size_t q;

		for (q = 0; q < j.n_qnames; q++)
			free(j.qnames[q]);
		free(j.qnames);
	}
	gpu_buf_free(j.eg);
	gpu_buf_free(j.eu);
	free(j.xh);
	free(j.xt);
	free(j.hh);
	gpu_buf_free(j.xb);
	gpu_buf_free(j.hb);
	free(j.rows);
	free(j.bits);
	llm_st_close(j.src);
	llm_model_free(j.m);
	free(work);
	free(job);
	return rc;
}
