# mk/sampler.mk — the sampler pipeline and the stop-string matcher
# (inference/sampler.c, inference/stop.c; API in inference/llm.h "Sampling").
inference_libllm_a_SOURCES += inference/sampler.c inference/stop.c
tests_check_inference_SOURCES += tests/inference/test_sampler.c
