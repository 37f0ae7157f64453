# mk/bench.mk — synthetic random-weight models of real shapes
# (inference/synthetic.c) and the benchmark core behind `tern bench`
# (inference/bench.c; API in inference/llm.h "Benchmark"), with their tests.
# app/cmd_bench.c itself is listed by mk/model.mk.
inference_libllm_a_SOURCES += inference/synthetic.c inference/synthetic_impl.h \
	inference/bench.c
tests_check_inference_SOURCES += tests/inference/test_synthetic.c
