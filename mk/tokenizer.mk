# mk/tokenizer.mk — the Hugging Face tokenizer (inference/tokenizer*.c; API in
# inference/llm.h "Tokenizer"), `tern tokenize`, its conformance tests and a
# throughput bench.
inference_libllm_a_SOURCES += inference/tokenizer.c inference/tokenizer_load.c \
	inference/tokenizer_text.c inference/tokenizer_bpe.c inference/tokenizer_impl.h
app_libapp_a_SOURCES += app/cmd_tokenize.c
tests_check_inference_SOURCES += tests/inference/test_tokenizer.c

# Test data: cases.json + tokenizer_config.json of each tokenizer, and its
# tokenizer.json (gzip -9 when large; unpacked into the build tree under
# tests/check_tokdata/NAME/ together with a copy of its config, so that the
# tests can open the directory).
TOKENIZER_NAMES = llama2 llama3.2 mistral-7b-instruct-v0.2 mistral-nemo qwen2.5 qwen3 gemma3
TOKENIZER_GZ = llama3.2 mistral-nemo qwen2.5 qwen3 gemma3
TOKENIZER_FILES = \
	tests/data/tokenizers/llama2/tokenizer.json \
	tests/data/tokenizers/llama2/LICENSE.txt \
	tests/data/tokenizers/mistral-7b-instruct-v0.2/tokenizer.json \
	$(foreach n,$(TOKENIZER_GZ),tests/data/tokenizers/$(n)/tokenizer.json.gz) \
	$(foreach n,$(TOKENIZER_NAMES),tests/data/tokenizers/$(n)/cases.json \
		tests/data/tokenizers/$(n)/tokenizer_config.json)
EXTRA_DIST += $(TOKENIZER_FILES)
TOKENIZER_UNPACKED = $(foreach n,$(TOKENIZER_GZ),tests/check_tokdata/$(n)/tokenizer.json)
check_DATA = $(TOKENIZER_UNPACKED)
CLEANFILES += $(TOKENIZER_UNPACKED) \
	$(foreach n,$(TOKENIZER_GZ),tests/check_tokdata/$(n)/tokenizer_config.json)

tests/check_tokdata/%/tokenizer.json: $(top_srcdir)/tests/data/tokenizers/%/tokenizer.json.gz
	$(AM_V_GEN)$(MKDIR_P) $(@D) && \
	gzip -dc $< > $@.tmp && mv $@.tmp $@ && \
	cp $(top_srcdir)/tests/data/tokenizers/$*/tokenizer_config.json $(@D)/tokenizer_config.json

# bench: tests/bench_tokenize TOKENIZER_DIR TEXT_FILE (not run by make check)
noinst_PROGRAMS += tests/bench_tokenize
tests_bench_tokenize_SOURCES = tests/bench_tokenize.c
tests_bench_tokenize_LDADD = $(LLM_LIBS) $(GPU_LIBS) common/libcommon.a $(LIBS)
tests_bench_tokenize_CFLAGS = $(AM_CFLAGS)
