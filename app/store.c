/* app/store.c — see store.h.  JSON through jansson; files through
 * common/file.c's atomic writer. */
#include "config.h"

#include "app/store.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int app_conv_save(const struct app_conv *c, const char *dir, struct diag *d)
{
	char *path, *text;
	int rc;

	if (file_mkdirs(dir, d) < 0)
		return -1;
	path = conv_path(dir, c->id);
	text = app_conv_to_json(c);
	rc = file_write_atomic(path, text, strlen(text), d) < 0 ? -1 : 0;
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
		char *path, *text;
		size_t len;
		int rc;

		if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0 || e->d_name[0] == '.')
			continue;
		path = file_join(dir, e->d_name);
		if (!path)
			continue;
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
