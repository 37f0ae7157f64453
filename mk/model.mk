# mk/model.mk — models and the forward pass: loading HF model directories
# onto a backend, the evaluation context (paged KV cache), the forward pass
# of every text architecture, the Qwen2.5-VL vision tower on the host,
# `tern logits`, `tern bench` and `tern ppl`, and the conformance and
# vision suites against transformers' logits and image embeddings
# (tests/data/models/*, the bundled models/stories260k, and the shared
# trained-target when present).
inference_libllm_a_SOURCES += inference/model.c inference/model_impl.h \
	inference/forward.c inference/vision.c
tests_check_inference_SOURCES += tests/inference/test_conformance.c \
	tests/inference/test_vision.c
app_libapp_a_SOURCES += app/cmd_logits.c app/cmd_bench.c app/cmd_ppl.c
EXTRA_DIST += tests/data/models/stories260k/reference.safetensors
