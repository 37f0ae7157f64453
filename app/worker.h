/* app/worker.h — the engine thread.
 *
 * The worker owns the model, its tokenizer and chat template, and the
 * engine; it is the only thread that calls into inference/ (except
 * llm_job_cancel).  The main thread sends commands (app_worker_load,
 * app_worker_generate, app_worker_cancel) that return at once, and reads
 * events with app_worker_poll after the wake fd becomes readable, so key
 * handling never waits on the engine.
 *
 * Ownership: commands copy what they are given; events returned by
 * app_worker_poll are owned by the caller (app_worker_event_fini).
 */
#ifndef TERN_APP_WORKER_H
#define TERN_APP_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "app/config.h"
#include "inference/llm.h"

struct app_worker;

/* One chat message handed to a generation. */
struct app_wmsg {
	const char *role; /* "system", "user", "assistant" */
	const char *content;
	/* image files attached to the message (read when the model has a
	 * vision tower, placed before its text; ignored otherwise) */
	const char *const *images;
	size_t n_images;
};

enum app_wev_type {
	APP_WEV_LOADED,      /* model ready: text = name, info filled */
	APP_WEV_LOAD_FAILED, /* text = why (the previous model is gone too) */
	APP_WEV_PROGRESS,    /* value = fraction, text = stage */
	APP_WEV_TEXT,        /* tag, text = new reply text */
	APP_WEV_DONE,        /* tag, finish, stats; text = error if any */
	APP_WEV_NOTICE,      /* tag, text = what the user should know about
			      * the reply before it starts (an image left
			      * out, the conversation cut to fit); warn = 1
			      * when something was left out */
};

struct app_model_info {
	char arch[64];
	char backend[64];
	size_t n_ctx;
	int has_template;   /* 0: completion mode */
	int has_vision;     /* images attached to messages are read */
	int64_t n_vocab;    /* token ids are below this */
	uint64_t bytes;
};

struct app_wev {
	enum app_wev_type type;
	int tag;
	char *text;          /* owned by the event */
	size_t len;
	double value;
	enum llm_finish_reason finish;
	struct llm_job_stats stats; /* DONE; TEXT: the speculative decoding
				     * counts so far (n_drafted, n_accepted) */
	size_t ctx_used;     /* DONE, TEXT: prompt + generated positions of
			      * the job (so far) */
	int warn;            /* NOTICE: a warning rather than information */
	struct app_model_info info;
};

/* Start the worker thread.  wake_fd receives one byte per batch of
 * events.  Returns NULL (and a message in d) when the thread cannot
 * start. */
struct app_worker *app_worker_start(int wake_fd, struct diag *d);
/* Cancel everything, join the thread, free the model.  NULL is a no-op. */
void app_worker_stop(struct app_worker *w);

/* Unload the current model completely, then load DIR (n_ctx 0: the
 * model's own, capped at 8192; backend "auto"/"cpu"/"cuda"; k_bits and
 * v_bits the KV cache's bits per element: 16 = f16, the only kind
 * implemented — 2..8 (quantized) fail the load with a message; DRAFT, may
 * be NULL: a smaller model of the same vocabulary for speculative
 * decoding, loaded with the same settings). */
void app_worker_load(struct app_worker *w, const char *name, const char *dir,
		     const char *draft, size_t n_ctx, const char *backend,
		     int threads, int k_bits, int v_bits);
/* Generate a reply to MSGS (the conversation up to and including the last
 * user message) as job TAG with PRESET's sampler settings and
 * max_tokens (copied, arrays included).  In completion mode (no chat template) the
 * messages' contents are concatenated and continued as plain text.
 * An attached image the vision tower cannot take (unreadable, or a size
 * llm_vision_check_size refuses) is left out with a NOTICE, so one bad
 * image never fails every later reply of its conversation; a
 * conversation longer than the context loses its oldest tokens, also
 * with a NOTICE. */
void app_worker_generate(struct app_worker *w, int tag, const char *system,
			 const struct app_wmsg *msgs, size_t n_msgs,
			 const struct app_preset *preset);
/* Stop job TAG (no-op when it is finished). */
void app_worker_cancel(struct app_worker *w, int tag);

/* Take the next event; 1 when *ev was filled, 0 when none is pending. */
int app_worker_poll(struct app_worker *w, struct app_wev *ev);
void app_worker_event_fini(struct app_wev *ev);

#endif
