# inference/ — the engine (prefix llm_, public header inference/llm.h).
# Modules append their sources from mk/*.mk.
noinst_LIBRARIES += inference/libllm.a
inference_libllm_a_SOURCES = inference/llm.h inference/llm.c
inference_libllm_a_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(PCRE2_CFLAGS) $(UTF8PROC_CFLAGS)
LLM_LIBS = inference/libllm.a $(JANSSON_LIBS) $(PCRE2_LIBS) $(UTF8PROC_LIBS) $(PNG_LIBS) $(JPEG_LIBS)
