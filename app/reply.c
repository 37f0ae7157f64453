/* app/reply.c — see reply.h. */
#include "config.h"

#include "app/reply.h"

void app_reply_meter_start(struct app_reply_meter *m, double now)
{
	m->t0 = now;
	m->n_tokens = 0;
}

void app_reply_meter_token(struct app_reply_meter *m)
{
	m->n_tokens++;
}

double app_reply_meter_tps(const struct app_reply_meter *m, double now)
{
	const double dt = now - m->t0;

	return dt > 0 ? (double)m->n_tokens / dt : 0.0;
}

const char *app_reply_finish_notice(enum llm_finish_reason finish)
{
	switch (finish) {
	case LLM_FINISH_LOOP:
		return "reply stopped: it was repeating itself "
		       "(stop_on_loop in the sampler panel; 0 turns it off)";
	case LLM_FINISH_CONTEXT:
		return "reply stopped: the context is full";
	default:
		return NULL;
	}
}
