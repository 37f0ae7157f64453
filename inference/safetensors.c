/* inference/safetensors.c — the safetensors reader (single file or sharded
 * with model.safetensors.index.json); see inference/safetensors_impl.h.
 *
 * Owns: the read-only mappings of every file of a set, a copy of every tensor
 * name, the name hash table and file 0's __metadata__ strings.
 *
 * File format (little-endian): u64 N; N bytes of JSON header (an object:
 * name -> {"dtype", "shape", "data_offsets": [begin, end]}, plus an optional
 * "__metadata__" string->string object); then the data section, to which the
 * offsets are relative.
 *
 * Invariants once llm_st_open returns 0: every tensor's [data, data+n_bytes)
 * lies inside its file's mapping, n_bytes == n_elems * dtype size, names are
 * unique and the hash table holds each exactly once.  Everything read from a
 * file is validated before it is used, and all size arithmetic on values
 * from files is done in 64 bits with explicit overflow checks.  (A file that
 * shrinks after it was mapped can still raise SIGBUS: that is the price of
 * mmap and the same as every other reader of these files.)
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/diag.h"
#include "common/file.h"
#include "inference/llm.h"
#include "inference/safetensors_impl.h"

/* The format's own limit on the JSON header (safetensors rejects larger). */
#define ST_MAX_HEADER_BYTES (100u * 1024u * 1024u)
/* An index file is JSON text; anything bigger than this is not an index. */
#define ST_MAX_INDEX_BYTES (64u * 1024u * 1024u)

struct st_dtype_desc {
	const char *name;
	size_t size;
};

static const struct st_dtype_desc st_dtypes[LLM_DTYPE_COUNT] = {
	[LLM_DTYPE_F32] = { "F32", 4 },   [LLM_DTYPE_F16] = { "F16", 2 },
	[LLM_DTYPE_BF16] = { "BF16", 2 }, [LLM_DTYPE_F64] = { "F64", 8 },
	[LLM_DTYPE_I64] = { "I64", 8 },   [LLM_DTYPE_I32] = { "I32", 4 },
	[LLM_DTYPE_I16] = { "I16", 2 },   [LLM_DTYPE_I8] = { "I8", 1 },
	[LLM_DTYPE_U8] = { "U8", 1 },     [LLM_DTYPE_BOOL] = { "BOOL", 1 },
};

size_t llm_dtype_size(enum llm_dtype t)
{
	if ((unsigned)t >= LLM_DTYPE_COUNT)
		return 0;
	return st_dtypes[t].size;
}

const char *llm_dtype_name(enum llm_dtype t)
{
	if ((unsigned)t >= LLM_DTYPE_COUNT)
		return "?";
	return st_dtypes[t].name;
}

int llm_dtype_from_name(const char *name, enum llm_dtype *out)
{
	for (int i = 0; i < LLM_DTYPE_COUNT; i++) {
		if (strcmp(name, st_dtypes[i].name) == 0) {
			*out = (enum llm_dtype)i;
			return 0;
		}
	}
	return LLM_E_UNSUPPORTED;
}

/* ---- scalar conversions ------------------------------------------------ */

static float st_bits_to_f32(uint32_t u)
{
	float f;

	memcpy(&f, &u, sizeof f);
	return f;
}

static uint32_t st_f32_to_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof u);
	return u;
}

float llm_bf16_to_f32(uint16_t h)
{
	/* bf16 is the top half of an IEEE binary32. */
	return st_bits_to_f32((uint32_t)h << 16);
}

uint16_t llm_f32_to_bf16(float f)
{
	uint32_t u = st_f32_to_bits(f);

	if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it quiet NaN */
		return (uint16_t)((u >> 16) | 0x0040u);
	/* round to nearest even on the dropped 16 bits */
	u += 0x7fffu + ((u >> 16) & 1u);
	return (uint16_t)(u >> 16);
}

float llm_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t exp = (h >> 10) & 0x1fu;
	uint32_t man = h & 0x3ffu;

	if (exp == 0x1f) /* inf / NaN */
		return st_bits_to_f32(sign | 0x7f800000u | (man << 13));
	if (exp == 0) {
		/* zero or subnormal: man * 2^-24, exact in binary32 */
		float v = (float)man * 5.9604644775390625e-8f;

		return sign ? -v : v;
	}
	return st_bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t llm_f32_to_f16(float f)
{
	uint32_t u = st_f32_to_bits(f);
	uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
	uint32_t a = u & 0x7fffffffu;

	if (a > 0x7f800000u) /* NaN */
		return (uint16_t)(sign | 0x7e00u);
	if (a >= 0x477ff000u) /* >= 65520 rounds to inf (also inf itself) */
		return (uint16_t)(sign | 0x7c00u);
	if (a < 0x38800000u) {
		/* below the smallest normal (2^-14): subnormal or zero.
		 * value = mant * 2^(e-150) with the implicit bit; result unit
		 * is 2^-24, so shift right by (126 - e) with round-half-even. */
		uint32_t e = a >> 23;
		uint32_t mant, shift, q, rem, half;

		if (e < 102) /* < 2^-25: rounds to zero */
			return sign;
		mant = (a & 0x7fffffu) | 0x800000u;
		shift = 126u - e;
		q = mant >> shift;
		rem = mant & ((1u << shift) - 1u);
		half = 1u << (shift - 1u);
		if (rem > half || (rem == half && (q & 1u)))
			q++;
		return (uint16_t)(sign | q);
	}
	/* normal: rebias 127 -> 15 and round the low 13 bits to even; a carry
	 * into the exponent is the correct result (up to inf at the top). */
	a -= 0x38000000u;
	a += 0xfffu + ((a >> 13) & 1u);
	return (uint16_t)(sign | (a >> 13));
}

int llm_tensor_to_f32(const struct llm_tensor_info *t, float *dst,
		      struct diag *d)
{
	const unsigned char *p = t->data;
	int64_t i, n = t->n_elems;

	/* data is only byte-aligned (the header length is arbitrary), so read
	 * every element through memcpy. */
	switch (t->dtype) {
	case LLM_DTYPE_F32:
		if (n > 0)
			memcpy(dst, p, (size_t)t->n_bytes);
		return 0;
	case LLM_DTYPE_F16:
	case LLM_DTYPE_BF16:
		for (i = 0; i < n; i++) {
			uint16_t h;

			memcpy(&h, p + 2 * i, 2);
			dst[i] = t->dtype == LLM_DTYPE_F16 ? llm_f16_to_f32(h)
							   : llm_bf16_to_f32(h);
		}
		return 0;
	case LLM_DTYPE_F64:
		for (i = 0; i < n; i++) {
			double v;

			memcpy(&v, p + 8 * i, 8);
			dst[i] = (float)v;
		}
		return 0;
	default:
		return diag_fail(d, LLM_E_UNSUPPORTED,
				 "tensor '%s': dtype %s is not a float type",
				 t->name, llm_dtype_name(t->dtype));
	}
}

/* ---- the set ------------------------------------------------------------ */

struct st_file {
	char *path;
	struct file_map map;
};

struct st_meta {
	char *key;
	char *value;
};

struct llm_st_set {
	struct st_file *files;
	int n_files;
	struct llm_tensor_info *tensors;
	size_t n_tensors, cap_tensors;
	/* open addressing, linear probing: slot holds tensor index + 1, 0 =
	 * empty; hash_cap is a power of two >= 2 * n_tensors */
	size_t *hash;
	size_t hash_cap;
	struct st_meta *meta;
	size_t n_meta;
};

static uint64_t st_hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

void llm_st_close(struct llm_st_set *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->n_files; i++) {
		file_map_close(&s->files[i].map);
		free(s->files[i].path);
	}
	free(s->files);
	for (size_t i = 0; i < s->n_tensors; i++)
		free((char *)(uintptr_t)s->tensors[i].name);
	free(s->tensors);
	free(s->hash);
	for (size_t i = 0; i < s->n_meta; i++) {
		free(s->meta[i].key);
		free(s->meta[i].value);
	}
	free(s->meta);
	free(s);
}

size_t llm_st_count(const struct llm_st_set *s)
{
	return s->n_tensors;
}

const struct llm_tensor_info *llm_st_at(const struct llm_st_set *s, size_t i)
{
	return i < s->n_tensors ? &s->tensors[i] : NULL;
}

const struct llm_tensor_info *llm_st_find(const struct llm_st_set *s,
					  const char *name)
{
	size_t mask, i;

	if (!s->hash_cap)
		return NULL;
	mask = s->hash_cap - 1;
	for (i = (size_t)st_hash_str(name) & mask; s->hash[i]; i = (i + 1) & mask) {
		const struct llm_tensor_info *t = &s->tensors[s->hash[i] - 1];

		if (strcmp(t->name, name) == 0)
			return t;
	}
	return NULL;
}

const char *llm_st_metadata(const struct llm_st_set *s, const char *key)
{
	for (size_t i = 0; i < s->n_meta; i++)
		if (strcmp(s->meta[i].key, key) == 0)
			return s->meta[i].value;
	return NULL;
}

int llm_st_n_files(const struct llm_st_set *s)
{
	return s->n_files;
}

const char *llm_st_file_path(const struct llm_st_set *s, int i)
{
	return i >= 0 && i < s->n_files ? s->files[i].path : NULL;
}

static void st_format_shape(char *buf, size_t cap, int n_dims,
			    const int64_t *shape)
{
	size_t off = 0;
	int k;

	off += (size_t)snprintf(buf + off, cap - off, "[");
	for (k = 0; k < n_dims && off < cap; k++)
		off += (size_t)snprintf(buf + off, cap - off, "%s%lld",
					k ? ", " : "", (long long)shape[k]);
	if (off < cap)
		snprintf(buf + off, cap - off, "]");
}

int llm_st_expect(const struct llm_st_set *s, const char *name, int n_dims,
		  const int64_t *shape, const struct llm_tensor_info **out,
		  struct diag *d)
{
	const struct llm_tensor_info *t = llm_st_find(s, name);
	bool ok;

	if (out)
		*out = NULL;
	if (!t)
		return diag_fail(d, LLM_E_FORMAT, "missing tensor '%s'", name);
	if (shape) {
		ok = t->n_dims == n_dims;
		for (int k = 0; ok && k < n_dims; k++)
			if (shape[k] >= 0 && shape[k] != t->shape[k])
				ok = false;
		if (!ok) {
			char have[96], want[96];

			st_format_shape(have, sizeof have, t->n_dims, t->shape);
			st_format_shape(want, sizeof want, n_dims, shape);
			return diag_fail(d, LLM_E_FORMAT,
					 "tensor '%s' has shape %s, expected %s",
					 name, have, want);
		}
	}
	if (out)
		*out = t;
	return 0;
}

/* ---- building ----------------------------------------------------------- */

static int st_push_tensor(struct llm_st_set *s, struct llm_tensor_info **out)
{
	if (s->n_tensors == s->cap_tensors) {
		size_t cap = s->cap_tensors ? 2 * s->cap_tensors : 64;
		struct llm_tensor_info *p;

		if (cap > SIZE_MAX / sizeof *p)
			return LLM_E_NOMEM;
		p = realloc(s->tensors, cap * sizeof *p);
		if (!p)
			return LLM_E_NOMEM;
		s->tensors = p;
		s->cap_tensors = cap;
	}
	*out = &s->tensors[s->n_tensors];
	memset(*out, 0, sizeof **out);
	return 0;
}

static int st_build_hash(struct llm_st_set *s, struct diag *d)
{
	size_t cap = 16, mask;

	while (cap < 2 * s->n_tensors) {
		if (cap > SIZE_MAX / 2 / sizeof *s->hash)
			return diag_fail(d, LLM_E_NOMEM, "too many tensors");
		cap *= 2;
	}
	s->hash = calloc(cap, sizeof *s->hash);
	if (!s->hash)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	s->hash_cap = cap;
	mask = cap - 1;
	for (size_t t = 0; t < s->n_tensors; t++) {
		const char *name = s->tensors[t].name;
		size_t i = (size_t)st_hash_str(name) & mask;

		for (; s->hash[i]; i = (i + 1) & mask) {
			if (strcmp(s->tensors[s->hash[i] - 1].name, name) == 0) {
				const struct llm_tensor_info *a =
					&s->tensors[s->hash[i] - 1];

				return diag_fail(
					d, LLM_E_FORMAT,
					"tensor '%s' appears twice (%s and %s)",
					name, s->files[a->file_index].path,
					s->files[s->tensors[t].file_index].path);
			}
		}
		s->hash[i] = t + 1;
	}
	return 0;
}

static int st_read_u64_le(const unsigned char *p, uint64_t *out)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	*out = v;
	return 0;
}

/* Parse one entry "name": {dtype, shape, data_offsets} of file FI. */
static int st_parse_entry(struct llm_st_set *s, int fi, const char *name,
			  json_t *ent, const unsigned char *data_base,
			  uint64_t data_size, struct diag *d)
{
	const char *path = s->files[fi].path;
	json_t *jdt, *jshape, *joff;
	struct llm_tensor_info *t;
	enum llm_dtype dt;
	int64_t shape[LLM_MAX_DIMS];
	uint64_t n_elems = 1, want_bytes, begin, end;
	size_t n_dims, k;
	json_int_t v;
	int rc;

	if (!json_is_object(ent))
		return diag_fail(d, LLM_E_FORMAT,
				 "%s: tensor '%s': entry is not an object",
				 path, name);
	jdt = json_object_get(ent, "dtype");
	jshape = json_object_get(ent, "shape");
	joff = json_object_get(ent, "data_offsets");
	if (!json_is_string(jdt))
		return diag_fail(d, LLM_E_FORMAT,
				 "%s: tensor '%s': missing or non-string 'dtype'",
				 path, name);
	if (!json_is_array(jshape))
		return diag_fail(d, LLM_E_FORMAT,
				 "%s: tensor '%s': missing or non-array 'shape'",
				 path, name);
	if (!json_is_array(joff) || json_array_size(joff) != 2 ||
	    !json_is_integer(json_array_get(joff, 0)) ||
	    !json_is_integer(json_array_get(joff, 1)))
		return diag_fail(d, LLM_E_FORMAT,
				 "%s: tensor '%s': 'data_offsets' must be "
				 "[begin, end] integers", path, name);
	if (llm_dtype_from_name(json_string_value(jdt), &dt) < 0)
		return diag_fail(d, LLM_E_UNSUPPORTED,
				 "%s: tensor '%s': unsupported dtype '%s'",
				 path, name, json_string_value(jdt));
	for (k = 0; k < LLM_MAX_DIMS; k++)
		shape[k] = 1;
	n_dims = json_array_size(jshape);
	if (n_dims > LLM_MAX_DIMS)
		return diag_fail(d, LLM_E_UNSUPPORTED,
				 "%s: tensor '%s': %zu dimensions (at most %d)",
				 path, name, n_dims, LLM_MAX_DIMS);
	for (k = 0; k < n_dims; k++) {
		json_t *jd = json_array_get(jshape, k);

		if (!json_is_integer(jd) || json_integer_value(jd) < 0)
			return diag_fail(d, LLM_E_FORMAT,
					 "%s: tensor '%s': shape[%zu] is not a "
					 "non-negative integer", path, name, k);
		v = json_integer_value(jd);
		shape[k] = (int64_t)v;
		if (v != 0 && n_elems > (uint64_t)INT64_MAX / (uint64_t)v)
			return diag_fail(d, LLM_E_FORMAT,
					 "%s: tensor '%s': element count "
					 "overflows", path, name);
		n_elems *= (uint64_t)v;
	}
	if (n_elems > UINT64_MAX / llm_dtype_size(dt))
		return diag_fail(d, LLM_E_FORMAT,
				 "%s: tensor '%s': byte size overflows", path,
				 name);
	want_bytes = n_elems * llm_dtype_size(dt);
	if (json_integer_value(json_array_get(joff, 0)) < 0 ||
	    json_integer_value(json_array_get(joff, 1)) < 0)
		return diag_fail(d, LLM_E_FORMAT,
				 "%s: tensor '%s': negative data offset", path,
				 name);
	begin = (uint64_t)json_integer_value(json_array_get(joff, 0));
	end = (uint64_t)json_integer_value(json_array_get(joff, 1));
	if (end < begin)
		return diag_fail(d, LLM_E_FORMAT,
				 "%s: tensor '%s': data_offsets end %llu < "
				 "begin %llu", path, name,
				 (unsigned long long)end,
				 (unsigned long long)begin);
	if (end > data_size)
		return diag_fail(d, LLM_E_FORMAT,
				 "%s: tensor '%s' ends past end of file (data "
				 "offset %llu, data section %llu bytes)", path,
				 name, (unsigned long long)end,
				 (unsigned long long)data_size);
	if (end - begin != want_bytes)
		return diag_fail(d, LLM_E_FORMAT,
				 "%s: tensor '%s': %llu data bytes but %s shape "
				 "needs %llu", path, name,
				 (unsigned long long)(end - begin),
				 llm_dtype_name(dt),
				 (unsigned long long)want_bytes);

	rc = st_push_tensor(s, &t);
	if (rc < 0)
		return diag_fail(d, rc, "out of memory");
	t->name = strdup(name);
	if (!t->name)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	s->n_tensors++; /* counted only once the name is owned (for close) */
	t->dtype = dt;
	t->n_dims = (int)n_dims;
	memcpy(t->shape, shape, sizeof shape);
	t->n_elems = (int64_t)n_elems;
	t->n_bytes = want_bytes;
	t->data = want_bytes ? data_base + begin : NULL;
	t->file_index = fi;
	return 0;
}

static int st_parse_metadata(struct llm_st_set *s, int fi, json_t *md,
			     struct diag *d)
{
	const char *key;
	json_t *val;
	size_t n = 0;

	if (!json_is_object(md))
		return diag_fail(d, LLM_E_FORMAT,
				 "%s: '__metadata__' is not an object",
				 s->files[fi].path);
	if (fi != 0)
		return 0; /* documented: metadata of file 0 only */
	s->meta = calloc(json_object_size(md) + 1, sizeof *s->meta);
	if (!s->meta)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	json_object_foreach(md, key, val) {
		/* The format says string -> string; tolerate other values by
		 * skipping them rather than refusing a loadable model. */
		if (!json_is_string(val))
			continue;
		s->meta[n].key = strdup(key);
		s->meta[n].value = strdup(json_string_value(val));
		if (!s->meta[n].key || !s->meta[n].value) {
			free(s->meta[n].key);
			free(s->meta[n].value);
			return diag_fail(d, LLM_E_NOMEM, "out of memory");
		}
		s->n_meta = ++n;
	}
	return 0;
}

/* Map file FI (path already set) and append its tensors. */
static int st_load_file(struct llm_st_set *s, int fi, struct diag *d)
{
	struct st_file *f = &s->files[fi];
	const unsigned char *base;
	uint64_t hlen, data_size;
	json_error_t jerr;
	json_t *root, *ent;
	const char *name;
	int rc;

	rc = file_map_open(f->path, &f->map, d);
	if (rc < 0) {
		if (d)
			d->code = LLM_E_IO;
		return LLM_E_IO;
	}
	base = f->map.addr;
	if (f->map.size < 8)
		return diag_fail(d, LLM_E_FORMAT,
				 "%s: truncated (%llu bytes, no header length)",
				 f->path, (unsigned long long)f->map.size);
	st_read_u64_le(base, &hlen);
	if (hlen < 2 || hlen > ST_MAX_HEADER_BYTES)
		return diag_fail(d, LLM_E_FORMAT,
				 "%s: implausible header length %llu", f->path,
				 (unsigned long long)hlen);
	if (hlen > f->map.size - 8)
		return diag_fail(d, LLM_E_FORMAT,
				 "%s: truncated (header of %llu bytes, file "
				 "%llu bytes)", f->path,
				 (unsigned long long)hlen,
				 (unsigned long long)f->map.size);
	data_size = f->map.size - 8 - hlen;

	root = json_loadb((const char *)base + 8, (size_t)hlen,
			  JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return diag_fail(d, LLM_E_FORMAT,
				 "%s: header JSON: %s (line %d, column %d)",
				 f->path, jerr.text, jerr.line, jerr.column);
	if (!json_is_object(root)) {
		json_decref(root);
		return diag_fail(d, LLM_E_FORMAT,
				 "%s: header is not a JSON object", f->path);
	}
	rc = 0;
	/* jansson iterates in insertion order, i.e. the header's order */
	json_object_foreach(root, name, ent) {
		if (strcmp(name, "__metadata__") == 0)
			rc = st_parse_metadata(s, fi, ent, d);
		else
			rc = st_parse_entry(s, fi, name, ent,
					    base + 8 + hlen, data_size, d);
		if (rc < 0)
			break;
	}
	json_decref(root);
	return rc;
}

static int st_add_file(struct llm_st_set *s, const char *path, int *fi,
		       struct diag *d)
{
	struct st_file *p;

	p = realloc(s->files, ((size_t)s->n_files + 1) * sizeof *p);
	if (!p)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	s->files = p;
	memset(&p[s->n_files], 0, sizeof *p);
	p[s->n_files].path = strdup(path);
	if (!p[s->n_files].path)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	*fi = s->n_files++;
	return 0;
}

static int st_cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sharded set from DIR/INDEX_NAME.  Shards are opened once each, in sorted
 * file-name order (so model-00001-of-N is file 0). */
static int st_load_index(struct llm_st_set *s, const char *index_path,
			 struct diag *d)
{
	char *text = NULL, *dir = NULL, *slash;
	const char **shards = NULL;
	size_t len, n_shards = 0, i;
	json_error_t jerr;
	json_t *root = NULL, *wm, *val;
	const char *name;
	int rc, fi;

	rc = file_read_all(index_path, ST_MAX_INDEX_BYTES, &text, &len, d);
	if (rc < 0) {
		if (d)
			d->code = LLM_E_IO;
		return LLM_E_IO;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		rc = diag_fail(d, LLM_E_FORMAT, "%s:%d:%d: %s", index_path,
			       jerr.line, jerr.column, jerr.text);
		goto out;
	}
	wm = json_object_get(root, "weight_map");
	if (!json_is_object(wm) || json_object_size(wm) == 0) {
		rc = diag_fail(d, LLM_E_FORMAT,
			       "%s: missing or empty 'weight_map' object",
			       index_path);
		goto out;
	}
	shards = calloc(json_object_size(wm), sizeof *shards);
	if (!shards) {
		rc = diag_fail(d, LLM_E_NOMEM, "out of memory");
		goto out;
	}
	json_object_foreach(wm, name, val) {
		const char *fn = json_string_value(val);

		if (!fn || !fn[0] || strchr(fn, '/') || strcmp(fn, "..") == 0 ||
		    strcmp(fn, ".") == 0) {
			rc = diag_fail(d, LLM_E_FORMAT,
				       "%s: weight_map['%s'] is not a plain "
				       "file name in the model directory",
				       index_path, name);
			goto out;
		}
		shards[n_shards++] = fn;
	}
	qsort(shards, n_shards, sizeof *shards, st_cmp_str);

	dir = strdup(index_path);
	if (!dir) {
		rc = diag_fail(d, LLM_E_NOMEM, "out of memory");
		goto out;
	}
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	for (i = 0; i < n_shards; i++) {
		char *p;

		if (i > 0 && strcmp(shards[i], shards[i - 1]) == 0)
			continue;
		p = file_join(dir, shards[i]);
		if (!p) {
			rc = diag_fail(d, LLM_E_NOMEM, "out of memory");
			goto out;
		}
		rc = st_add_file(s, p, &fi, d);
		free(p);
		if (rc < 0)
			goto out;
		rc = st_load_file(s, fi, d);
		if (rc < 0)
			goto out;
	}
	rc = st_build_hash(s, d);
	if (rc < 0)
		goto out;
	/* every name the index promises must be in the shard it names */
	json_object_foreach(wm, name, val) {
		const struct llm_tensor_info *t = llm_st_find(s, name);
		const char *fn = json_string_value(val);
		const char *tp;

		if (!t) {
			rc = diag_fail(d, LLM_E_FORMAT,
				       "%s: tensor '%s' is listed for %s but "
				       "not in it", index_path, name, fn);
			goto out;
		}
		tp = strrchr(s->files[t->file_index].path, '/');
		tp = tp ? tp + 1 : s->files[t->file_index].path;
		if (strcmp(tp, fn) != 0) {
			rc = diag_fail(d, LLM_E_FORMAT,
				       "%s: tensor '%s' is listed for %s but "
				       "found in %s", index_path, name, fn,
				       s->files[t->file_index].path);
			goto out;
		}
	}
	rc = 0;
out:
	json_decref(root);
	free(shards);
	free(dir);
	free(text);
	return rc;
}

static bool st_ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

int llm_st_open(const char *path, struct llm_st_set **out, struct diag *d)
{
	struct llm_st_set *s;
	char *p = NULL;
	int rc, fi;

	*out = NULL;
	s = calloc(1, sizeof *s);
	if (!s)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");

	if (file_is_dir(path)) {
		p = file_join(path, "model.safetensors.index.json");
		if (!p) {
			rc = diag_fail(d, LLM_E_NOMEM, "out of memory");
			goto fail;
		}
		if (file_is_file(p)) {
			rc = st_load_index(s, p, d);
			goto done;
		}
		free(p);
		p = file_join(path, "model.safetensors");
		if (!p) {
			rc = diag_fail(d, LLM_E_NOMEM, "out of memory");
			goto fail;
		}
		if (!file_is_file(p)) {
			rc = diag_fail(d, LLM_E_IO,
				       "%s: no model.safetensors or "
				       "model.safetensors.index.json", path);
			goto fail;
		}
	} else if (st_ends_with(path, ".index.json")) {
		rc = st_load_index(s, path, d);
		goto done;
	} else {
		p = strdup(path);
		if (!p) {
			rc = diag_fail(d, LLM_E_NOMEM, "out of memory");
			goto fail;
		}
	}
	rc = st_add_file(s, p, &fi, d);
	if (rc == 0)
		rc = st_load_file(s, fi, d);
	if (rc == 0)
		rc = st_build_hash(s, d);
done:
	if (rc < 0)
		goto fail;
	free(p);
	*out = s;
	return 0;
fail:
	free(p);
	llm_st_close(s);
	return rc;
}
