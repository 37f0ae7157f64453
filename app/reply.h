/* app/reply.h — what the chat shows about one reply, kept per reply
 * (pure, no threads): its speed, and what its end means to the user.
 *
 * Every reply streaming at once has its own meter, so the status bar's
 * tokens/s is the shown conversation's own stream, never the sum of all
 * of them measured from whichever started last. */
#ifndef TERN_APP_REPLY_H
#define TERN_APP_REPLY_H

#include <stddef.h>

#include "inference/llm.h"

struct app_reply_meter {
	double t0;       /* when the reply was asked for (seconds, any clock) */
	size_t n_tokens; /* pieces of text received since */
};

void app_reply_meter_start(struct app_reply_meter *m, double now);
/* One more piece of the reply's text arrived. */
void app_reply_meter_token(struct app_reply_meter *m);
/* Tokens/s of this reply at NOW (0 before any time has passed). */
double app_reply_meter_tps(const struct app_reply_meter *m, double now);

/* The notice a reply that ended with FINISH gets (static text), NULL when
 * its end needs none (the model ended it, max_tokens, stopped by the
 * user, errors: those carry their own message). */
const char *app_reply_finish_notice(enum llm_finish_reason finish);

#endif
