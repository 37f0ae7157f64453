/* inference/llm.c — engine-wide helpers: error strings and version. */
#include "config.h"

#include "inference/llm.h"

const char *llm_strerror(int err)
{
	switch (err) {
	case LLM_OK: return "success";
	case LLM_E_NOMEM: return "out of memory";
	case LLM_E_IO: return "input/output error";
	case LLM_E_FORMAT: return "malformed file";
	case LLM_E_UNSUPPORTED: return "not supported";
	case LLM_E_INVALID: return "invalid argument";
	case LLM_E_TEMPLATE: return "chat template error";
	case LLM_E_RAISED: return "chat template raised an exception";
	case LLM_E_LIMIT: return "resource limit exceeded";
	case LLM_E_BACKEND: return "compute backend error";
	case LLM_E_CANCELLED: return "cancelled";
	case LLM_E_NOSPACE: return "does not fit";
	}
	return "unknown error";
}

const char *llm_version(void)
{
	return PACKAGE_VERSION;
}
