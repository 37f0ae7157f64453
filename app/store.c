/* app/store.c — see store.h.  JSON through jansson; files through
 * common/file.c's atomic writer. */
#include "config.h"

#include "app/store.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/file.h"
#include "common/strbuf.h"
#include "common/xalloc.h"

static const char *const role_names[] = { "system", "user", "assistant" };
static const char default_title[] = "New chat";

/* Whether id can name the conversation's file: it becomes DIR/ID.json,
 * so a crafted file's "../x" or "/tmp/x" must not take the save
 * elsewhere.  app_conv_new's ids pass. */
static int id_is_file_name(const char *id)
{
	size_t i, n = strlen(id);

	if (n == 0 || n > 100 || id[0] == '.')
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)id[i]) && !strchr("-_.", id[i]))
			return 0;
	return 1;
}

/* FNV-1a, 64 bits: change detection, not security. */
static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
	const unsigned char *b = p;

	while (n--)
		h = (h ^ *b++) * 0x100000001b3ull;
	return h;
}

#define FNV_SEED 0xcbf29ce484222325ull

/* Of a title, system prompt or model name (NULL too); never 0. */
static uint64_t str_hash(const char *s)
{
	uint64_t h = s ? fnv(s, strlen(s) + 1, FNV_SEED) : 1;

	return h ? h : 1;
}

/* Of what can change in a saved message: its text and partial mark;
 * never 0 (0 is "not in the file"). */
static uint64_t msg_hash(const struct app_msg *m)
{
	uint64_t h = fnv(m->content, m->content_bytes, FNV_SEED);

	h = fnv(&(unsigned char){ (unsigned char)m->partial }, 1, h);
	return h ? h : 1;
}

/* A message id no other process makes: clock, pid and a counter mixed
 * (splitmix64).  The top bit is set so that it never equals a pre-id
 * file's index + 1. */
static uint64_t new_mid(void)
{
	static uint64_t counter;
	struct timespec ts;
	uint64_t z;

	clock_gettime(CLOCK_REALTIME, &ts);
	z = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	z ^= (uint64_t)getpid() << 40;
	z += ++counter * 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return z | 1ull << 63;
}

struct app_conv *app_conv_new(const char *title)
{
	static unsigned counter;
	struct app_conv *c = xcalloc(1, sizeof *c);
	struct timespec ts;
	char id[64];

	clock_gettime(CLOCK_REALTIME, &ts);
	/* Time-ordered and unique within a process and across processes. */
	snprintf(id, sizeof id, "%lld-%06ld-%u-%u", (long long)ts.tv_sec,
		 ts.tv_nsec / 1000, (unsigned)getpid() % 100000u, counter++);
	c->id = xstrdup(id);
	c->title = xstrdup(title ? title : default_title);
	c->system = xstrdup("");
	c->created = c->updated = (int64_t)ts.tv_sec;
	c->root_sel = -1;
	return c;
}

int app_conv_is_blank(const struct app_conv *c)
{
	return !c->n_msgs && !c->system[0] && strcmp(c->title, default_title) == 0;
}

void app_conv_free(struct app_conv *c)
{
	size_t i, j;

	if (!c)
		return;
	for (i = 0; i < c->n_msgs; i++) {
		free(c->msgs[i].content);
		for (j = 0; j < c->msgs[i].n_images; j++)
			free(c->msgs[i].images[j]);
		free(c->msgs[i].images);
	}
	free(c->msgs);
	free(c->id);
	free(c->title);
	free(c->system);
	free(c->model);
	free(c);
}

int app_conv_add(struct app_conv *c, int parent, enum app_role role,
		 const char *content)
{
	struct app_msg *m;
	int i;

	if (c->n_msgs == c->cap_msgs) {
		c->cap_msgs = c->cap_msgs ? 2 * c->cap_msgs : 16;
		c->msgs = xrealloc(c->msgs, c->cap_msgs * sizeof *c->msgs);
	}
	i = (int)c->n_msgs++;
	m = &c->msgs[i];
	memset(m, 0, sizeof *m);
	m->parent = parent;
	m->role = role;
	m->content = xstrdup(content ? content : "");
	m->content_bytes = strlen(m->content);
	m->sel = -1;
	m->time = (int64_t)time(NULL);
	m->mid = new_mid();
	if (parent < 0)
		c->root_sel = i;
	else
		c->msgs[parent].sel = i;
	c->updated = m->time;
	return i;
}

void app_conv_set_content(struct app_conv *c, int i, const char *content)
{
	free(c->msgs[i].content);
	c->msgs[i].content = xstrdup(content);
	c->msgs[i].content_bytes = strlen(content);
}

void app_conv_append_content(struct app_conv *c, int i, const char *text, size_t len)
{
	size_t old = c->msgs[i].content_bytes;
	char *p = xrealloc(c->msgs[i].content, old + len + 1);

	memcpy(p + old, text, len);
	p[old + len] = '\0';
	c->msgs[i].content = p;
	c->msgs[i].content_bytes = old + len;
}

size_t app_conv_path(const struct app_conv *c, int *out, size_t cap)
{
	size_t n = 0;
	int i = c->root_sel;

	while (i >= 0 && n <= c->n_msgs) { /* bound guards against cycles */
		if (n < cap)
			out[n] = i;
		n++;
		i = c->msgs[i].sel;
	}
	return n;
}

int app_conv_leaf(const struct app_conv *c)
{
	int i = c->root_sel, leaf = -1;
	size_t guard = 0;

	while (i >= 0 && guard++ <= c->n_msgs) {
		leaf = i;
		i = c->msgs[i].sel;
	}
	return leaf;
}

void app_conv_siblings(const struct app_conv *c, int i, int *idx, int *n)
{
	size_t j;
	int parent = c->msgs[i].parent;

	*idx = 0;
	*n = 0;
	for (j = 0; j < c->n_msgs; j++) {
		if (c->msgs[j].parent != parent)
			continue;
		(*n)++;
		if ((int)j == i)
			*idx = *n;
	}
}

int app_conv_switch(struct app_conv *c, int i, int delta)
{
	int parent = c->msgs[i].parent, j, pick = i;

	if (delta < 0) {
		for (j = i - 1; j >= 0; j--)
			if (c->msgs[j].parent == parent) {
				pick = j;
				break;
			}
	} else {
		for (j = i + 1; j < (int)c->n_msgs; j++)
			if (c->msgs[j].parent == parent) {
				pick = j;
				break;
			}
	}
	if (parent < 0)
		c->root_sel = pick;
	else
		c->msgs[parent].sel = pick;
	return pick;
}

char *app_conv_to_json(const struct app_conv *c)
{
	json_t *root = json_object(), *msgs = json_array();
	char *text;
	size_t i, j;

	json_object_set_new(root, "version", json_integer(APP_CONV_VERSION));
	json_object_set_new(root, "id", json_string(c->id));
	json_object_set_new(root, "title", json_string(c->title));
	json_object_set_new(root, "system", json_string(c->system));
	if (c->model)
		json_object_set_new(root, "model", json_string(c->model));
	json_object_set_new(root, "created", json_integer(c->created));
	json_object_set_new(root, "updated", json_integer(c->updated));
	json_object_set_new(root, "root_sel", json_integer(c->root_sel));
	for (i = 0; i < c->n_msgs; i++) {
		const struct app_msg *m = &c->msgs[i];
		json_t *o = json_object();
		char mid[24];

		snprintf(mid, sizeof mid, "%016llx", (unsigned long long)m->mid);
		json_object_set_new(o, "id", json_string(mid));
		json_object_set_new(o, "parent", json_integer(m->parent));
		json_object_set_new(o, "role", json_string(role_names[m->role]));
		json_object_set_new(o, "content", json_stringn(m->content, m->content_bytes));
		json_object_set_new(o, "sel", json_integer(m->sel));
		json_object_set_new(o, "time", json_integer(m->time));
		if (m->partial)
			json_object_set_new(o, "partial", json_true());
		if (m->n_images) {
			json_t *a = json_array();

			for (j = 0; j < m->n_images; j++)
				json_array_append_new(a, json_string(m->images[j]));
			json_object_set_new(o, "images", a);
		}
		json_array_append_new(msgs, o);
	}
	json_object_set_new(root, "messages", msgs);
	text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!text) {
		fprintf(stderr, "tern: out of memory writing a conversation\n");
		abort();
	}
	return text;
}

static const char *get_str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

int app_conv_from_json(const char *text, size_t len, struct app_conv **out,
		       struct diag *d)
{
	json_error_t err;
	/* JSON_ALLOW_NUL: a reply's NUL bytes are saved as \u0000. */
	json_t *root = json_loadb(text, len, JSON_ALLOW_NUL, &err), *msgs, *v;
	struct app_conv *c;
	size_t i, j;
	const char *id;

	*out = NULL;
	if (!root)
		return diag_fail(d, APP_STORE_E_FORMAT, "line %d column %d: %s", err.line, err.column,
				 err.text);
	/* A later format may hold what this tern would drop on saving it
	 * back: refuse it.  No "version" reads as 1. */
	v = json_object_get(root, "version");
	if (v && (!json_is_integer(v) || json_integer_value(v) < 1)) {
		json_decref(root);
		return diag_fail(d, APP_STORE_E_FORMAT, "\"version\" is not a format version");
	}
	if (v && json_integer_value(v) > APP_CONV_VERSION) {
		long long ver = (long long)json_integer_value(v);

		json_decref(root);
		return diag_fail(d, APP_STORE_E_NEWER,
				 "written by a newer tern (format version %lld; this one reads %d)",
				 ver, APP_CONV_VERSION);
	}
	id = get_str(root, "id");
	msgs = json_object_get(root, "messages");
	if (!json_is_object(root) || !id || !*id || !json_is_array(msgs)) {
		json_decref(root);
		return diag_fail(d, APP_STORE_E_FORMAT, "not a tern conversation (needs id and messages)");
	}
	if (!id_is_file_name(id)) {
		json_decref(root);
		return diag_fail(d, APP_STORE_E_FORMAT,
				 "\"id\" is not a name tern gives a conversation "
				 "(letters, digits, '-', '_', '.'; at most 100)");
	}
	c = xcalloc(1, sizeof *c);
	c->id = xstrdup(id);
	c->title = xstrdup(get_str(root, "title") ? get_str(root, "title") : "Untitled");
	c->system = xstrdup(get_str(root, "system") ? get_str(root, "system") : "");
	if (get_str(root, "model"))
		c->model = xstrdup(get_str(root, "model"));
	c->created = json_integer_value(json_object_get(root, "created"));
	c->updated = json_integer_value(json_object_get(root, "updated"));
	v = json_object_get(root, "root_sel");
	c->root_sel = json_is_integer(v) ? (int)json_integer_value(v) : -1;
	for (i = 0; i < json_array_size(msgs); i++) {
		json_t *o = json_array_get(msgs, i), *imgs;
		const char *role = get_str(o, "role"), *content = get_str(o, "content");
		struct app_msg *m;
		int r;

		if (!json_is_object(o) || !role || !content ||
		    !json_is_integer(json_object_get(o, "parent")))
			goto bad;
		for (r = 0; r < 3; r++)
			if (strcmp(role, role_names[r]) == 0)
				break;
		if (r == 3)
			goto bad;
		if (c->n_msgs == c->cap_msgs) {
			c->cap_msgs = c->cap_msgs ? 2 * c->cap_msgs : 16;
			c->msgs = xrealloc(c->msgs, c->cap_msgs * sizeof *c->msgs);
		}
		m = &c->msgs[c->n_msgs++];
		memset(m, 0, sizeof *m);
		m->parent = (int)json_integer_value(json_object_get(o, "parent"));
		m->role = (enum app_role)r;
		m->content_bytes = json_string_length(json_object_get(o, "content"));
		m->content = xmalloc(m->content_bytes + 1);
		memcpy(m->content, content, m->content_bytes + 1);
		v = json_object_get(o, "sel");
		m->sel = json_is_integer(v) ? (int)json_integer_value(v) : -1;
		m->time = json_integer_value(json_object_get(o, "time"));
		m->partial = json_is_true(json_object_get(o, "partial"));
		{
			const char *mid = get_str(o, "id");
			char *end;

			m->mid = mid && strlen(mid) == 16 ? strtoull(mid, &end, 16) : 0;
			if (!m->mid || *end)
				m->mid = (uint64_t)i + 1; /* written before ids */
		}
		imgs = json_object_get(o, "images");
		if (json_is_array(imgs) && json_array_size(imgs)) {
			m->images = xcalloc(json_array_size(imgs), sizeof *m->images);
			for (j = 0; j < json_array_size(imgs); j++) {
				json_t *s = json_array_get(imgs, j);

				if (json_is_string(s))
					m->images[m->n_images++] = xstrdup(json_string_value(s));
			}
		}
	}
	/* Structure: parents precede children (so no cycles), selections
	 * point at real children. */
	for (i = 0; i < c->n_msgs; i++) {
		int p = c->msgs[i].parent, s = c->msgs[i].sel;

		if (p < -1 || p >= (int)i)
			goto bad;
		if (s != -1 && (s <= (int)i || s >= (int)c->n_msgs || c->msgs[s].parent != (int)i))
			goto bad;
	}
	if (c->root_sel != -1 && (c->root_sel < 0 || c->root_sel >= (int)c->n_msgs ||
				  c->msgs[c->root_sel].parent != -1))
		goto bad;
	json_decref(root);
	*out = c;
	return 0;
bad:
	json_decref(root);
	app_conv_free(c);
	return diag_fail(d, APP_STORE_E_FORMAT, "malformed message list (message %zu)", i);
}

static char *conv_path(const char *dir, const char *id)
{
	struct strbuf sb;

	strbuf_init(&sb, 0);
	strbuf_printf(&sb, "%s/%s.json", dir, id);
	return strbuf_take(&sb, NULL);
}

/* C now matches the file STAT describes, whose bytes hash to HASH. */
static void mark_synced(struct app_conv *c, const struct stat *st, uint64_t hash)
{
	size_t i;

	c->sync.known = 1;
	c->sync.dev = (uint64_t)st->st_dev;
	c->sync.ino = (uint64_t)st->st_ino;
	c->sync.size = (int64_t)st->st_size;
	c->sync.mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	c->sync.hash = hash;
	c->sync.title = str_hash(c->title);
	c->sync.system = str_hash(c->system);
	c->sync.model = str_hash(c->model);
	for (i = 0; i < c->n_msgs; i++)
		c->msgs[i].sync_hash = msg_hash(&c->msgs[i]);
}

static int same_file(const struct app_conv *c, const struct stat *st)
{
	return c->sync.known && c->sync.dev == (uint64_t)st->st_dev &&
	       c->sync.ino == (uint64_t)st->st_ino && c->sync.size == (int64_t)st->st_size &&
	       c->sync.mtime_ns == (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* *DST (C's, as in the file at SYNC) becomes SRC (the file's now) when
 * only the file's side changed it. */
static void merge_str(char **dst, const char *src, uint64_t sync)
{
	if (str_hash(*dst) == sync && str_hash(src) != sync) {
		free(*dst);
		*dst = src ? xstrdup(src) : NULL;
	}
}

static int find_mid(const struct app_conv *c, uint64_t mid)
{
	size_t i;

	for (i = 0; i < c->n_msgs; i++)
		if (c->msgs[i].mid == mid)
			return (int)i;
	return -1;
}

/* Merge DK (the file as another process left it) into C, both from one
 * file at C's last sync.  C's messages keep their indices; DK's that C
 * lacks are appended (parents precede children in DK, so each parent is
 * placed first); a text only DK changed is taken; C's choices of branch
 * stand where it made one. */
static void conv_merge(struct app_conv *c, const struct app_conv *dk)
{
	int *map = xcalloc(dk->n_msgs + 1, sizeof *map);
	size_t j, k;

	merge_str(&c->title, dk->title, c->sync.title);
	merge_str(&c->system, dk->system, c->sync.system);
	merge_str(&c->model, dk->model, c->sync.model);
	if (dk->updated > c->updated)
		c->updated = dk->updated;
	for (j = 0; j < dk->n_msgs; j++) {
		const struct app_msg *o = &dk->msgs[j];
		struct app_msg *m;
		int i = find_mid(c, o->mid);

		if (i >= 0) {
			m = &c->msgs[i];
			if (msg_hash(m) == m->sync_hash && msg_hash(o) != m->sync_hash) {
				free(m->content);
				m->content = xmalloc(o->content_bytes + 1);
				memcpy(m->content, o->content, o->content_bytes + 1);
				m->content_bytes = o->content_bytes;
				m->partial = o->partial;
			}
			map[j] = i;
			continue;
		}
		if (c->n_msgs == c->cap_msgs) {
			c->cap_msgs = c->cap_msgs ? 2 * c->cap_msgs : 16;
			c->msgs = xrealloc(c->msgs, c->cap_msgs * sizeof *c->msgs);
		}
		i = (int)c->n_msgs++;
		m = &c->msgs[i];
		*m = *o;
		m->parent = o->parent < 0 ? -1 : map[o->parent];
		m->sel = -1;
		m->sync_hash = 0;
		m->content = xmalloc(o->content_bytes + 1);
		memcpy(m->content, o->content, o->content_bytes + 1);
		m->images = o->n_images ? xcalloc(o->n_images, sizeof *m->images) : NULL;
		for (k = 0; k < o->n_images; k++)
			m->images[k] = xstrdup(o->images[k]);
		map[j] = i;
	}
	/* where C chose nothing, DK's choice (a real child only) */
	for (j = 0; j < dk->n_msgs; j++) {
		int s = dk->msgs[j].sel, i = map[j];

		if (c->msgs[i].sel == -1 && s >= 0 && c->msgs[map[s]].parent == i)
			c->msgs[i].sel = map[s];
	}
	if (c->root_sel == -1 && dk->root_sel >= 0 && c->msgs[map[dk->root_sel]].parent == -1)
		c->root_sel = map[dk->root_sel];
	free(map);
}

/* An exclusive flock on DIR/.lock, so that two processes' check, merge
 * and write do not interleave; -1 (no lock, saved anyway) when it cannot
 * be had: a read-only directory fails the write with its own error. */
static int lock_dir(const char *dir)
{
	char *path = file_join(dir, ".lock");
	int fd = path ? open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644) : -1;

	free(path);
	if (fd >= 0 && flock(fd, LOCK_EX) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

int app_conv_save(struct app_conv *c, const char *dir, struct diag *d)
{
	char *path, *text, *disk = NULL;
	struct app_conv *dk = NULL;
	struct stat st;
	struct diag sub;
	size_t disk_len;
	int rc = 0, lock;

	if (file_mkdirs(dir, d) < 0)
		return -1;
	lock = lock_dir(dir);
	path = conv_path(dir, c->id);
	/* Changed since C last read or wrote it: another tern saved it. */
	if (stat(path, &st) == 0 && !same_file(c, &st)) {
		if (file_read_all(path, 256u << 20, &disk, &disk_len, &sub) < 0) {
			rc = APP_STORE_COPIED;
		} else if (c->sync.known && fnv(disk, disk_len, FNV_SEED) == c->sync.hash) {
			; /* the same bytes (touched, or copied back) */
		} else if (app_conv_from_json(disk, disk_len, &dk, &sub) < 0) {
			rc = APP_STORE_COPIED;
		} else {
			conv_merge(c, dk);
			app_conv_free(dk);
			rc = APP_STORE_MERGED;
			diag_clear(d);
			snprintf(d->msg, sizeof d->msg,
				 "%s.json was changed by another tern; its messages were merged in "
				 "(as branches where both added some)", c->id);
		}
		free(disk);
	}
	if (rc == APP_STORE_COPIED) {
		/* Not ours to overwrite: C goes beside it, under a new id. */
		struct app_conv *n = app_conv_new(NULL);
		char *old = c->id, *title;
		size_t i;

		c->id = n->id;
		n->id = NULL;
		app_conv_free(n);
		title = xmalloc(strlen(c->title) + 8);
		sprintf(title, "%s (copy)", c->title);
		free(c->title);
		c->title = title;
		memset(&c->sync, 0, sizeof c->sync);
		for (i = 0; i < c->n_msgs; i++)
			c->msgs[i].sync_hash = 0;
		diag_clear(d);
		snprintf(d->msg, sizeof d->msg,
			 "%s.json was changed by another tern and cannot be merged (%.200s); "
			 "this conversation is saved as %s.json", old, sub.msg, c->id);
		free(old);
		free(path);
		path = conv_path(dir, c->id);
	}
	text = app_conv_to_json(c);
	if (file_write_atomic(path, text, strlen(text), d) < 0)
		rc = -1;
	else if (stat(path, &st) == 0)
		mark_synced(c, &st, fnv(text, strlen(text), FNV_SEED));
	if (lock >= 0)
		close(lock); /* releases the flock */
	free(text);
	free(path);
	return rc;
}

int app_conv_delete(const struct app_conv *c, const char *dir, struct diag *d)
{
	char *path = conv_path(dir, c->id);
	int rc = 0;

	if (unlink(path) < 0 && errno != ENOENT)
		rc = diag_fail(d, -1, "%s: %s", path, strerror(errno));
	free(path);
	return rc;
}

static int newest_first(const void *a, const void *b)
{
	const struct app_conv *x = *(const struct app_conv *const *)a;
	const struct app_conv *y = *(const struct app_conv *const *)b;

	if (x->updated != y->updated)
		return x->updated < y->updated ? 1 : -1;
	return strcmp(y->id, x->id);
}

int app_store_load_all(const char *dir, struct app_conv ***out, size_t *n,
		       char **warnings, struct diag *d)
{
	struct app_conv **v = NULL;
	struct strbuf warn;
	struct dirent *e;
	size_t cnt = 0;
	DIR *dp;

	*out = NULL;
	*n = 0;
	*warnings = NULL;
	strbuf_init(&warn, 0);
	dp = opendir(dir);
	if (!dp) {
		if (errno == ENOENT)
			return 0;
		return diag_fail(d, -1, "%s: %s", dir, strerror(errno));
	}
	while ((e = readdir(dp)) != NULL) {
		size_t l = strlen(e->d_name);
		struct app_conv *c;
		struct diag sub;
		struct stat st;
		char *path, *text;
		size_t len;
		int rc;

		if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0 || e->d_name[0] == '.')
			continue;
		path = file_join(dir, e->d_name);
		if (!path)
			continue;
		/* before reading: a change after the stat shows at the next
		 * save as a different file */
		if (stat(path, &st) < 0)
			memset(&st, 0, sizeof st);
		if (file_read_all(path, 256u << 20, &text, &len, &sub) < 0) {
			strbuf_printf(&warn, "%s\n", sub.msg);
			free(path);
			continue;
		}
		rc = app_conv_from_json(text, len, &c, &sub);
		if (rc == APP_STORE_E_NEWER) {
			/* Not damaged: kept where it is, for the tern that wrote it. */
			strbuf_printf(&warn, "%s: %s; left as it is\n", e->d_name, sub.msg);
		} else if (rc < 0) {
			/* Keep the damaged file, out of the way, for the user. */
			char aside[4096];

			snprintf(aside, sizeof aside, "%s.corrupt-%lld", path,
				 (long long)time(NULL));
			if (rename(path, aside) == 0)
				strbuf_printf(&warn, "%s: damaged (%s); set aside as %s\n",
					      e->d_name, sub.msg, strrchr(aside, '/') + 1);
			else
				strbuf_printf(&warn, "%s: damaged (%s); could not set it aside: %s\n",
					      e->d_name, sub.msg, strerror(errno));
		} else {
			mark_synced(c, &st, fnv(text, len, FNV_SEED));
			v = xrealloc(v, (cnt + 1) * sizeof *v);
			v[cnt++] = c;
		}
		free(text);
		free(path);
	}
	closedir(dp);
	if (cnt)
		qsort(v, cnt, sizeof *v, newest_first);
	*out = v;
	*n = cnt;
	if (warn.len)
		*warnings = strbuf_take(&warn, NULL);
	strbuf_fini(&warn);
	return 0;
}
