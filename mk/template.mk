# mk/template.mk — chat templates: the sandboxed Jinja2 interpreter
# (inference/jinja*.c), model template loading and message rendering
# (inference/chat_template.c; API in inference/llm.h "Chat templates"),
# `tern template`, and the conformance suite against transformers' renders.
inference_libllm_a_SOURCES += inference/jinja_impl.h inference/jinja_lex.c \
	inference/jinja_parse.c inference/jinja_value.c inference/jinja_eval.c \
	inference/jinja_filters.c inference/chat_template.c
app_libapp_a_SOURCES += app/cmd_template.c
tests_check_inference_SOURCES += tests/inference/test_template.c

# Test data: the 16 templates and transformers' 298 reference renders.
TEMPLATE_NAMES = hf-gemma3 hf-llama3.2 hf-llama3 hf-mistral-7b-instruct-v0.2 \
	hf-mistral-nemo hf-qwen2.5-vl hf-qwen2.5 hf-qwen3 \
	llama.cpp-deepseek-ai-DeepSeek-R1-Distill-Qwen-32B \
	llama.cpp-google-gemma-2-2b-it llama.cpp-meta-llama-Llama-3.1-8B-Instruct \
	llama.cpp-microsoft-Phi-3.5-mini-instruct \
	llama.cpp-mistralai-Mistral-Nemo-Instruct-2407 ollama-gemma3-instruct.1 \
	ollama-llama2-chat.2 ollama-mistral-instruct.2
EXTRA_DIST += tests/data/templates/cases.json \
	$(foreach n,$(TEMPLATE_NAMES),tests/data/templates/$(n).jinja)
