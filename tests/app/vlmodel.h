/* tests/app/vlmodel.h — a runnable tiny vision-language model for app
 * tests: the qwen2_5_vl fixture (tests/data/models/qwen2_5_vl, which has
 * no tokenizer) linked into a temporary directory beside a byte-level BPE
 * tokenizer.json written here: the 256 bytes at ids 0..255 (GPT-2's
 * printable characters, no merges) and the vision markers at the
 * fixture's ids (image 512, video 513, vision start 514 and end 515). */
#ifndef TERN_TESTS_APP_VLMODEL_H
#define TERN_TESTS_APP_VLMODEL_H

/* The directory (fresh string); test_vl_model_rm removes and frees it. */
char *test_vl_model(void);
/* The same for a text model: FIXTURE (under tests/data, e.g.
 * "models/qwen3") with the byte tokenizer and the chat template JINJA
 * (under tests/data, e.g. "templates/hf-qwen3.jinja"; NULL: none).
 * test_vl_model_rm removes it too. */
char *test_chat_model(const char *fixture, const char *jinja);
void test_vl_model_rm(char *dir);

#endif
