/* common/file.h — whole-file reads, read-only mappings and atomic writes.
 *
 * Errors: functions return 0 or a negative errno-style value (-ENOENT, ...,
 * or -EFBIG when a file exceeds the caller's limit) and fill the optional
 * diag with "PATH: reason".  Nothing here prints.
 */
#ifndef TERN_COMMON_FILE_H
#define TERN_COMMON_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Read all of PATH into a fresh NUL-terminated buffer (*out, free() it).
 * max_bytes 0 means no limit.  *len excludes the added NUL. */
int file_read_all(const char *path, size_t max_bytes, char **out, size_t *len,
		  struct diag *d);

/* A read-only mapping of a whole file (empty files map to addr NULL,
 * size 0). */
struct file_map {
	void *addr;
	uint64_t size;
};
int file_map_open(const char *path, struct file_map *m, struct diag *d);
void file_map_close(struct file_map *m); /* no-op on a zeroed map */

/* Replace PATH atomically with DATA: write PATH.tmp.PID, fsync, rename,
 * fsync the directory.  On failure PATH is untouched and the temp file is
 * removed. */
int file_write_atomic(const char *path, const void *data, size_t len,
		      struct diag *d);

/* mkdir -p with mode 0700 for new components. */
int file_mkdirs(const char *path, struct diag *d);

/* 1 if PATH exists and is a directory, else 0. */
int file_is_dir(const char *path);
/* 1 if PATH exists and is a regular file, else 0. */
int file_is_file(const char *path);

/* Join DIR and NAME with one '/', into a fresh string (free() it), or NULL
 * when out of memory. */
char *file_join(const char *dir, const char *name);

#ifdef __cplusplus
}
#endif
#endif
