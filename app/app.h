/* app/app.h — app-internal declarations (the composition root; prefix app_).
 *
 * Subcommands are listed in app/subcommands.def as
 *   SUBCOMMAND(name, "one-line summary")
 * and each is implemented in app/cmd_NAME.c by
 *   int  app_cmd_NAME(int argc, char **argv);   argv[0] is "NAME"; returns
 *                                               the exit status, never exits
 *   void app_help_NAME(FILE *out);              full usage text
 * Only app/main.c may call exit().
 */
#ifndef TERN_APP_APP_H
#define TERN_APP_APP_H

#include <stdio.h>

#include "inference/llm.h"

#define SUBCOMMAND(name, summary)             \
	int app_cmd_##name(int argc, char **argv); \
	void app_help_##name(FILE *out);
#include "app/subcommands.def"
#undef SUBCOMMAND

/* Exit statuses shared by subcommands. */
enum app_status {
	APP_STATUS_OK = 0,
	APP_STATUS_ERROR = 1,  /* runtime failure (file, model, ...) */
	APP_STATUS_USAGE = 2,  /* bad command line */
	APP_STATUS_RAISED = 3, /* a chat template raised an exception */
};

/* Print "tern: " + message to stderr (for subcommands; libraries never
 * print). */
void app_error(const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 1, 2)))
#endif
	;

/* Report the option that getopt_long refused in subcommand CMD's command
 * line, the same way in every subcommand: "CMD: unrecognized option
 * '--x'", "CMD: option '-n' needs an argument" or "CMD: option '--x'
 * takes no argument", each with "(see 'tern CMD --help')".  C is what
 * getopt_long returned ('?' or ':'); call it with opterr = 0 and an
 * optstring that starts with ':'.  The caller exits with
 * APP_STATUS_USAGE. */
void app_bad_option(const char *cmd, int c, char **argv);

/* Parse a whitespace-separated list of token ids ("1 2 3") into a fresh
 * array (*ids, free() it).  Returns 0, or -1 with a message in err (a bad
 * number or an id outside [0, INT32_MAX]). */
int app_parse_ids(const char *s, int **ids, size_t *n, char *err, size_t err_len);

/* Parse a --backend value: "auto", "cpu" or "cuda" into *out.  Returns 0,
 * or -1 (*out unchanged) for anything else; the caller reports it. */
int app_parse_backend(const char *s, enum llm_backend *out);

/* Parse a --kv-type value into mp's kv_type and bits (llm_kv_type_parse).
 * Returns 0, or -1 after reporting "CMD: unknown KV type ..." with the
 * forms it takes. */
int app_parse_kv_type(const char *cmd, const char *s, struct llm_model_params *mp);

/* Check an explicit --ctx N of subcommand CMD against M's context
 * (max_position_embeddings: with llama3 or linear RoPE scaling it is
 * already the scaled length, and YaRN/dynamic scaling, which could
 * stretch it further, do not load), so that run, bench and ppl refuse
 * the same values.  Returns 0, or -1 after reporting "CMD: --ctx N is
 * more than the model's context (T)"; the caller exits with
 * APP_STATUS_USAGE.  A model that does not give its context passes. */
int app_check_ctx(const char *cmd, long long n_ctx, const struct llm_model *m);

/* Check that PATH, given to subcommand CMD's option OPT ("-m", "--draft"),
 * is not a file: a model is the directory holding config.json, and
 * a file there (say that config.json) would otherwise give a puzzling
 * "config.json/config.json: Not a directory".  Returns 0 (a directory,
 * or nothing there: the loader reports that), or -1 after reporting
 * "CMD: OPT expects a model directory, not the file PATH"; the caller
 * exits with APP_STATUS_USAGE. */
int app_check_model_dir(const char *cmd, const char *opt, const char *path);

/* Read all of standard input, every byte as it is, into a fresh buffer
 * (*out, NUL added after the *len bytes; free() it).  Returns 0, or -1
 * (read error, no memory) with nothing to free. */
int app_read_stdin(char **out, size_t *len);

/* Directory of the bundled default model: the installed copy under
 * $(pkgdatadir)/models/stories260k, else the source tree's (running from a
 * build tree).  Returns a static string. */
const char *app_default_model_dir(void);
/* The bundled calibration text of `tern convert`: the installed
 * $(pkgdatadir)/calibration.txt, else the source tree's data/.  Static. */
const char *app_default_calibration(void);

/* The interactive chat (tern with no subcommand). */
int app_chat_main(int argc, char **argv);

#endif
