# mk/model.mk — models and the forward pass: loading HF model directories
# onto a backend, the evaluation context (paged KV cache), the forward pass
# of every text architecture, `tern logits`, `tern bench` and `tern ppl`,
# and the conformance suite against transformers' logits
# (tests/data/models/*, the bundled models/stories260k, and the shared
# trained-target when present).
inference_libllm_a_SOURCES += inference/model.c inference/model_impl.h \
	inference/forward.c
tests_check_inference_SOURCES += tests/inference/test_conformance.c
app_libapp_a_SOURCES += app/cmd_logits.c app/cmd_bench.c app/cmd_ppl.c
EXTRA_DIST += tests/data/models/stories260k/reference.safetensors
