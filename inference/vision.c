/* inference/vision.c — the Qwen2.5-VL vision tower on the host, in float32
 * (the reference), and the same through a model backend's ops (the GPU
 * path, llm_vision_use_backend: see "the tower on a model's backend"
 * below).  Public API: inference/llm.h, section "Vision".
 *
 * From the image processor's patches (pixel_values: one row per 14 x 14 x
 * 2-frame x 3-channel patch, in the processor's order, which already puts
 * the 2 x 2 patches of each merged token next to each other) to one
 * embedding per merged token, as transformers' Qwen2_5_VisionTransformer:
 *   1. patch embedding: the Conv3d with kernel = stride is a linear map of
 *      each row (no bias);
 *   2. 2-D rotary positions: each patch's (row, column) in the patch grid,
 *      frequencies theta^(-2i/(head_dim/2)) for the first and second half
 *      of the rotated half of each head (the row's, then the column's);
 *   3. window order: merged tokens regrouped window by window (windows of
 *      window_size / merge / patch merged tokens a side, the grid padded
 *      to whole windows), every row and rotary angle moved with its token;
 *   4. depth blocks: x += proj(attention(rope(qkv(rmsnorm1(x))))), then
 *      x += down(silu(gate(h)) * up(h)), h = rmsnorm2(x); attention is
 *      bidirectional inside each window, or inside each frame for the
 *      blocks in fullatt_block_indexes;
 *   5. merger: rmsnorm, the 2 x 2 patches of a merged token as one row,
 *      linear, exact GELU, linear to the language model's width;
 *   6. the merged tokens put back in raster order.
 * RMS norms use eps 1e-6 (the vision tower's), linears keep their biases.
 *
 * llm_vision_preprocess is transformers' Qwen2VLImageProcessor for one RGB
 * image: the size from smart_resize (sides rounded half-to-even to
 * multiples of patch x merge, scaled into [min_pixels, max_pixels]), the
 * antialiased bicubic resize of 8-bit images that PyTorch does for it
 * (Pillow's Resample.c scheme: a = -0.5, the kernel widened by the scale
 * when shrinking, each output's weights normalised, a horizontal pass into
 * an 8-bit image, then a vertical one; but the weights as 16-bit integers
 * at the finest power-of-two scale their largest fits, not Pillow's 22
 * bits — Pillow 9.4 differs from the reference in 118 of 56,448 bytes of
 * the fixture image, this in none), x / 255, (x - mean) / std, the frame
 * repeated over the temporal patch, patches in the processor's order.
 */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inference/config_impl.h"
#include "inference/llm.h"
#include "inference/model_impl.h"
#include "inference/safetensors_impl.h"

#define VIS_EPS 1e-6f
#define VIS_THETA 10000.0

struct vis_block {
	float *n1, *n2;              /* [E] */
	float *qkv_w, *qkv_b;        /* [3E, E], [3E] */
	float *proj_w, *proj_b;      /* [E, E], [E] */
	float *gate_w, *gate_b;      /* [F, E], [F] */
	float *up_w, *up_b;          /* [F, E], [F] */
	float *down_w, *down_b;      /* [E, F], [E] */
	bool full;                   /* attention over the whole frame */
};

struct llm_vision {
	size_t E, H, F, out, depth, patch, merge, tps, C, window, row;
	/* image processor (preprocessor_config.json, CLIP's defaults) */
	float mean[3], std[3];
	size_t min_pixels, max_pixels;
	float *patch_w;              /* [E, row] */
	struct vis_block *blk;
	float *ln_q;                 /* [E] */
	float *m0_w, *m0_b;          /* [E m^2, E m^2] */
	float *m2_w, *m2_b;          /* [out, E m^2] */
	/* llm_vision_use_backend: the same weights on a model's backend
	 * (f32; q, k, v apart), or g NULL */
	struct gpu *g;
	struct vis_dev {
		struct gpu_buf *n1, *n2, *w[6], *b[6]; /* q k v proj gate up */
		struct gpu_buf *down_w, *down_b;
	} *dblk;
	struct gpu_buf *d_patch_w, *d_ln_q, *d_m0_w, *d_m0_b, *d_m2_w, *d_m2_b;
	struct gpu_buf *d_inv_freq; /* [hd / 2]: both axes' frequencies */
};

/* Tensor NAME with the dims given (0-terminated list) as a fresh float
 * array. */
static int load(struct llm_st_set *st, const char *name, float **out,
		struct diag *d, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
		int64_t d4)
{
	const int64_t shape[5] = { d0, d1, d2, d3, d4 };
	const struct llm_tensor_info *t;
	int n = d4 ? 5 : d3 ? 4 : d2 ? 3 : d1 ? 2 : 1;
	int rc = llm_st_expect(st, name, n, shape, &t, d);

	if (rc < 0)
		return rc;
	*out = malloc((size_t)t->n_elems * sizeof **out);
	if (!*out)
		return diag_fail(d, LLM_E_NOMEM, "out of memory (%s)", name);
	return llm_tensor_to_f32(t, *out, d);
}

/* preprocessor_config.json when present: image_mean, image_std, and the
 * pixel bounds (min_pixels / max_pixels, or size.shortest_edge /
 * size.longest_edge as transformers 5 writes them). */
static int load_processor(struct llm_vision *v, const char *dir, struct diag *d)
{
	static const float mean[3] = { 0.48145466f, 0.4578275f, 0.40821073f };
	static const float std[3] = { 0.26862954f, 0.26130258f, 0.27577711f };
	char path[4096];
	json_t *root, *a, *b, *size;
	json_error_t je;
	FILE *f;
	int i;

	memcpy(v->mean, mean, sizeof mean);
	memcpy(v->std, std, sizeof std);
	v->min_pixels = 56 * 56;
	v->max_pixels = 28 * 28 * 1280;
	snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
	f = fopen(path, "rb");
	if (!f)
		return 0; /* the defaults */
	fclose(f);
	root = json_load_file(path, 0, &je);
	if (!root)
		return diag_fail(d, LLM_E_FORMAT, "%s:%d: %s", path, je.line, je.text);
	a = json_object_get(root, "image_mean");
	b = json_object_get(root, "image_std");
	for (i = 0; i < 3; i++) {
		if (json_is_array(a) && json_is_number(json_array_get(a, (size_t)i)))
			v->mean[i] = (float)json_number_value(json_array_get(a, (size_t)i));
		if (json_is_array(b) && json_is_number(json_array_get(b, (size_t)i)))
			v->std[i] = (float)json_number_value(json_array_get(b, (size_t)i));
	}
	size = json_object_get(root, "size");
	a = json_object_get(root, "min_pixels");
	b = json_object_get(root, "max_pixels");
	if (!json_is_integer(a) && json_is_object(size))
		a = json_object_get(size, "shortest_edge");
	if (!json_is_integer(b) && json_is_object(size))
		b = json_object_get(size, "longest_edge");
	if (json_is_integer(a) && json_integer_value(a) > 0)
		v->min_pixels = (size_t)json_integer_value(a);
	if (json_is_integer(b) && json_integer_value(b) > 0)
		v->max_pixels = (size_t)json_integer_value(b);
	json_decref(root);
	for (i = 0; i < 3; i++)
		if (!(v->std[i] > 0.0f))
			return diag_fail(d, LLM_E_FORMAT, "%s: image_std must be positive",
					 path);
	if (v->min_pixels > v->max_pixels)
		return diag_fail(d, LLM_E_FORMAT, "%s: min_pixels %zu > max_pixels %zu",
				 path, v->min_pixels, v->max_pixels);
	return 0;
}

static void vis_dev_free(struct llm_vision *v)
{
	size_t l;
	int j;

	if (v->dblk)
		for (l = 0; l < v->depth; l++) {
			struct vis_dev *b = &v->dblk[l];

			gpu_buf_free(b->n1);
			gpu_buf_free(b->n2);
			for (j = 0; j < 6; j++) {
				gpu_buf_free(b->w[j]);
				gpu_buf_free(b->b[j]);
			}
			gpu_buf_free(b->down_w);
			gpu_buf_free(b->down_b);
		}
	free(v->dblk);
	v->dblk = NULL;
	gpu_buf_free(v->d_patch_w);
	gpu_buf_free(v->d_ln_q);
	gpu_buf_free(v->d_m0_w);
	gpu_buf_free(v->d_m0_b);
	gpu_buf_free(v->d_m2_w);
	gpu_buf_free(v->d_m2_b);
	gpu_buf_free(v->d_inv_freq);
	v->d_patch_w = v->d_ln_q = v->d_m0_w = v->d_m0_b = NULL;
	v->d_m2_w = v->d_m2_b = v->d_inv_freq = NULL;
	v->g = NULL;
}

void llm_vision_free(struct llm_vision *v)
{
	size_t l;

	if (!v)
		return;
	vis_dev_free(v);
	if (v->blk)
		for (l = 0; l < v->depth; l++) {
			struct vis_block *b = &v->blk[l];

			free(b->n1); free(b->n2); free(b->qkv_w); free(b->qkv_b);
			free(b->proj_w); free(b->proj_b); free(b->gate_w); free(b->gate_b);
			free(b->up_w); free(b->up_b); free(b->down_w); free(b->down_b);
		}
	free(v->blk);
	free(v->patch_w);
	free(v->ln_q);
	free(v->m0_w);
	free(v->m0_b);
	free(v->m2_w);
	free(v->m2_b);
	free(v);
}

int llm_vision_open(const char *dir, struct llm_vision **out, struct diag *d)
{
	struct llm_config cfg;
	struct llm_st_set *st = NULL;
	struct llm_vision *v;
	char name[96];
	size_t l, M;
	int rc, i;

	*out = NULL;
	rc = llm_config_load(dir, &cfg, d);
	if (rc < 0)
		return rc;
	if (!cfg.has_vision)
		return diag_fail(d, LLM_E_UNSUPPORTED,
				 "%s: %s has no vision tower (vision_config)", dir,
				 cfg.arch_name);
	v = calloc(1, sizeof *v);
	if (!v)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	v->E = (size_t)cfg.vision.n_embd;
	v->H = (size_t)cfg.vision.n_head;
	v->F = (size_t)cfg.vision.n_ff;
	v->out = (size_t)cfg.vision.out_embd;
	v->depth = (size_t)cfg.vision.depth;
	v->patch = (size_t)cfg.vision.patch_size;
	v->merge = (size_t)cfg.vision.merge_size;
	v->tps = (size_t)cfg.vision.temporal_patch_size;
	v->C = (size_t)cfg.vision.in_channels;
	v->window = (size_t)cfg.vision.window_size;
	v->row = v->C * v->tps * v->patch * v->patch;
	if ((v->E / v->H) % 4 || v->window % (v->merge * v->patch) ||
	    v->window < v->merge * v->patch) {
		llm_vision_free(v);
		return diag_fail(d, LLM_E_UNSUPPORTED,
				 "%s: vision head size %zu (must be a multiple of 4) or "
				 "window %zu (a multiple of merge x patch) not supported",
				 dir, v->E / v->H, v->window);
	}
	M = v->E * v->merge * v->merge;
	rc = load_processor(v, dir, d);
	if (rc < 0)
		goto fail;
	rc = llm_st_open(dir, &st, d);
	if (rc < 0)
		goto fail;
	v->blk = calloc(v->depth, sizeof *v->blk);
	if (!v->blk) {
		rc = diag_fail(d, LLM_E_NOMEM, "out of memory");
		goto fail;
	}
	rc = load(st, "visual.patch_embed.proj.weight", &v->patch_w, d, (int64_t)v->E,
		  (int64_t)v->C, (int64_t)v->tps, (int64_t)v->patch, (int64_t)v->patch);
	for (l = 0; l < v->depth && rc == 0; l++) {
		struct vis_block *b = &v->blk[l];
		const int64_t E = (int64_t)v->E, F = (int64_t)v->F;
#define LD(field, suffix, ...)                                                 \
	do {                                                                   \
		if (rc == 0) {                                                 \
			snprintf(name, sizeof name, "visual.blocks.%zu.%s", l, suffix); \
			rc = load(st, name, &b->field, d, __VA_ARGS__);         \
		}                                                              \
	} while (0)
		LD(n1, "norm1.weight", E, 0, 0, 0, 0);
		LD(n2, "norm2.weight", E, 0, 0, 0, 0);
		LD(qkv_w, "attn.qkv.weight", 3 * E, E, 0, 0, 0);
		LD(qkv_b, "attn.qkv.bias", 3 * E, 0, 0, 0, 0);
		LD(proj_w, "attn.proj.weight", E, E, 0, 0, 0);
		LD(proj_b, "attn.proj.bias", E, 0, 0, 0, 0);
		LD(gate_w, "mlp.gate_proj.weight", F, E, 0, 0, 0);
		LD(gate_b, "mlp.gate_proj.bias", F, 0, 0, 0, 0);
		LD(up_w, "mlp.up_proj.weight", F, E, 0, 0, 0);
		LD(up_b, "mlp.up_proj.bias", F, 0, 0, 0, 0);
		LD(down_w, "mlp.down_proj.weight", E, F, 0, 0, 0);
		LD(down_b, "mlp.down_proj.bias", E, 0, 0, 0, 0);
#undef LD
		for (i = 0; i < cfg.vision.n_fullatt; i++)
			if ((size_t)cfg.vision.fullatt_blocks[i] == l)
				b->full = true;
	}
	if (rc == 0)
		rc = load(st, "visual.merger.ln_q.weight", &v->ln_q, d, (int64_t)v->E, 0, 0,
			  0, 0);
	if (rc == 0)
		rc = load(st, "visual.merger.mlp.0.weight", &v->m0_w, d, (int64_t)M,
			  (int64_t)M, 0, 0, 0);
	if (rc == 0)
		rc = load(st, "visual.merger.mlp.0.bias", &v->m0_b, d, (int64_t)M, 0, 0, 0, 0);
	if (rc == 0)
		rc = load(st, "visual.merger.mlp.2.weight", &v->m2_w, d, (int64_t)v->out,
			  (int64_t)M, 0, 0, 0);
	if (rc == 0)
		rc = load(st, "visual.merger.mlp.2.bias", &v->m2_b, d, (int64_t)v->out, 0, 0,
			  0, 0);
	if (rc < 0)
		goto fail;
	llm_st_close(st);
	*out = v;
	return 0;
fail:
	llm_st_close(st);
	llm_vision_free(v);
	diag_prefix(d, "vision tower");
	return rc;
}

size_t llm_vision_patch_len(const struct llm_vision *v) { return v->row; }
size_t llm_vision_n_embd(const struct llm_vision *v) { return v->out; }
size_t llm_vision_merge(const struct llm_vision *v) { return v->merge; }

/* y[n, o] = x[n, i] . W[o, i] + b[o] (b may be NULL). */
static void linear(float *y, const float *x, size_t n, size_t in, const float *W,
		   const float *b, size_t out)
{
	size_t r, o, i;

	for (r = 0; r < n; r++) {
		const float *xr = x + r * in;
		float *yr = y + r * out;

		for (o = 0; o < out; o++) {
			const float *w = W + o * in;
			float s = 0.0f;

			for (i = 0; i < in; i++)
				s += xr[i] * w[i];
			yr[o] = s + (b ? b[o] : 0.0f);
		}
	}
}

static void rmsnorm(float *y, const float *x, size_t n, size_t E, const float *w)
{
	size_t r, i;

	for (r = 0; r < n; r++) {
		const float *xr = x + r * E;
		float s = 0.0f, inv;

		for (i = 0; i < E; i++)
			s += xr[i] * xr[i];
		inv = 1.0f / sqrtf(s / (float)E + VIS_EPS);
		for (i = 0; i < E; i++)
			y[r * E + i] = w[i] * (xr[i] * inv);
	}
}

/* Rotate head vector x[hd] in place: x * cos + rotate_half(x) * sin, the
 * angles ang[hd / 2] used for both halves. */
static void rope(float *x, size_t hd, const float *cs, const float *sn)
{
	const size_t h = hd / 2;
	size_t i;

	for (i = 0; i < h; i++) {
		const float a = x[i], b = x[i + h];

		x[i] = a * cs[i] - b * sn[i];
		x[i + h] = b * cs[i] + a * sn[i];
	}
}

int llm_vision_n_tokens(const struct llm_vision *v, const int32_t grid[3], size_t *n)
{
	if (!v || !grid || grid[0] < 1 || grid[1] < 1 || grid[2] < 1 ||
	    grid[1] % (int32_t)v->merge || grid[2] % (int32_t)v->merge)
		return LLM_E_INVALID;
	*n = (size_t)grid[0] * (size_t)grid[1] * (size_t)grid[2] / (v->merge * v->merge);
	return 0;
}

/* The window order of a grid's merged tokens (raster order within a
 * window, windows in raster order, frame by frame: T frames of lh x lw
 * merged tokens, windows of vws a side, mu patches a token): win[n_tok]
 * the raster index of each token in window order, seg[] the patch offsets
 * where windows start (and the end), fseg[T + 1] where frames start.
 * Returns the entries of seg. */
static size_t vis_layout(size_t T, size_t lh, size_t lw, size_t vws, size_t mu,
			 size_t *win, size_t *seg, size_t *fseg)
{
	const size_t nwh = lh / vws + 1, nww = lw / vws + 1;
	size_t k = 0, n_seg = 0, t, r, c;

	seg[n_seg++] = 0;
	for (t = 0; t < T; t++)
		for (size_t wy = 0; wy < nwh; wy++)
			for (size_t wx = 0; wx < nww; wx++) {
				size_t cnt = 0;

				for (r = wy * vws; r < (wy + 1) * vws && r < lh; r++)
					for (c = wx * vws; c < (wx + 1) * vws && c < lw; c++) {
						win[k++] = (t * lh + r) * lw + c;
						cnt++;
					}
				if (cnt)
					seg[n_seg++] = k * mu;
			}
	for (t = 0; t <= T; t++)
		fseg[t] = t * lh * lw * mu;
	return n_seg;
}

/* The merger's exact GELU, x[0..n) in place (both paths: the device has
 * no such op). */
static void vis_gelu(float *x, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}

/* The rotary frequency f (< head_dim / 4) of both axes. */
static float vis_inv_freq(size_t hd, size_t f)
{
	return (float)pow(VIS_THETA, -(double)(2 * f) / (double)(hd / 2));
}

static int vis_encode_dev(const struct llm_vision *v, const float *pixels,
			  size_t n, const int32_t grid[3], float *out,
			  struct diag *d);

int llm_vision_encode(const struct llm_vision *v, const float *pixels, size_t n,
		      const int32_t grid[3], float *out, struct diag *d)
{
	const size_t E = v->E, H = v->H, hd = E / H, F = v->F, m = v->merge;
	const size_t mu = m * m, M = E * mu;
	const size_t T = grid ? (size_t)(grid[0] > 0 ? grid[0] : 0) : 0;
	const size_t gh = grid ? (size_t)(grid[1] > 0 ? grid[1] : 0) : 0;
	const size_t gw = grid ? (size_t)(grid[2] > 0 ? grid[2] : 0) : 0;
	const size_t lh = gh / m, lw = gw / m, n_tok = n / mu;
	const size_t vws = v->window / m / v->patch; /* merged tokens a window side */
	float *x = NULL, *xn = NULL, *qkv = NULL, *att = NULL, *ff = NULL, *up = NULL;
	float *cs = NULL, *sn = NULL, *sc = NULL, *tmp = NULL;
	size_t *win = NULL, *seg = NULL, n_seg = 0, *fseg = NULL;
	size_t i, j, l, c;
	int rc = 0;

	if (!grid || T < 1 || gh < 1 || gw < 1 || gh % m || gw % m || n != T * gh * gw)
		return diag_fail(d, LLM_E_INVALID,
				 "vision: %zu patches for a grid of %d x %d x %d (each side a "
				 "multiple of %zu)",
				 n, grid ? grid[0] : 0, grid ? grid[1] : 0, grid ? grid[2] : 0,
				 m);
	if (v->g)
		return vis_encode_dev(v, pixels, n, grid, out, d);
	x = malloc(n * E * sizeof *x);
	xn = malloc(n * (M > E ? M : E) * sizeof *xn);
	qkv = malloc(n * 3 * E * sizeof *qkv);
	att = malloc(n * E * sizeof *att);
	ff = malloc(n * F * sizeof *ff);
	up = malloc(n * F * sizeof *up);
	tmp = malloc(n_tok * (M > E ? M : E) * sizeof *tmp);
	cs = malloc(n * (hd / 2) * sizeof *cs);
	sn = malloc(n * (hd / 2) * sizeof *sn);
	sc = malloc(n * sizeof *sc);
	win = malloc(n_tok * sizeof *win);
	seg = malloc((n_tok + 1) * sizeof *seg);
	fseg = malloc((T + 1) * sizeof *fseg);
	if (!x || !xn || !qkv || !att || !ff || !up || !tmp || !cs || !sn || !sc ||
	    !win || !seg || !fseg) {
		rc = diag_fail(d, LLM_E_NOMEM, "vision: out of memory (%zu patches)", n);
		goto out;
	}

	/* 3. the window order */
	n_seg = vis_layout(T, lh, lw, vws, mu, win, seg, fseg);

	/* 1. patch embedding, rows put in window order (a merged token's mu
	 * patches stay together); 2. their rotary angles */
	{
		const size_t q = hd / 4; /* frequencies per axis */

		for (i = 0; i < n_tok; i++) {
			const size_t src = win[i];
			/* the merged token's place in the grid */
			const size_t tt = src / (lh * lw), rem = src % (lh * lw);
			const size_t br = rem / lw, bc = rem % lw;

			(void)tt;
			linear(x + i * mu * E, pixels + src * mu * v->row, mu, v->row, v->patch_w,
			       NULL, E);
			for (j = 0; j < mu; j++) {
				const size_t row = br * m + j / m, col = bc * m + j % m;
				float *pc = cs + (i * mu + j) * (hd / 2);
				float *ps = sn + (i * mu + j) * (hd / 2);

				for (size_t f = 0; f < q; f++) {
					const float inv = vis_inv_freq(hd, f);
					const float ar = (float)row * inv;
					const float ac = (float)col * inv;

					pc[f] = cosf(ar);
					ps[f] = sinf(ar);
					pc[q + f] = cosf(ac);
					ps[q + f] = sinf(ac);
				}
			}
		}
	}

	/* 4. the blocks */
	for (l = 0; l < v->depth; l++) {
		const struct vis_block *b = &v->blk[l];
		const size_t *sg = b->full ? fseg : seg;
		const size_t ns = b->full ? T : n_seg - 1;
		const float scale = 1.0f / sqrtf((float)hd);
		size_t s, h;

		rmsnorm(xn, x, n, E, b->n1);
		linear(qkv, xn, n, E, b->qkv_w, b->qkv_b, 3 * E);
		for (i = 0; i < n; i++)
			for (h = 0; h < H; h++) {
				rope(qkv + i * 3 * E + h * hd, hd, cs + i * (hd / 2),
				     sn + i * (hd / 2));
				rope(qkv + i * 3 * E + E + h * hd, hd, cs + i * (hd / 2),
				     sn + i * (hd / 2));
			}
		for (s = 0; s < ns; s++) {
			const size_t a0 = sg[s], a1 = sg[s + 1];

			for (h = 0; h < H; h++)
				for (i = a0; i < a1; i++) {
					const float *qv = qkv + i * 3 * E + h * hd;
					float mx = -INFINITY, sum = 0.0f;
					float *o = att + i * E + h * hd;

					for (j = a0; j < a1; j++) {
						const float *kv = qkv + j * 3 * E + E + h * hd;
						float dot = 0.0f;

						for (c = 0; c < hd; c++)
							dot += qv[c] * kv[c];
						sc[j] = dot * scale;
						mx = sc[j] > mx ? sc[j] : mx;
					}
					for (j = a0; j < a1; j++) {
						sc[j] = expf(sc[j] - mx);
						sum += sc[j];
					}
					for (c = 0; c < hd; c++)
						o[c] = 0.0f;
					for (j = a0; j < a1; j++) {
						const float *vv = qkv + j * 3 * E + 2 * E + h * hd;
						const float p = sc[j] / sum;

						for (c = 0; c < hd; c++)
							o[c] += p * vv[c];
					}
				}
		}
		linear(xn, att, n, E, b->proj_w, b->proj_b, E);
		for (i = 0; i < n * E; i++)
			x[i] += xn[i];
		rmsnorm(xn, x, n, E, b->n2);
		linear(ff, xn, n, E, b->gate_w, b->gate_b, F);
		linear(up, xn, n, E, b->up_w, b->up_b, F);
		for (i = 0; i < n * F; i++)
			ff[i] = ff[i] / (1.0f + expf(-ff[i])) * up[i];
		linear(xn, ff, n, F, b->down_w, b->down_b, E);
		for (i = 0; i < n * E; i++)
			x[i] += xn[i];
	}

	/* 5. merger (rows of mu patches), 6. back to raster order */
	rmsnorm(xn, x, n, E, v->ln_q);
	linear(tmp, xn, n_tok, M, v->m0_w, v->m0_b, M);
	vis_gelu(tmp, n_tok * M);
	for (i = 0; i < n_tok; i++)
		linear(out + win[i] * v->out, tmp + i * M, 1, M, v->m2_w, v->m2_b, v->out);
out:
	free(x); free(xn); free(qkv); free(att); free(ff); free(up); free(tmp);
	free(cs); free(sn); free(sc); free(win); free(seg); free(fseg);
	return rc;
}

/* ---- the tower on a model's backend ------------------------------------
 * The same steps as above through the backend's ops (gpu.h), so that the
 * tower runs where the language model does: linears with their biases
 * (q, k and v as three parts of one gpu_matmul_multi), the 2-D rotary
 * angles as MRoPE with sections (hd/4, hd/4, 0) over the patch's (row,
 * column, 0) and each axis's frequencies, and the bidirectional attention
 * inside each window (or frame) as gpu_attention over a paged pool in
 * which every window is a sequence: its rows are stored at positions
 * 0 .. len - 1 and each attends from the last one, so it sees the whole
 * window.  The window order is applied to the pixel rows before the
 * upload and undone on the embeddings after the download; the merger's
 * exact GELU runs on the host between its two linears (no such op; one
 * round trip an image). */

/* A host array as a new f32 buffer of g. */
static int vis_up(struct gpu *g, const float *src, size_t n, struct gpu_buf **out,
		  struct diag *d)
{
	int rc = gpu_buf_new(g, GPU_DTYPE_F32, n, out, d);

	if (rc == 0)
		rc = gpu_buf_write(*out, 0, src, n, d);
	return rc;
}

int llm_vision_use_backend(struct llm_vision *v, struct llm_model *m,
			   struct diag *d)
{
	const size_t E = v->E, F = v->F, hd = E / v->H, M = E * v->merge * v->merge;
	struct gpu *g = m->g;
	float *inv = NULL;
	size_t l, f;
	int rc = 0, j;

	vis_dev_free(v);
	v->dblk = calloc(v->depth, sizeof *v->dblk);
	inv = malloc(hd / 2 * sizeof *inv);
	if (!v->dblk || !inv) {
		free(inv);
		vis_dev_free(v);
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	}
	for (f = 0; f < hd / 4; f++)
		inv[f] = inv[hd / 4 + f] = vis_inv_freq(hd, f);
	rc = vis_up(g, inv, hd / 2, &v->d_inv_freq, d);
	free(inv);
	if (rc == 0)
		rc = vis_up(g, v->patch_w, E * v->row, &v->d_patch_w, d);
	for (l = 0; l < v->depth && rc == 0; l++) {
		const struct vis_block *b = &v->blk[l];
		struct vis_dev *db = &v->dblk[l];
		const float *w[6] = { b->qkv_w, b->qkv_w + E * E, b->qkv_w + 2 * E * E,
				      b->proj_w, b->gate_w, b->up_w };
		const float *bs[6] = { b->qkv_b, b->qkv_b + E, b->qkv_b + 2 * E,
				       b->proj_b, b->gate_b, b->up_b };
		const size_t rows[6] = { E, E, E, E, F, F };

		rc = vis_up(g, b->n1, E, &db->n1, d);
		if (rc == 0)
			rc = vis_up(g, b->n2, E, &db->n2, d);
		for (j = 0; j < 6 && rc == 0; j++) {
			rc = vis_up(g, w[j], rows[j] * E, &db->w[j], d);
			if (rc == 0)
				rc = vis_up(g, bs[j], rows[j], &db->b[j], d);
		}
		if (rc == 0)
			rc = vis_up(g, b->down_w, E * F, &db->down_w, d);
		if (rc == 0)
			rc = vis_up(g, b->down_b, E, &db->down_b, d);
	}
	if (rc == 0)
		rc = vis_up(g, v->ln_q, E, &v->d_ln_q, d);
	if (rc == 0)
		rc = vis_up(g, v->m0_w, M * M, &v->d_m0_w, d);
	if (rc == 0)
		rc = vis_up(g, v->m0_b, M, &v->d_m0_b, d);
	if (rc == 0)
		rc = vis_up(g, v->m2_w, v->out * M, &v->d_m2_w, d);
	if (rc == 0)
		rc = vis_up(g, v->m2_b, v->out, &v->d_m2_b, d);
	if (rc < 0) {
		vis_dev_free(v);
		diag_prefix(d, "vision tower on %s", gpu_describe(g));
		return rc == GPU_E_NOMEM ? LLM_E_NOMEM : LLM_E_BACKEND;
	}
	v->g = g;
	return 0;
}

#define VIS_PAGE 256 /* positions a page of the attention pool */

/* One attention layout (windows, or frames): for the patch rows in window
 * order, the sequence (segment) of each row, its position in it, the
 * position it attends from (its segment's last) and the page table;
 * *n_pages the pages it takes. */
struct vis_att {
	int32_t *seq, *pos, *last, *pt;
	size_t n_seq, max_pages, n_pages;
};

static int vis_att_make(struct vis_att *a, const size_t *sg, size_t ns, size_t n)
{
	size_t s, i, p, next = 0;

	memset(a, 0, sizeof *a);
	for (s = 0; s < ns; s++) {
		const size_t pg = (sg[s + 1] - sg[s] + VIS_PAGE - 1) / VIS_PAGE;

		a->max_pages = pg > a->max_pages ? pg : a->max_pages;
	}
	a->n_seq = ns;
	a->seq = malloc(n * sizeof *a->seq);
	a->pos = malloc(n * sizeof *a->pos);
	a->last = malloc(n * sizeof *a->last);
	a->pt = malloc(ns * a->max_pages * sizeof *a->pt);
	if (!a->seq || !a->pos || !a->last || !a->pt)
		return -1;
	for (s = 0; s < ns; s++) {
		for (p = 0; p < a->max_pages; p++)
			a->pt[s * a->max_pages + p] =
				p * VIS_PAGE < sg[s + 1] - sg[s] ? (int32_t)next++ : -1;
		for (i = sg[s]; i < sg[s + 1]; i++) {
			a->seq[i] = (int32_t)s;
			a->pos[i] = (int32_t)(i - sg[s]);
			a->last[i] = (int32_t)(sg[s + 1] - sg[s] - 1);
		}
	}
	a->n_pages = next;
	return 0;
}

static void vis_att_free(struct vis_att *a)
{
	free(a->seq);
	free(a->pos);
	free(a->last);
	free(a->pt);
}

static int vis_encode_dev(const struct llm_vision *v, const float *pixels,
			  size_t n, const int32_t grid[3], float *out,
			  struct diag *d)
{
	const size_t E = v->E, H = v->H, hd = E / H, F = v->F, m = v->merge;
	const size_t mu = m * m, M = E * mu, T = (size_t)grid[0];
	const size_t lh = (size_t)grid[1] / m, lw = (size_t)grid[2] / m;
	const size_t n_tok = n / mu, vws = v->window / m / v->patch, V = v->out;
	struct gpu *g = v->g;
	const int sec[3] = { (int)(hd / 4), (int)(hd / 4), 0 };
	const struct gpu_rope rp = { hd, 1.0f, sec, NULL, NULL, 0.0f };
	const float scale = 1.0f / sqrtf((float)hd);
	size_t *win = malloc(n_tok * sizeof *win), *seg = malloc((n_tok + 1) * sizeof *seg);
	size_t *fseg = malloc((T + 1) * sizeof *fseg), n_seg, i, j, l, np;
	float *px = malloc(n * v->row * sizeof *px), *tmp = NULL, *ob = NULL;
	int32_t *pos = malloc(3 * n * sizeof *pos);
	struct vis_att lay[2];
	/* device: x, xn ([n, E] = [n_tok, M]), q, k, v, att, o, gate, up,
	 * pixels, positions, K and V pools, the merger's two outputs, and
	 * per layout the stored positions, the attending ones, the table */
	enum { X, XN, Q, K, VV, ATT, O, GATE, UP, PX, POS, KP, VP, TMP, OUT,
	       SEQ0, SPOS0, APOS0, PT0, SEQ1, SPOS1, APOS1, PT1, NB };
	struct gpu_buf *b[NB];
	int rc = 0, ok;

	memset(b, 0, sizeof b);
	memset(lay, 0, sizeof lay);
	if (!win || !seg || !fseg || !px || !pos) {
		rc = diag_fail(d, LLM_E_NOMEM, "vision: out of memory (%zu patches)", n);
		goto out;
	}
	n_seg = vis_layout(T, lh, lw, vws, mu, win, seg, fseg);
	for (i = 0; i < n_tok; i++) {
		const size_t rem = win[i] % (lh * lw), br = rem / lw, bc = rem % lw;

		memcpy(px + i * mu * v->row, pixels + win[i] * mu * v->row,
		       mu * v->row * sizeof *px);
		for (j = 0; j < mu; j++) {
			pos[i * mu + j] = (int32_t)(br * m + j / m);
			pos[n + i * mu + j] = (int32_t)(bc * m + j % m);
			pos[2 * n + i * mu + j] = 0;
		}
	}
	if (vis_att_make(&lay[0], seg, n_seg - 1, n) < 0 ||
	    vis_att_make(&lay[1], fseg, T, n) < 0) {
		rc = diag_fail(d, LLM_E_NOMEM, "vision: out of memory (%zu patches)", n);
		goto out;
	}
	np = lay[0].n_pages > lay[1].n_pages ? lay[0].n_pages : lay[1].n_pages;
	{
		const size_t cnt[NB] = {
			n * E, n * E, n * E, n * E, n * E, n * E, n * E, n * F, n * F,
			n * v->row, 3 * n, np * VIS_PAGE * E, np * VIS_PAGE * E,
			n_tok * M, n_tok * V,
			n, n, n, lay[0].n_seq * lay[0].max_pages,
			n, n, n, lay[1].n_seq * lay[1].max_pages,
		};
		const void *src[NB] = {
			[PX] = px, [POS] = pos,
			[SEQ0] = lay[0].seq, [SPOS0] = lay[0].pos, [APOS0] = lay[0].last,
			[PT0] = lay[0].pt, [SEQ1] = lay[1].seq, [SPOS1] = lay[1].pos,
			[APOS1] = lay[1].last, [PT1] = lay[1].pt,
		};

		for (j = 0; j < NB && rc == 0; j++) {
			const enum gpu_dtype t = j == POS || j >= SEQ0 ? GPU_DTYPE_I32 :
							      GPU_DTYPE_F32;

			rc = gpu_buf_new(g, t, cnt[j], &b[j], d);
			if (rc == 0 && src[j])
				rc = gpu_buf_write(b[j], 0, src[j], cnt[j], d);
		}
	}
	ok = rc == 0;
#define VOP(call)                                                            \
	do {                                                                 \
		if (ok && (rc = (call)) < 0)                                 \
			ok = 0;                                              \
	} while (0)
	VOP(gpu_matmul(g, b[X], b[PX], v->d_patch_w, NULL, n, v->row, E, d));
	for (l = 0; l < v->depth && ok; l++) {
		const struct vis_dev *db = &v->dblk[l];
		const int f = v->blk[l].full;
		const struct gpu_kv_pool pool = { b[KP], b[VP], np, VIS_PAGE, H, hd,
						  0, 0, NULL, NULL };
		const struct gpu_kv_batch st = { n, b[f ? SEQ1 : SEQ0],
						 b[f ? SPOS1 : SPOS0],
						 b[f ? PT1 : PT0], lay[f].n_seq,
						 lay[f].max_pages, false };
		const struct gpu_kv_batch at = { n, b[f ? SEQ1 : SEQ0],
						 b[f ? APOS1 : APOS0],
						 b[f ? PT1 : PT0], lay[f].n_seq,
						 lay[f].max_pages, false };
		const struct gpu_matmul_part qkv[3] = {
			{ b[Q], db->w[0], db->b[0], E }, { b[K], db->w[1], db->b[1], E },
			{ b[VV], db->w[2], db->b[2], E } };
		const struct gpu_matmul_part gu[2] = {
			{ b[GATE], db->w[4], db->b[4], F }, { b[UP], db->w[5], db->b[5], F } };

		VOP(gpu_rmsnorm(g, b[XN], b[X], db->n1, n, E, VIS_EPS, d));
		VOP(gpu_matmul_multi(g, b[XN], n, E, qkv, 3, d));
		VOP(gpu_rope(g, b[Q], n, H, hd, b[POS], v->d_inv_freq, &rp, d));
		VOP(gpu_rope(g, b[K], n, H, hd, b[POS], v->d_inv_freq, &rp, d));
		VOP(gpu_kv_store(g, &pool, &st, b[K], b[VV], d));
		VOP(gpu_attention(g, b[ATT], b[Q], &pool, &at, H, scale, 0, d));
		VOP(gpu_matmul(g, b[O], b[ATT], db->w[3], db->b[3], n, E, E, d));
		VOP(gpu_add_rmsnorm(g, b[X], b[XN], b[O], db->n2, n, E, VIS_EPS, d));
		VOP(gpu_matmul_multi(g, b[XN], n, E, gu, 2, d));
		VOP(gpu_swiglu(g, b[GATE], b[GATE], b[UP], n * F, d));
		VOP(gpu_matmul(g, b[O], b[GATE], db->down_w, db->down_b, n, F, E, d));
		VOP(gpu_add(g, b[X], b[X], b[O], n * E, d));
	}
	/* 5. merger: the rms-normed rows of mu patches are rows of M */
	VOP(gpu_rmsnorm(g, b[XN], b[X], v->d_ln_q, n, E, VIS_EPS, d));
	VOP(gpu_matmul(g, b[TMP], b[XN], v->d_m0_w, v->d_m0_b, n_tok, M, M, d));
	if (ok) {
		tmp = malloc(n_tok * M * sizeof *tmp);
		ob = malloc(n_tok * V * sizeof *ob);
		if (!tmp || !ob) {
			rc = diag_fail(d, LLM_E_NOMEM, "vision: out of memory");
			goto out;
		}
	}
	VOP(gpu_buf_read(b[TMP], 0, tmp, n_tok * M, d));
	if (ok)
		vis_gelu(tmp, n_tok * M);
	VOP(gpu_buf_write(b[TMP], 0, tmp, n_tok * M, d));
	VOP(gpu_matmul(g, b[OUT], b[TMP], v->d_m2_w, v->d_m2_b, n_tok, M, V, d));
	VOP(gpu_buf_read(b[OUT], 0, ob, n_tok * V, d));
#undef VOP
	if (ok) /* 6. back to raster order */
		for (i = 0; i < n_tok; i++)
			memcpy(out + win[i] * V, ob + i * V, V * sizeof *out);
	if (rc < 0) {
		diag_prefix(d, "vision tower on %s", gpu_describe(g));
		rc = rc == GPU_E_NOMEM ? LLM_E_NOMEM : LLM_E_BACKEND;
	}
out:
	for (j = 0; j < NB; j++)
		gpu_buf_free(b[j]);
	vis_att_free(&lay[0]);
	vis_att_free(&lay[1]);
	free(win);
	free(seg);
	free(fseg);
	free(px);
	free(pos);
	free(tmp);
	free(ob);
	return rc;
}

/* ---- the image processor ---------------------------------------------- */

void llm_vision_pixel_bounds(const struct llm_vision *v, size_t *min_pixels,
			     size_t *max_pixels)
{
	*min_pixels = v->min_pixels;
	*max_pixels = v->max_pixels;
}

int llm_vision_check_size(int w, int h, struct diag *d)
{
	if (w < 1 || h < 1 || (double)w / h > 200.0 || (double)h / w > 200.0)
		return diag_fail(d, LLM_E_INVALID,
				 "vision: an image of %d x %d pixels (each side at least 1, "
				 "sides within 200:1)", w, h);
	return 0;
}

int llm_vision_fit(const struct llm_vision *v, int w, int h, size_t min_pixels,
		   size_t max_pixels, int *ow, int *oh)
{
	const double f = (double)(v->patch * v->merge);
	double hb, wb;

	if (llm_vision_check_size(w, h, NULL) < 0)
		return LLM_E_INVALID;
	/* Python's round: half to even (the default rounding mode) */
	hb = fmax(f, nearbyint(h / f) * f);
	wb = fmax(f, nearbyint(w / f) * f);
	if (hb * wb > (double)max_pixels) {
		const double beta = sqrt((double)h * w / (double)max_pixels);

		hb = fmax(f, floor(h / beta / f) * f);
		wb = fmax(f, floor(w / beta / f) * f);
	} else if (hb * wb < (double)min_pixels) {
		const double beta = sqrt((double)min_pixels / ((double)h * w));

		hb = ceil(h * beta / f) * f;
		wb = ceil(w * beta / f) * f;
	}
	*ow = (int)wb;
	*oh = (int)hb;
	return 0;
}

static double bicubic(double x)
{
	const double a = -0.5;

	if (x < 0.0)
		x = -x;
	if (x < 1.0)
		return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
	if (x < 2.0)
		return (((x - 5) * x + 8) * x - 4) * a;
	return 0.0;
}

/* One axis of the resize: per output index its first input index and
 * count (bounds) and ksize fixed-point weights with *bits fractional bits.
 * Returns ksize, 0 on no memory. */
static int aa_coeffs(int in, int out, int **bounds, int32_t **kk, int *bits)
{
	const double scale = (double)in / out;
	const double fs = scale < 1.0 ? 1.0 : scale, support = 2.0 * fs;
	const int ksize = (int)ceil(support) * 2 + 1;
	double *k = malloc((size_t)out * (size_t)ksize * sizeof *k), mw = 0.0;
	int xx, x, p;

	*bounds = malloc((size_t)out * 2 * sizeof **bounds);
	*kk = malloc((size_t)out * (size_t)ksize * sizeof **kk);
	if (!k || !*bounds || !*kk) {
		free(k);
		return 0;
	}
	for (xx = 0; xx < out; xx++) {
		const double center = (xx + 0.5) * scale, ss = 1.0 / fs;
		double ww = 0.0;
		int xmin = (int)(center - support + 0.5), xmax;

		if (xmin < 0)
			xmin = 0;
		xmax = (int)(center + support + 0.5);
		if (xmax > in)
			xmax = in;
		xmax -= xmin;
		for (x = 0; x < xmax; x++) {
			k[xx * ksize + x] = bicubic((x + xmin - center + 0.5) * ss);
			ww += k[xx * ksize + x];
		}
		for (x = 0; x < ksize; x++) {
			double *w = &k[xx * ksize + x];

			*w = x < xmax && ww != 0.0 ? *w / ww : 0.0;
			mw = *w > mw ? *w : mw;
		}
		(*bounds)[xx * 2] = xmin;
		(*bounds)[xx * 2 + 1] = xmax;
	}
	/* the most fractional bits with the largest weight times 2 still
	 * below 2^15 */
	for (p = 0; p < 22; p++)
		if ((int)(0.5 + mw * (double)(1 << (p + 1))) >= (1 << 15))
			break;
	for (x = 0; x < out * ksize; x++) {
		const double w = k[x] * (double)(1 << p);

		(*kk)[x] = (int32_t)(w < 0 ? w - 0.5 : w + 0.5);
	}
	*bits = p;
	free(k);
	return ksize;
}

static uint8_t clip8(int64_t v, int bits)
{
	v >>= bits;
	return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* The antialiased bicubic resize of an RGB8 image; *out fresh.  0 or -1
 * (no memory). */
static int aa_resize(const uint8_t *in, int w, int h, int ow, int oh, uint8_t **out)
{
	int *bx = NULL, *by = NULL, kx = 0, ky = 0, px = 0, py = 0, y0, y1, x, y, c, i;
	int32_t *kkx = NULL, *kky = NULL;
	uint8_t *tmp = NULL, *res = NULL;
	const uint8_t *src = in;
	int sw = w, sh = h, rc = -1;

	kx = aa_coeffs(w, ow, &bx, &kkx, &px);
	ky = aa_coeffs(h, oh, &by, &kky, &py);
	if (!kx || !ky)
		goto out;
	/* the rows the vertical pass reads */
	y0 = by[0];
	y1 = by[(oh - 1) * 2] + by[(oh - 1) * 2 + 1];
	if (ow != w) {
		tmp = malloc((size_t)ow * (size_t)(y1 - y0) * 3);
		if (!tmp)
			goto out;
		for (y = 0; y < y1 - y0; y++)
			for (x = 0; x < ow; x++) {
				const int xmin = bx[x * 2], xn = bx[x * 2 + 1];
				const int32_t *k = kkx + (size_t)x * kx;

				for (c = 0; c < 3; c++) {
					int64_t ss = (int64_t)1 << (px - 1);

					for (i = 0; i < xn; i++)
						ss += (int64_t)in[((size_t)(y + y0) * w + xmin + i) * 3 + c] *
						      k[i];
					tmp[((size_t)y * ow + x) * 3 + c] = clip8(ss, px);
				}
			}
		for (y = 0; y < oh; y++)
			by[y * 2] -= y0;
		src = tmp;
		sw = ow;
		sh = y1 - y0;
	}
	res = malloc((size_t)ow * (size_t)oh * 3);
	if (!res)
		goto out;
	if (oh != h) {
		for (y = 0; y < oh; y++) {
			const int ymin = by[y * 2], yn = by[y * 2 + 1];
			const int32_t *k = kky + (size_t)y * ky;

			for (x = 0; x < ow; x++)
				for (c = 0; c < 3; c++) {
					int64_t ss = (int64_t)1 << (py - 1);

					for (i = 0; i < yn; i++)
						ss += (int64_t)src[((size_t)(ymin + i) * sw + x) * 3 + c] *
						      k[i];
					res[((size_t)y * ow + x) * 3 + c] = clip8(ss, py);
				}
		}
	} else {
		/* no vertical pass: the rows as they are (sh == oh) */
		(void)sh;
		memcpy(res, src, (size_t)ow * oh * 3);
	}
	*out = res;
	res = NULL;
	rc = 0;
out:
	free(bx);
	free(by);
	free(kkx);
	free(kky);
	free(tmp);
	free(res);
	return rc;
}

int llm_vision_preprocess(const struct llm_vision *v, const uint8_t *rgb, int w,
			  int h, size_t min_pixels, size_t max_pixels, float **pixels,
			  size_t *n, int32_t grid[3], struct diag *d)
{
	const size_t P = v->patch, m = v->merge, T = v->tps;
	uint8_t *img = NULL;
	float *px;
	int ow, oh;
	size_t gh, gw, br, bc, mr, mc, c, t, y, x;

	*pixels = NULL;
	*n = 0;
	if (!rgb || v->C != 3)
		return diag_fail(d, LLM_E_INVALID, "vision: an RGB image is needed");
	if (!min_pixels)
		min_pixels = v->min_pixels;
	if (!max_pixels)
		max_pixels = v->max_pixels;
	if (llm_vision_check_size(w, h, d) < 0)
		return LLM_E_INVALID;
	if (llm_vision_fit(v, w, h, min_pixels, max_pixels, &ow, &oh) < 0)
		return diag_fail(d, LLM_E_INVALID, "vision: cannot resize a %d x %d image", w, h);
	if (ow == w && oh == h) {
		img = malloc((size_t)w * h * 3);
		if (img)
			memcpy(img, rgb, (size_t)w * h * 3);
	} else if (aa_resize(rgb, w, h, ow, oh, &img) < 0) {
		img = NULL;
	}
	gh = (size_t)oh / P;
	gw = (size_t)ow / P;
	px = img ? malloc(gh * gw * v->row * sizeof *px) : NULL;
	if (!px) {
		free(img);
		return diag_fail(d, LLM_E_NOMEM, "vision: out of memory (%d x %d)", ow, oh);
	}
	/* rows (merged row, merged column, row in it, column in it); each
	 * row (channel, frame, y, x), the one frame repeated */
	for (br = 0; br < gh / m; br++)
		for (bc = 0; bc < gw / m; bc++)
			for (mr = 0; mr < m; mr++)
				for (mc = 0; mc < m; mc++) {
					const size_t py = br * m + mr, pxx = bc * m + mc;
					float *row = px + (((br * (gw / m) + bc) * m + mr) * m + mc) *
								  v->row;

					for (c = 0; c < 3; c++)
						for (t = 0; t < T; t++)
							for (y = 0; y < P; y++)
								for (x = 0; x < P; x++) {
									const uint8_t u = img[((py * P + y) *
											       (size_t)ow +
											       pxx * P + x) * 3 + c];

									/* as numpy: u * (1/255)
									 * in double, rounded to
									 * float, then float math */
									const float r = (float)((double)u * (1.0 / 255.0));

									*row++ = (r - v->mean[c]) / v->std[c];
								}
				}
	free(img);
	grid[0] = 1;
	grid[1] = (int32_t)gh;
	grid[2] = (int32_t)gw;
	*pixels = px;
	*n = gh * gw;
	return 0;
}

/* ---- MRoPE positions ------------------------------------------------------ */

int llm_vision_rope_index(const struct llm_vision *v, const int32_t *ids, size_t n,
			  int32_t image_token, const int32_t (*grids)[3], size_t n_images,
			  int32_t *mpos, int64_t *next, struct diag *d)
{
	const size_t m = v->merge;
	size_t i = 0, img = 0, a;
	int64_t at = 0; /* the next text position */

	while (i < n) {
		if (ids[i] != image_token) {
			for (a = 0; a < 3; a++)
				mpos[a * n + i] = (int32_t)at;
			at++;
			i++;
			continue;
		}
		/* an image: t x (h / m) x (w / m) tokens, positions (t, row,
		 * column) after the text before it */
		{
			size_t T, gh, gw, k, t, r, c;

			if (img == n_images)
				return diag_fail(d, LLM_E_INVALID,
						 "more image tokens than the %zu images' grids",
						 n_images);
			T = (size_t)grids[img][0];
			gh = (size_t)grids[img][1] / m;
			gw = (size_t)grids[img][2] / m;
			if (grids[img][0] < 1 || grids[img][1] < 1 || grids[img][2] < 1 ||
			    grids[img][1] % (int32_t)m || grids[img][2] % (int32_t)m ||
			    i + T * gh * gw > n)
				return diag_fail(d, LLM_E_INVALID,
						 "image %zu: a grid of %d x %d x %d does not fit the "
						 "prompt's image tokens", img, grids[img][0],
						 grids[img][1], grids[img][2]);
			k = i;
			for (t = 0; t < T; t++)
				for (r = 0; r < gh; r++)
					for (c = 0; c < gw; c++, k++) {
						if (ids[k] != image_token)
							return diag_fail(d, LLM_E_INVALID,
									 "image %zu: token %zu is not an "
									 "image token", img, k);
						/* images have no time step: t 0 */
						mpos[k] = (int32_t)at;
						mpos[n + k] = (int32_t)(at + (int64_t)r);
						mpos[2 * n + k] = (int32_t)(at + (int64_t)c);
					}
			/* the text after it: one past the largest */
			at += (int64_t)(gh > gw ? gh : gw);
			i = k;
			img++;
		}
	}
	if (img != n_images)
		return diag_fail(d, LLM_E_INVALID, "%zu images' grids for %zu images",
				 n_images, img);
	*next = at;
	return 0;
}

int llm_vision_expand_prompt(const struct llm_vision *v, const int32_t *ids, size_t n,
			     int32_t image_token, const int32_t (*grids)[3],
			     size_t n_images, int32_t **out, size_t *n_out,
			     int32_t **mpos, int64_t *next, struct diag *d)
{
	size_t i, k = 0, total = 0, at = 0, j, nt;
	int32_t *o, *mp;
	int rc;

	*out = NULL;
	*mpos = NULL;
	for (i = 0; i < n; i++)
		k += ids[i] == image_token;
	if (k != n_images)
		return diag_fail(d, LLM_E_INVALID,
				 "the prompt has %zu image tokens for %zu images", k, n_images);
	for (k = 0; k < n_images; k++) {
		if (llm_vision_n_tokens(v, grids[k], &nt) < 0)
			return diag_fail(d, LLM_E_INVALID,
					 "image %zu: a grid of %d x %d x %d patches", k,
					 grids[k][0], grids[k][1], grids[k][2]);
		total += nt;
	}
	total += n - n_images;
	o = malloc(total * sizeof *o);
	mp = malloc(3 * total * sizeof *mp);
	if (!o || !mp) {
		free(o);
		free(mp);
		return diag_fail(d, LLM_E_NOMEM, "out of memory (%zu prompt tokens)", total);
	}
	for (i = 0, k = 0; i < n; i++) {
		if (ids[i] != image_token) {
			o[at++] = ids[i];
			continue;
		}
		(void)llm_vision_n_tokens(v, grids[k++], &nt);
		for (j = 0; j < nt; j++)
			o[at++] = image_token;
	}
	rc = llm_vision_rope_index(v, o, total, image_token, grids, n_images, mp, next, d);
	if (rc < 0) {
		free(o);
		free(mp);
		return rc;
	}
	*out = o;
	*n_out = total;
	*mpos = mp;
	return 0;
}
