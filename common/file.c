/* common/file.c — see file.h. */
#include "config.h"

#include "common/file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int file_read_all(const char *path, size_t max_bytes, char **out, size_t *len,
		  struct diag *d)
{
	struct stat st;
	char *buf = NULL;
	size_t cap, n = 0;
	int fd, e;

	*out = NULL;
	if (len)
		*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		return diag_fail(d, -e, "%s: %s", path, strerror(e));
	}
	if (fstat(fd, &st) < 0) {
		e = errno;
		close(fd);
		return diag_fail(d, -e, "%s: %s", path, strerror(e));
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		return diag_fail(d, -EISDIR, "%s: is a directory", path);
	}
	cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 4096;
	if (max_bytes && cap > max_bytes + 1) {
		close(fd);
		return diag_fail(d, -EFBIG, "%s: file is larger than %zu bytes",
				 path, max_bytes);
	}
	buf = malloc(cap);
	if (!buf) {
		close(fd);
		return diag_fail(d, -ENOMEM, "%s: out of memory", path);
	}
	for (;;) {
		ssize_t r;

		if (n + 1 >= cap) {
			char *nb;

			if (max_bytes && n >= max_bytes) {
				free(buf);
				close(fd);
				return diag_fail(d, -EFBIG,
						 "%s: file is larger than %zu bytes",
						 path, max_bytes);
			}
			nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				close(fd);
				return diag_fail(d, -ENOMEM, "%s: out of memory", path);
			}
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - 1 - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			e = errno;
			free(buf);
			close(fd);
			return diag_fail(d, -e, "%s: %s", path, strerror(e));
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	*out = buf;
	if (len)
		*len = n;
	return 0;
}

int file_map_open(const char *path, struct file_map *m, struct diag *d)
{
	struct stat st;
	int fd, e;

	m->addr = NULL;
	m->size = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		return diag_fail(d, -e, "%s: %s", path, strerror(e));
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		e = S_ISREG(st.st_mode) ? errno : EINVAL;
		close(fd);
		return diag_fail(d, -e, "%s: not a regular file", path);
	}
	if (st.st_size > 0) {
		void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE,
			       fd, 0);

		if (p == MAP_FAILED) {
			e = errno;
			close(fd);
			return diag_fail(d, -e, "%s: mmap: %s", path, strerror(e));
		}
		m->addr = p;
		m->size = (uint64_t)st.st_size;
	}
	close(fd);
	return 0;
}

void file_map_close(struct file_map *m)
{
	if (m->addr)
		munmap(m->addr, (size_t)m->size);
	m->addr = NULL;
	m->size = 0;
}

static int write_full(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int file_write_atomic(const char *path, const void *data, size_t len,
		      struct diag *d)
{
	size_t n = strlen(path) + 32;
	char *tmp = malloc(n), *dcopy;
	int fd, rc;

	if (!tmp)
		return diag_fail(d, -ENOMEM, "%s: out of memory", path);
	snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		diag_fail(d, rc, "%s: %s", tmp, strerror(-rc));
		free(tmp);
		return rc;
	}
	rc = write_full(fd, data, len);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0) {
		diag_fail(d, rc, "%s: %s", path, strerror(-rc));
		unlink(tmp);
		free(tmp);
		return rc;
	}
	free(tmp);
	/* Make the rename itself durable. */
	dcopy = strdup(path);
	if (dcopy) {
		int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
		free(dcopy);
	}
	return 0;
}

int file_mkdirs(const char *path, struct diag *d)
{
	char *p = strdup(path), *s;
	int rc = 0;

	if (!p)
		return diag_fail(d, -ENOMEM, "%s: out of memory", path);
	for (s = p + 1;; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;

			*s = '\0';
			if (mkdir(p, 0700) < 0 && errno != EEXIST) {
				rc = -errno;
				diag_fail(d, rc, "%s: %s", p, strerror(errno));
				break;
			}
			*s = c;
			if (c == '\0')
				break;
		}
	}
	free(p);
	return rc;
}

int file_is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int file_is_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

char *file_join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *p;

	while (a > 1 && dir[a - 1] == '/')
		a--;
	p = malloc(a + b + 2);
	if (!p)
		return NULL;
	memcpy(p, dir, a);
	p[a] = '/';
	memcpy(p + a + 1, name, b + 1);
	return p;
}
