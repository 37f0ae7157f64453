/* app/cli.c — small helpers shared by the subcommands. */
#include "config.h"

#include "app/app.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/file.h"

void app_error(const char *fmt, ...)
{
	va_list ap;

	fputs("tern: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void app_bad_option(const char *cmd, int c, char **argv)
{
	/* getopt_long has stepped past the offending word, except for an
	 * unknown letter inside a cluster (-xq, still argv[optind]), which
	 * optopt names; a long option sets optopt to 0 when unknown, to its
	 * value when given an argument it does not take */
	const char *arg = optind > 0 && argv[optind - 1] ? argv[optind - 1] : "";
	const char *cur = argv[optind]; /* argv ends with NULL */
	const bool in_cluster = c == '?' && optopt > 0 && optopt <= UCHAR_MAX && cur &&
				cur[0] == '-' && cur[1] != '-' && strchr(cur + 1, optopt);
	const bool is_long = !in_cluster && strncmp(arg, "--", 2) == 0 &&
			     (c == ':' || optopt == 0 || optopt > UCHAR_MAX ||
			      strchr(arg, '=') != NULL);
	char name[128];

	if (is_long)
		snprintf(name, sizeof name, "%.*s", (int)strcspn(arg, "="), arg);
	else
		snprintf(name, sizeof name, "-%c", optopt);
	if (c == ':')
		app_error("%s: option '%s' needs an argument (see 'tern %s --help')", cmd,
			  name, cmd);
	else if (is_long && optopt != 0)
		app_error("%s: option '%s' takes no argument (see 'tern %s --help')", cmd,
			  name, cmd);
	else
		app_error("%s: unrecognized option '%s' (see 'tern %s --help')", cmd, name,
			  cmd);
}

int app_parse_ids(const char *s, int **ids, size_t *n, char *err, size_t err_len)
{
	size_t cap = 16, cnt = 0;
	int *v = malloc(cap * sizeof *v);

	if (!v) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	for (;;) {
		char *end;
		long long x;

		while (*s == ' ' || *s == '\t' || *s == '\n' || *s == ',')
			s++;
		if (!*s)
			break;
		errno = 0;
		x = strtoll(s, &end, 10);
		if (end == s || errno || x < 0 || x > INT32_MAX ||
		    (*end && *end != ' ' && *end != '\t' && *end != '\n' && *end != ',')) {
			snprintf(err, err_len, "bad token id near '%.20s'", s);
			free(v);
			return -1;
		}
		if (cnt == cap) {
			int *nv = realloc(v, 2 * cap * sizeof *v);

			if (!nv) {
				snprintf(err, err_len, "out of memory");
				free(v);
				return -1;
			}
			v = nv;
			cap *= 2;
		}
		v[cnt++] = (int)x;
		s = end;
	}
	*ids = v;
	*n = cnt;
	return 0;
}

int app_parse_backend(const char *s, enum llm_backend *out)
{
	if (!strcmp(s, "auto"))
		*out = LLM_BACKEND_AUTO;
	else if (!strcmp(s, "cpu"))
		*out = LLM_BACKEND_CPU;
	else if (!strcmp(s, "cuda"))
		*out = LLM_BACKEND_CUDA;
	else
		return -1;
	return 0;
}

int app_parse_kv_type(const char *cmd, const char *s, struct llm_model_params *mp)
{
	if (llm_kv_type_parse(s, mp))
		return 0;
	app_error("%s: unknown KV type '%s' (auto, f32, f16, q2..q8, or K,V bits as q8,q4)",
		  cmd, s);
	return -1;
}

int app_check_ctx(const char *cmd, long long n_ctx, const struct llm_model *m)
{
	const int64_t train = llm_model_n_ctx_train(m);

	if (train > 0 && n_ctx > train) {
		app_error("%s: --ctx %lld is more than the model's context (%lld)", cmd, n_ctx,
			  (long long)train);
		return -1;
	}
	return 0;
}

int app_check_model_dir(const char *cmd, const char *opt, const char *path)
{
	if (!file_is_file(path))
		return 0;
	app_error("%s: %s expects a model directory, not the file %s", cmd, opt, path);
	return -1;
}

int app_read_stdin(char **out, size_t *len)
{
	size_t cap = 65536, n = 0, r;
	char *buf = malloc(cap + 1);

	if (!buf)
		return -1;
	while ((r = fread(buf + n, 1, cap - n, stdin)) > 0) {
		n += r;
		if (n == cap) {
			char *p = cap > SIZE_MAX / 4 ? NULL : realloc(buf, cap * 2 + 1);

			if (!p) {
				free(buf);
				return -1;
			}
			buf = p;
			cap *= 2;
		}
	}
	if (ferror(stdin)) {
		free(buf);
		return -1;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

const char *app_default_calibration(void)
{
	static const char *installed = TERN_PKGDATADIR "/calibration.txt";
	static const char *source = TERN_SRCDIR "/data/calibration.txt";

	if (file_is_file(installed))
		return installed;
	return source;
}

const char *app_default_model_dir(void)
{
	static const char *installed = TERN_PKGDATADIR "/models/stories260k";
	static const char *source = TERN_SRCDIR "/models/stories260k";

	if (file_is_dir(installed))
		return installed;
	return source;
}
