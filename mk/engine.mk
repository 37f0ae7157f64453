# mk/engine.mk — the job scheduler with continuous batching, the paged KV
# cache with prefix reuse and speculative decoding (inference/engine.c,
# inference/kvcache.c; API in inference/llm.h "Engine and jobs"), `tern
# run`, and their tests.
inference_libllm_a_SOURCES += inference/engine.c inference/kvcache.c \
	inference/engine_impl.h
app_libapp_a_SOURCES += app/cmd_run.c
tests_check_inference_SOURCES += tests/inference/test_engine.c \
	tests/inference/test_kvcache.c tests/inference/test_spec.c
tests_check_app_SOURCES += tests/app/test_run.c
EXTRA_DIST += tests/data/stories260k/out_greedy_prompt_n256.txt \
	tests/data/stories260k/out_greedy_n200.txt
