/* inference/tokenizer_impl.h — internals of the Hugging Face tokenizer
 * (tokenizer.json), shared by inference/tokenizer*.c only.
 *
 * Layout of a loaded tokenizer (all immutable after llm_tokenizer_open, so a
 * tokenizer may be used from several threads at once; per-call scratch lives
 * in struct tok_scratch):
 *   - every token id in [0, n_vocab) has a piece (its vocab string, or the
 *     added token's content) in one arena; ids nobody defined have len 0 and
 *     flag TOK_F_UNUSED;
 *   - `vocab` maps model-vocab strings to ids (BPE lookups); for byte-level
 *     models `raw` maps the *decoded bytes* of each byte-level piece to its
 *     id, so that BPE runs on raw bytes and never builds the two-byte
 *     "Ġ"-style strings;
 *   - `merges` maps (left id, right id) to (rank, merged id);
 *   - added tokens are matched by a byte trie before normalization (HF's
 *     "non-normalized" tokens) or after it ("normalized" tokens);
 *   - the normalizer, pre-tokenizer and decoder are flattened into arrays of
 *     steps (Sequence nodes are expanded at load time).
 */
#ifndef TERN_INFERENCE_TOKENIZER_IMPL_H
#define TERN_INFERENCE_TOKENIZER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

struct llm_tokenizer;

/* ---- growable byte buffer (engine code: failures return LLM_E_NOMEM) ---- */
struct tok_buf {
	char *p;
	size_t len, cap;
};
int tok_buf_reserve(struct tok_buf *b, size_t extra);
int tok_buf_put(struct tok_buf *b, const void *s, size_t n);
void tok_buf_fini(struct tok_buf *b);

/* growable int32 array */
struct tok_ids {
	int32_t *v;
	size_t n, cap;
};
int tok_ids_push(struct tok_ids *a, int32_t id);

/* ---- hashing ---- */
uint64_t tok_hash_bytes(const void *p, size_t n);

/* String -> id map, open addressing.  Keys are not stored: a slot holds
 * id + 1 and 32 bits of the key's hash, and the key itself is compared in
 * the piece arena only when the tag matches (one cache miss per lookup). */
struct tok_strmap {
	uint64_t *slot; /* hash tag << 32 | (id + 1); 0 = empty */
	uint32_t mask;
	uint32_t n;
};

/* (a, b) -> (rank, merged id) */
struct tok_merge_map {
	uint64_t *key; /* (a << 32 | b) + 1; 0 = empty */
	uint32_t *rank;
	int32_t *out;
	uint32_t mask;
	uint32_t n;
};

/* ---- steps ---- */
enum tok_norm_kind {
	TOK_NORM_NFC, TOK_NORM_NFD, TOK_NORM_NFKC, TOK_NORM_NFKD,
	TOK_NORM_LOWERCASE, TOK_NORM_STRIP, TOK_NORM_REPLACE, TOK_NORM_PREPEND,
	TOK_NORM_STRIP_ACCENTS,
};

struct tok_pattern {             /* HF "pattern": {"String": ..} or {"Regex": ..} */
	char *str;               /* literal (when re == NULL) */
	size_t len;
	pcre2_code *re;          /* compiled with UTF|UCP, JIT when available */
};

struct tok_norm {
	enum tok_norm_kind kind;
	struct tok_pattern pat;  /* REPLACE */
	char *content;           /* REPLACE content, PREPEND text */
	size_t content_len;
	bool left, right;        /* STRIP */
};

enum tok_split_behavior {
	TOK_SPLIT_REMOVED, TOK_SPLIT_ISOLATED, TOK_SPLIT_MERGED_PREV,
	TOK_SPLIT_MERGED_NEXT, TOK_SPLIT_CONTIGUOUS,
};

enum tok_pre_kind {
	TOK_PRE_SPLIT, TOK_PRE_BYTELEVEL, TOK_PRE_METASPACE, TOK_PRE_DIGITS,
	TOK_PRE_WHITESPACE, TOK_PRE_WHITESPACE_SPLIT, TOK_PRE_PUNCTUATION,
};

enum tok_prepend { TOK_PREPEND_ALWAYS, TOK_PREPEND_FIRST, TOK_PREPEND_NEVER };

struct tok_pre {
	enum tok_pre_kind kind;
	struct tok_pattern pat;           /* SPLIT; BYTELEVEL with use_regex; WHITESPACE */
	enum tok_split_behavior behavior; /* SPLIT, PUNCTUATION */
	bool invert;                      /* SPLIT */
	bool add_prefix_space;            /* BYTELEVEL */
	bool individual_digits;           /* DIGITS */
	char repl[8];                     /* METASPACE replacement (UTF-8) */
	size_t repl_len;
	enum tok_prepend prepend;         /* METASPACE */
	bool split;                       /* METASPACE */
};

enum tok_dec_kind {
	TOK_DEC_BYTELEVEL, TOK_DEC_REPLACE, TOK_DEC_BYTEFALLBACK, TOK_DEC_FUSE,
	TOK_DEC_STRIP, TOK_DEC_METASPACE,
};

struct tok_dec {
	enum tok_dec_kind kind;
	char *from, *to;            /* REPLACE (literal) */
	size_t from_len, to_len;
	char strip[8];              /* STRIP content char */
	size_t strip_len;
	int start, stop;            /* STRIP */
	char repl[8];               /* METASPACE */
	size_t repl_len;
	bool prepend;               /* METASPACE: strip the leading space of token 0 */
};

struct tok_added {
	int32_t id;
	char *content;
	size_t len;
	bool special, lstrip, rstrip, normalized, single_word;
};

/* Byte trie over added-token contents, for leftmost-longest matching. */
struct tok_trie {
	struct tok_trie_node {
		int32_t child;   /* first child index, -1 none */
		int32_t sibling; /* next sibling, -1 none */
		int32_t added;   /* index into tok->added ending here, -1 none */
		uint8_t byte;
	} *node;
	size_t n, cap;
	uint8_t first[256];  /* 1 when some token starts with this byte */
	bool empty;
};

#define TOK_F_SPECIAL 1u
#define TOK_F_ADDED 2u
#define TOK_F_UNUSED 4u
#define TOK_F_BYTE 8u       /* a "<0xXX>" byte-fallback piece */

struct llm_tokenizer {
	int32_t n_vocab;               /* 1 + largest id */
	uint32_t *piece_off, *piece_len;
	uint8_t *flags;
	uint8_t *byte_val;             /* for TOK_F_BYTE */
	char *arena;                   /* all pieces */
	size_t arena_len;

	/* model (BPE) */
	struct tok_strmap vocab;       /* model vocab only (not added tokens) */
	bool byte_level;               /* a ByteLevel pre-tokenizer runs last */
	uint32_t *raw_off, *raw_len;   /* byte_level: decoded bytes of each piece */
	char *raw_arena;
	struct tok_strmap raw;         /* byte_level: decoded bytes -> id */
	int32_t byte_id[256];          /* byte_level: id of each single byte; -1 */
	struct tok_merge_map merges;
	bool byte_fallback, fuse_unk, ignore_merges;
	int32_t unk_id;                /* -1 none */
	int32_t fallback_id[256];      /* "<0xXX>" ids, -1 when absent */

	/* pipeline */
	struct tok_norm *norm;
	size_t n_norm;
	struct tok_pre *pre;
	size_t n_pre;
	struct tok_dec *dec;
	size_t n_dec;
	bool has_decoder;

	/* added tokens */
	struct tok_added *added;
	size_t n_added;
	struct tok_trie trie_raw, trie_norm;

	/* special tokens around a single sequence (TemplateProcessing or
	 * tokenizer_config.json add_bos/eos) */
	int32_t *prefix_ids, *suffix_ids;
	size_t n_prefix, n_suffix;
	int32_t bos_id, eos_id;
};

/* ---- tokenizer_load.c ---- */
int tok_strmap_find(const struct llm_tokenizer *t, const struct tok_strmap *m,
		    bool raw, const char *s, size_t n);

/* ---- tokenizer_text.c: normalizers, pre-tokenizers, decoders ---- */

/* One piece of text on its way through the pipeline: bytes [off, off+len)
 * of a scratch buffer; orig0 is true when it starts at offset 0 of the
 * caller's text (Metaspace prepend_scheme "first"). */
struct tok_piece {
	size_t off, len;
	bool orig0;
};

struct tok_pieces {
	struct tok_piece *v;
	size_t n, cap;
};
int tok_pieces_push(struct tok_pieces *a, size_t off, size_t len, bool orig0);

struct tok_scratch {
	struct tok_buf text;       /* normalized/pre-tokenized text */
	struct tok_buf tmp;
	struct tok_pieces a, b;
	pcre2_match_data *md;
	/* BPE */
	struct tok_sym { int32_t id, prev, next; uint32_t len; } *sym;
	size_t sym_cap;
	struct tok_heap_ent { uint32_t rank, pos; } *heap;
	size_t heap_cap;
	/* word cache: bytes -> ids (per call; keeps the tokenizer immutable) */
	struct tok_cache_ent { uint64_t h; uint32_t off, len, ids_off, n_ids; } *cache;
	uint32_t cache_mask, cache_n;
	struct tok_buf cache_bytes;
	struct tok_ids cache_ids;
};
void tok_scratch_fini(struct tok_scratch *s);

/* Normalize s[0..n) with every normalizer step; the result replaces
 * out->p[0..out->len) (out is cleared first).  tmp is scratch. */
int tok_normalize(const struct llm_tokenizer *t, const char *s, size_t n,
		  struct tok_buf *out, struct tok_buf *tmp, pcre2_match_data **md,
		  struct diag *d);

/* Pre-tokenize: in = one piece in sc->text; appends resulting pieces to
 * *out (pieces may point to new text appended to sc->text). */
int tok_pretokenize(const struct llm_tokenizer *t, struct tok_scratch *sc,
		    struct tok_piece in, struct tok_pieces *out, struct diag *d);

/* Run the decoder chain over ids (already filtered); result in out. */
int tok_decode_chain(const struct llm_tokenizer *t, const int32_t *ids, size_t n,
		     struct tok_buf *out);

/* Append s[0..n) to out replacing invalid UTF-8 as Rust's
 * String::from_utf8_lossy does (one U+FFFD per maximal invalid subpart). */
int tok_utf8_lossy(struct tok_buf *out, const char *s, size_t n);

/* Length of a valid UTF-8 sequence at s (1..4), or 0 when invalid or
 * truncated. */
int tok_utf8_len(const unsigned char *s, size_t n);

int tok_pattern_compile(struct tok_pattern *p, const char *str, size_t len,
			bool regex, struct diag *d);
void tok_pattern_fini(struct tok_pattern *p);

/* ---- tokenizer_bpe.c ---- */
int tok_bpe_word(const struct llm_tokenizer *t, struct tok_scratch *sc,
		 const char *w, size_t n, struct tok_ids *out);

/* The byte-level alphabet (GPT-2's bytes_to_unicode): code point of byte b. */
uint32_t tok_byte_to_cp(uint8_t b);
/* Inverse: byte for code point cp, or -1. */
int tok_cp_to_byte(uint32_t cp);

#endif
