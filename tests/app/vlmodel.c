/* tests/app/vlmodel.c — see vlmodel.h. */
#include "config.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "vlmodel.h"

static const char *const vl_files[] = { "config.json", "generation_config.json",
	"model.safetensors", "preprocessor_config.json" };

/* A byte-level BPE tokenizer.json: the 256 bytes as GPT-2's printable
 * characters at ids 0..255, no merges, the vision markers as added
 * special tokens. */
static void write_byte_tokenizer(const char *path)
{
	json_t *root = json_object(), *model = json_object(), *vocab = json_object();
	json_t *added = json_array(), *pre = json_object(), *dec = json_object();
	static const struct { const char *s; int id; } sp[] = {
		{ "<|image_pad|>", 512 }, { "<|video_pad|>", 513 },
		{ "<|vision_start|>", 514 }, { "<|vision_end|>", 515 },
	};
	int b, n = 0;
	size_t i;

	for (b = 0; b < 256; b++) {
		/* GPT-2 bytes_to_unicode */
		int cp = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) ||
				 (b >= 0xAE && b <= 0xFF) ? b : 256 + n++;
		char u[4];

		if (cp < 0x80) {
			u[0] = (char)cp;
			u[1] = 0;
		} else {
			u[0] = (char)(0xC0 | (cp >> 6));
			u[1] = (char)(0x80 | (cp & 0x3F));
			u[2] = 0;
		}
		json_object_set_new(vocab, u, json_integer(b));
	}
	json_object_set_new(model, "type", json_string("BPE"));
	json_object_set_new(model, "vocab", vocab);
	json_object_set_new(model, "merges", json_array());
	for (i = 0; i < sizeof sp / sizeof sp[0]; i++) {
		json_t *t = json_object();

		json_object_set_new(t, "id", json_integer(sp[i].id));
		json_object_set_new(t, "content", json_string(sp[i].s));
		json_object_set_new(t, "single_word", json_false());
		json_object_set_new(t, "lstrip", json_false());
		json_object_set_new(t, "rstrip", json_false());
		json_object_set_new(t, "normalized", json_false());
		json_object_set_new(t, "special", json_true());
		json_array_append_new(added, t);
	}
	json_object_set_new(pre, "type", json_string("ByteLevel"));
	json_object_set_new(pre, "add_prefix_space", json_false());
	json_object_set_new(pre, "trim_offsets", json_true());
	json_object_set_new(pre, "use_regex", json_true());
	json_object_set_new(dec, "type", json_string("ByteLevel"));
	json_object_set_new(dec, "add_prefix_space", json_true());
	json_object_set_new(dec, "trim_offsets", json_true());
	json_object_set_new(dec, "use_regex", json_true());
	json_object_set_new(root, "version", json_string("1.0"));
	json_object_set_new(root, "added_tokens", added);
	json_object_set_new(root, "normalizer", json_null());
	json_object_set_new(root, "pre_tokenizer", pre);
	json_object_set_new(root, "post_processor", json_null());
	json_object_set_new(root, "decoder", dec);
	json_object_set_new(root, "model", model);
	ck_assert_int_eq(json_dump_file(root, path, 0), 0);
	json_decref(root);
}

/* FIXTURE's files linked into a fresh directory (a missing one, such as a
 * text model's preprocessor_config.json, is skipped), the byte tokenizer
 * and, when JINJA is given, that template (tests/data) as
 * chat_template.jinja. */
static char *make_model(const char *fixture, const char *jinja)
{
	char tmpl[] = "/tmp/tern-vl-XXXXXX", path[512], target[512];
	char *src = test_data_path(fixture);
	size_t i;

	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	for (i = 0; i < sizeof vl_files / sizeof vl_files[0]; i++) {
		snprintf(target, sizeof target, "%s/%s", src, vl_files[i]);
		snprintf(path, sizeof path, "%s/%s", tmpl, vl_files[i]);
		if (access(target, R_OK) == 0)
			ck_assert_int_eq(symlink(target, path), 0);
	}
	snprintf(path, sizeof path, "%s/tokenizer.json", tmpl);
	write_byte_tokenizer(path);
	if (jinja) {
		char *t = test_data_path(jinja);

		snprintf(path, sizeof path, "%s/chat_template.jinja", tmpl);
		ck_assert_int_eq(symlink(t, path), 0);
		free(t);
	}
	free(src);
	return strdup(tmpl);
}

char *test_vl_model(void)
{
	return make_model("models/qwen2_5_vl", NULL);
}

char *test_chat_model(const char *fixture, const char *jinja)
{
	return make_model(fixture, jinja);
}

void test_vl_model_rm(char *dir)
{
	static const char *const more[] = { "tokenizer.json", "chat_template.jinja" };
	char path[512];
	size_t i;

	for (i = 0; i < sizeof vl_files / sizeof vl_files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, vl_files[i]);
		unlink(path);
	}
	for (i = 0; i < sizeof more / sizeof more[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, more[i]);
		unlink(path);
	}
	rmdir(dir);
	free(dir);
}
