# mk/modelfile.mk — the model-file layer: safetensors (single + sharded) and
# config.json parsing (inference/safetensors.c, inference/config.c), their
# tests, and the tiny model fixtures (tests/data/models/, see
# tests/data/README.md).
inference_libllm_a_SOURCES += inference/safetensors.c inference/safetensors_impl.h \
	inference/config.c inference/config_impl.h
tests_check_inference_SOURCES += tests/inference/test_safetensors.c \
	tests/inference/test_config.c
EXTRA_DIST += \
	tests/data/models/llama2/config.json \
	tests/data/models/llama2/config.v5.json \
	tests/data/models/llama2/generation_config.json \
	tests/data/models/llama2/model.safetensors \
	tests/data/models/llama2/reference.safetensors \
	tests/data/models/llama3/config.json \
	tests/data/models/llama3/config.v5.json \
	tests/data/models/llama3/generation_config.json \
	tests/data/models/llama3/model.safetensors \
	tests/data/models/llama3/reference.safetensors \
	tests/data/models/mistral/config.json \
	tests/data/models/mistral/config.v5.json \
	tests/data/models/mistral/generation_config.json \
	tests/data/models/mistral/model.safetensors \
	tests/data/models/mistral/reference.safetensors \
	tests/data/models/mixtral/config.json \
	tests/data/models/mixtral/config.v5.json \
	tests/data/models/mixtral/generation_config.json \
	tests/data/models/mixtral/model.safetensors \
	tests/data/models/mixtral/reference.safetensors \
	tests/data/models/qwen2/config.json \
	tests/data/models/qwen2/config.v5.json \
	tests/data/models/qwen2/generation_config.json \
	tests/data/models/qwen2/model.safetensors \
	tests/data/models/qwen2/reference.safetensors \
	tests/data/models/qwen2moe/config.json \
	tests/data/models/qwen2moe/config.v5.json \
	tests/data/models/qwen2moe/generation_config.json \
	tests/data/models/qwen2moe/model.safetensors \
	tests/data/models/qwen2moe/reference.safetensors \
	tests/data/models/qwen3/config.json \
	tests/data/models/qwen3/config.v5.json \
	tests/data/models/qwen3/generation_config.json \
	tests/data/models/qwen3/model.safetensors \
	tests/data/models/qwen3/reference.safetensors \
	tests/data/models/qwen3moe/config.json \
	tests/data/models/qwen3moe/config.v5.json \
	tests/data/models/qwen3moe/generation_config.json \
	tests/data/models/qwen3moe/model.safetensors \
	tests/data/models/qwen3moe/reference.safetensors \
	tests/data/models/qwen2_5_vl/config.json \
	tests/data/models/qwen2_5_vl/config.v5.json \
	tests/data/models/qwen2_5_vl/generation_config.json \
	tests/data/models/qwen2_5_vl/model.safetensors \
	tests/data/models/qwen2_5_vl/picture.png \
	tests/data/models/qwen2_5_vl/preprocessor_config.json \
	tests/data/models/qwen2_5_vl/reference.safetensors \
	tests/data/models/qwen2_5_vl/skimage-chelsea.png \
	tests/data/models/exl3-llama3/config.json \
	tests/data/models/exl3-llama3/layer_plan.json \
	tests/data/models/exl3-llama3/model.safetensors \
	tests/data/models/exl3-llama3/reference.safetensors
