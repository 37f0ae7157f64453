/* app/store.h — conversations and their persistence (ARCHITECTURE.md §3).
 *
 * A conversation is a tree of messages: each message has a parent (-1 for a
 * root), so editing an earlier user message or regenerating a reply adds a
 * sibling instead of overwriting, and every branch can be browsed again.
 * Each node remembers which child was chosen last (`sel`); the active path
 * is the walk from the roots following those choices.
 *
 * On disk: one JSON file per conversation in DIR/conversations/ID.json,
 * written atomically (temp file, fsync, rename) after every change; a file
 * that cannot be read is renamed to ID.json.corrupt-UNIXTIME and reported,
 * never deleted; one of a later format version is reported and left
 * alone.  Ownership: a struct app_conv owns all its strings.
 *
 * Several tern processes may share the directory.  Each conversation
 * remembers the file as it last read or wrote it (identity and content
 * hash, and the hash of every message as in that file); a save that finds
 * the file changed since merges instead of overwriting: messages carry
 * ids unique across processes, the other process's new messages are added
 * as branches (indices of ours never change, so message ids held by the
 * UI stay valid), and a text only the other side changed (a title, a
 * reply it finished) is taken from the file.  A file that cannot be
 * merged is left alone and ours saved as a copy.  The check-merge-write is
 * serialised between processes by flock on DIR/.lock.
 */
#ifndef TERN_APP_STORE_H
#define TERN_APP_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"

/* The file format version this tern writes; it reads no later one. */
#define APP_CONV_VERSION 1

enum app_store_error {
	APP_STORE_E_FORMAT = -1, /* not a well-formed tern conversation */
	APP_STORE_E_NEWER = -2,  /* written in a later format version */
};

/* app_conv_save's successes besides 0. */
enum app_store_saved {
	APP_STORE_MERGED = 1, /* the file had changed: merged, then saved */
	APP_STORE_COPIED = 2, /* the file had changed and could not be merged:
			       * saved under a new id, title "... (copy)" */
};

enum app_role { APP_ROLE_SYSTEM, APP_ROLE_USER, APP_ROLE_ASSISTANT };

struct app_msg {
	int parent;          /* index of the parent message, -1 for a root */
	enum app_role role;
	char *content;       /* UTF-8, NUL-terminated after content_bytes */
	size_t content_bytes; /* the content's length: a reply may hold NUL
			      * bytes (a model's <0x00> token), kept as they
			      * are on disk too */
	int sel;             /* index of the chosen child, -1 when none */
	int64_t time;        /* unix seconds */
	char **images;       /* attached image file names (content hashes) */
	size_t n_images;
	int partial;         /* 1: an interrupted reply (kept, marked) */
	uint64_t mid;        /* id unique across processes ("id" on disk;
			      * index + 1 for a file written before ids) */
	uint64_t sync_hash;  /* content hash as in the file when last read
			      * or written, 0: not in the file yet */
};

/* The file as this process last read or wrote it. */
struct app_conv_sync {
	int known;           /* 0: never read or written by this process */
	uint64_t dev, ino;
	int64_t size, mtime_ns;
	uint64_t hash;       /* of the file's bytes */
	uint64_t title, system, model; /* hashes of those fields as in the file */
};

struct app_conv {
	char *id;            /* file name stem, unique */
	char *title;
	char *system;        /* system prompt ("" for none) */
	char *model;         /* model name used last (may be NULL) */
	int64_t created, updated;
	struct app_msg *msgs;
	size_t n_msgs, cap_msgs;
	int root_sel;        /* chosen root, -1 when empty */
	struct app_conv_sync sync;
};

/* A fresh empty conversation with a new unique id (TITLE NULL: "New
 * chat"). */
struct app_conv *app_conv_new(const char *title);
/* 1 when nothing was done with C yet: no message, no system prompt, the
 * title app_conv_new(NULL) gives. */
int app_conv_is_blank(const struct app_conv *c);
void app_conv_free(struct app_conv *c);

/* Append a message under PARENT (-1: a new root) and make it the chosen
 * child; returns its index. */
int app_conv_add(struct app_conv *c, int parent, enum app_role role,
		 const char *content);
/* Replace the content of message I (while a reply streams in). */
void app_conv_set_content(struct app_conv *c, int i, const char *content);
/* Append LEN bytes of TEXT (NUL bytes included) to message I. */
void app_conv_append_content(struct app_conv *c, int i, const char *text, size_t len);

/* The active path: message indices from the root to the leaf into out
 * (at most cap); returns the path length (may exceed cap). */
size_t app_conv_path(const struct app_conv *c, int *out, size_t cap);
/* Index of the last message on the active path, -1 when empty. */
int app_conv_leaf(const struct app_conv *c);
/* Position of message I among its siblings: *idx of *n (1-based idx). */
void app_conv_siblings(const struct app_conv *c, int i, int *idx, int *n);
/* Choose the previous (delta -1) or next (+1) sibling of message I; the
 * active path then follows that sibling's last choices.  Returns the index
 * of the newly chosen sibling (I when there is none in that direction). */
int app_conv_switch(struct app_conv *c, int i, int delta);

/* JSON text of the conversation (fresh string, free() it). */
char *app_conv_to_json(const struct app_conv *c);
/* Parse; 0, APP_STORE_E_FORMAT (bad JSON, missing fields, a parent index
 * out of range or a cycle) or APP_STORE_E_NEWER (a "version" above
 * APP_CONV_VERSION, which this tern must not save back), the reason in d. */
int app_conv_from_json(const char *text, size_t len, struct app_conv **out,
		       struct diag *d);

/* Save C into DIR (created if needed) atomically.  When the file changed
 * since C last read or wrote it (another tern), what it holds is merged
 * into C first (APP_STORE_MERGED; new messages appended, C's indices
 * kept) or, when it cannot be read as a conversation, C is given a new id
 * and saved beside it (APP_STORE_COPIED); either way d->msg says what
 * happened, naming the file.  Returns 0, one of those, or -1 (d says
 * why). */
int app_conv_save(struct app_conv *c, const char *dir, struct diag *d);
/* Remove C's file from DIR. */
int app_conv_delete(const struct app_conv *c, const char *dir, struct diag *d);

/* Load every *.json conversation in DIR, newest first, into *out (array
 * of n pointers; free each with app_conv_free and the array with free).
 * Corrupt files are renamed aside; files of a newer format version are
 * skipped and left in place.  One line per such file, naming it (relative
 * to DIR) and saying why and what was done, goes into *warnings (fresh
 * string or NULL, free() it).  Returns 0, or -1 when DIR cannot be read. */
int app_store_load_all(const char *dir, struct app_conv ***out, size_t *n,
		       char **warnings, struct diag *d);

#endif
