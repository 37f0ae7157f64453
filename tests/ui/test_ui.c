/* tests/ui/test_ui.c — the whole UI headless: keys in, events out, frames
 * rendered to text at 80x24, 300x80 and tiny sizes. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ui/text_impl.h"
#include "ui/ui.h"

static void type(struct ui *ui, const char *s)
{
	for (; *s; s++)
		ui_handle_key(ui, (unsigned char)*s);
}

static struct ui_event next(struct ui *ui)
{
	struct ui_event ev;

	ck_assert_msg(ui_poll_event(ui, &ev), "no event");
	return ev;
}

static void drain(struct ui *ui)
{
	struct ui_event ev;

	while (ui_poll_event(ui, &ev))
		;
}

/* Every row of the frame is exactly cols columns wide. */
static char *check_frame(struct ui *ui, int cols, int rows)
{
	char *txt = ui_screen_text(ui);
	int n = 0;

	for (char *p = txt;; n++) {
		char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		ck_assert_msg(ui_text_width(p, len) == cols, "row %d is %d wide, not %d", n,
			      ui_text_width(p, len), cols);
		if (!e)
			break;
		p = e + 1;
	}
	ck_assert_int_eq(n + 1, rows > 0 ? rows : 1);
	return txt;
}

static struct ui *fixture(void)
{
	struct ui *ui = ui_new(NULL);
	struct ui_conv_item convs[] = { { 1, "First chat" }, { 2, "\xe4\xb8\xad\xe6\x96\x87 chat" } };
	struct ui_status st = { "tiny-llama", "cpu", 120, 4096, 31.5, (uint64_t)3 << 29,
				false, 0.0 };

	ui_conversations_set(ui, convs, 2, 1);
	ui_status_set(ui, &st);
	ui_transcript_add(ui, 10, UI_ROLE_USER, "hello **there**", 1, 1);
	ui_transcript_add(ui, 11, UI_ROLE_ASSISTANT,
			  "Hi! ```\ncode\n```\n- item \xf0\x9f\x91\x8d wide", 2, 3);
	drain(ui);
	return ui;
}

START_TEST(test_frames_sizes)
{
	struct ui *ui = fixture();
	char *t;

	t = check_frame(ui, 80, 24);
	ck_assert_ptr_nonnull(strstr(t, "Conversations"));
	ck_assert_ptr_nonnull(strstr(t, "tiny-llama"));
	ck_assert_ptr_nonnull(strstr(t, "ctx 120/4096"));
	ck_assert_ptr_nonnull(strstr(t, "mem 1.5 GiB"));
	ck_assert_ptr_nonnull(strstr(t, "branch 2/3"));
	ck_assert_ptr_null(strstr(t, "tok/s")); /* only while generating */
	free(t);
	ui_generating_set(ui, 1);
	t = check_frame(ui, 80, 24);
	ck_assert_ptr_nonnull(strstr(t, "31.5 tok/s"));
	ck_assert_ptr_null(strstr(t, "draft")); /* no speculative decoding */
	free(t);
	{
		/* with a draft model: the share of its tokens kept */
		struct ui_status sp = { "tiny-llama", "cpu", 120, 4096, 31.5,
					(uint64_t)3 << 29, true, 0.686 };

		ui_status_set(ui, &sp);
		t = check_frame(ui, 80, 24);
		ck_assert_msg(strstr(t, "draft 69%") != NULL, "%s", t);
		free(t);
		sp.spec = false;
		ui_status_set(ui, &sp);
	}
	ui_resize(ui, 300, 80);
	ck_assert_int_eq(next(ui).type, UI_EVENT_RESIZE);
	free(check_frame(ui, 300, 80));
	for (int c = 0; c <= 30; c += 3)
		for (int r = 0; r <= 8; r++) {
			ui_resize(ui, c, r);
			if (c > 0 && r > 0)
				free(check_frame(ui, c, r));
		}
	/* a dialog at a tiny size must not break the frame either */
	ui_resize(ui, 12, 4);
	ui_handle_key(ui, UI_KEY_F1);
	free(check_frame(ui, 12, 4));
	ui_free(ui);
}
END_TEST

START_TEST(test_submit_history_paste)
{
	struct ui *ui = fixture();
	struct ui_event ev;

	type(ui, "hi");
	ui_handle_key(ui, UI_KEY_ENTER | UI_KEY_META); /* new line */
	ui_paste(ui, "pasted\r\nlines", 13);
	ui_handle_key(ui, UI_KEY_ENTER);
	ev = next(ui);
	ck_assert_int_eq(ev.type, UI_EVENT_SUBMIT);
	ck_assert_str_eq(ev.text, "hi\npasted\nlines");
	ck_assert_int_eq(ui_poll_event(ui, &ev), 0);
	ui_handle_key(ui, UI_KEY_ENTER); /* empty: nothing */
	ck_assert_int_eq(ui_poll_event(ui, &ev), 0);
	ui_handle_key(ui, UI_KEY_UP);    /* history */
	ui_handle_key(ui, UI_KEY_ENTER);
	ev = next(ui);
	ck_assert_str_eq(ev.text, "hi\npasted\nlines");
	ui_free(ui);
}
END_TEST

START_TEST(test_cancel_help_quit)
{
	struct ui *ui = fixture();
	struct ui_event ev;
	char *t;

	ui_handle_key(ui, UI_KEY_ESC);
	ck_assert_int_eq(ui_poll_event(ui, &ev), 0); /* not generating */
	ui_generating_set(ui, 1);
	ui_handle_key(ui, UI_KEY_ESC);
	ck_assert_int_eq(next(ui).type, UI_EVENT_CANCEL);
	ui_handle_key(ui, '?'); /* in the editor, even empty: text */
	t = ui_screen_text(ui);
	ck_assert_ptr_null(strstr(t, "Help: keys"));
	ck_assert_ptr_nonnull(strstr(t, "› ?"));
	free(t);
	ui_handle_key(ui, UI_KEY_BACKSPACE);
	ui_handle_key(ui, UI_KEY_TAB); /* the transcript: '?' is help */
	ui_handle_key(ui, '?');
	t = ui_screen_text(ui);
	ck_assert_ptr_nonnull(strstr(t, "Help: keys"));
	ck_assert_ptr_nonnull(strstr(t, "new-conversation"));
	free(t);
	ui_handle_key(ui, UI_KEY_ESC);
	ui_handle_key(ui, UI_KEY_F1); /* and F1 everywhere */
	t = ui_screen_text(ui);
	ck_assert_ptr_nonnull(strstr(t, "Help: keys"));
	free(t);
	ui_handle_key(ui, UI_KEY_ESC);
	ui_handle_key(ui, UI_KEY_TAB | UI_KEY_SHIFT); /* back to the editor */
	type(ui, "a?");
	t = ui_screen_text(ui);
	ck_assert_ptr_null(strstr(t, "Help: keys"));
	ck_assert_ptr_nonnull(strstr(t, "a?"));
	free(t);
	ui_handle_key(ui, 'q' | UI_KEY_CTRL);
	ck_assert_int_eq(next(ui).type, UI_EVENT_QUIT);
	ui_free(ui);
}
END_TEST

START_TEST(test_conversations)
{
	struct ui *ui = fixture();
	struct ui_event ev;

	ui_handle_key(ui, 'n' | UI_KEY_CTRL);
	ck_assert_int_eq(next(ui).type, UI_EVENT_CONV_NEW);
	ui_handle_key(ui, 'n' | UI_KEY_META);
	ev = next(ui);
	ck_assert_int_eq(ev.type, UI_EVENT_CONV_SELECT);
	ck_assert_int_eq(ev.id, 2);
	/* delete asks first; n keeps, y deletes */
	ui_handle_key(ui, UI_KEY_F1 + 7);
	ui_handle_key(ui, 'n');
	ck_assert_int_eq(ui_poll_event(ui, &ev), 0);
	ui_handle_key(ui, UI_KEY_F1 + 7);
	ui_handle_key(ui, 'y');
	ev = next(ui);
	ck_assert_int_eq(ev.type, UI_EVENT_CONV_DELETE);
	ck_assert_int_eq(ev.id, 1);
	/* rename is pre-filled with the title */
	ui_handle_key(ui, UI_KEY_F1 + 1);
	type(ui, "!");
	ui_handle_key(ui, UI_KEY_ENTER);
	ev = next(ui);
	ck_assert_int_eq(ev.type, UI_EVENT_CONV_RENAME);
	ck_assert_str_eq(ev.text, "First chat!");
	ui_free(ui);
}
END_TEST

START_TEST(test_messages_edit_branch_copy)
{
	struct ui *ui = fixture();
	struct ui_event ev;

	ui_handle_key(ui, 'e' | UI_KEY_META); /* edit last user message */
	type(ui, "!");
	ui_handle_key(ui, UI_KEY_ENTER);
	ev = next(ui);
	ck_assert_int_eq(ev.type, UI_EVENT_MESSAGE_EDIT);
	ck_assert_int_eq(ev.id, 10);
	ck_assert_str_eq(ev.text, "hello **there**!");
	ui_handle_key(ui, 'r' | UI_KEY_CTRL);
	ev = next(ui);
	ck_assert_int_eq(ev.type, UI_EVENT_REGENERATE);
	ck_assert_int_eq(ev.id, 11);
	ui_handle_key(ui, '.' | UI_KEY_META);
	ev = next(ui);
	ck_assert_int_eq(ev.type, UI_EVENT_BRANCH_NEXT);
	ck_assert_int_eq(ev.id, 11);
	/* transcript focus: select the user message, copy it */
	ui_handle_key(ui, UI_KEY_TAB);
	ui_handle_key(ui, UI_KEY_UP);
	ui_handle_key(ui, 'c');
	ev = next(ui);
	ck_assert_int_eq(ev.type, UI_EVENT_COPY);
	ck_assert_int_eq(ev.id, 10);
	/* Esc during an edit restores the draft */
	ui_handle_key(ui, UI_KEY_ESC);
	type(ui, "draft");
	ui_handle_key(ui, 'e' | UI_KEY_META);
	ui_handle_key(ui, UI_KEY_ESC);
	ui_handle_key(ui, UI_KEY_ESC); /* clears the "copied" notice */
	ui_handle_key(ui, UI_KEY_ENTER);
	ev = next(ui);
	ck_assert_int_eq(ev.type, UI_EVENT_SUBMIT);
	ck_assert_str_eq(ev.text, "draft");
	ui_free(ui);
}
END_TEST

START_TEST(test_sampler_validation)
{
	struct ui *ui = fixture();
	struct ui_field f[] = {
		{ "temperature", UI_FIELD_FLOAT, 0, 2, "0.8",
		  "randomness; 0 = greedy, higher = more varied" },
		{ "greedy", UI_FIELD_BOOL, 0, 0, "false", "argmax" },
	};
	const char *presets[] = { "default", "creative" };
	struct ui_event ev;
	char *t;

	ui_sampler_set(ui, f, 2);
	ui_presets_set(ui, presets, 2);
	ui_handle_key(ui, UI_KEY_F1 + 3);
	ui_handle_key(ui, UI_KEY_ENTER);        /* edit temperature */
	ui_handle_key(ui, 'u' | UI_KEY_CTRL);
	type(ui, "9");
	ui_handle_key(ui, UI_KEY_ENTER);        /* out of range: stays */
	ck_assert_int_eq(ui_poll_event(ui, &ev), 0);
	t = ui_screen_text(ui);
	ck_assert_ptr_nonnull(strstr(t, "must be between 0 and 2"));
	/* the error replaces the (longer) help text; none of it shows through */
	ck_assert_ptr_null(strstr(t, "varied"));
	free(t);
	ui_handle_key(ui, UI_KEY_BACKSPACE);
	type(ui, "1.5");
	ui_handle_key(ui, UI_KEY_ENTER);
	ev = next(ui);
	ck_assert_int_eq(ev.type, UI_EVENT_SAMPLER_FIELD);
	ck_assert_int_eq(ev.index, 0);
	ck_assert_str_eq(ev.text, "1.5");
	/* the app refuses a value the form let through: the editor reopens
	 * with it and the reason, and Esc leaves it */
	ck_assert_int_eq(ui_sampler_refuse(ui, 0, "1.5x", "temperature: not today"), 1);
	t = ui_screen_text(ui);
	ck_assert_ptr_nonnull(strstr(t, "1.5x"));
	ck_assert_ptr_nonnull(strstr(t, "temperature: not today"));
	free(t);
	ui_handle_key(ui, UI_KEY_ESC);
	ck_assert_int_eq(ui_poll_event(ui, &ev), 0);
	ck_assert_int_eq(ui_sampler_refuse(ui, 7, "x", "y"), 0); /* no such field */
	ui_handle_key(ui, UI_KEY_DOWN);
	ui_handle_key(ui, ' ');                 /* toggle bool */
	ev = next(ui);
	ck_assert_int_eq(ev.index, 1);
	ck_assert_str_eq(ev.text, "true");
	ui_handle_key(ui, UI_KEY_TAB);          /* presets */
	ui_handle_key(ui, UI_KEY_DOWN);
	ui_handle_key(ui, UI_KEY_ENTER);
	ev = next(ui);
	ck_assert_int_eq(ev.type, UI_EVENT_PRESET_LOAD);
	ck_assert_str_eq(ev.text, "creative");
	ui_handle_key(ui, 's');
	ui_handle_key(ui, 'u' | UI_KEY_CTRL);
	type(ui, "mine");
	ui_handle_key(ui, UI_KEY_ENTER);
	ev = next(ui);
	ck_assert_int_eq(ev.type, UI_EVENT_PRESET_SAVE);
	ck_assert_str_eq(ev.text, "mine");
	ui_free(ui);
}
END_TEST

START_TEST(test_models_themes_keymap)
{
	struct ui *ui = fixture();
	struct ui_model_item m[] = { { "llama", "/m/llama", "1B bf16" } };
	const char *themes[] = { "default", "light" };
	struct ui_event ev;
	struct diag d;
	char *t;

	ui_models_set(ui, m, 1);
	ui_handle_key(ui, UI_KEY_F1 + 2);
	ui_model_progress(ui, 0.5, "loading layers");
	ui_model_error(ui, "out of memory");
	t = ui_screen_text(ui);
	ck_assert_ptr_nonnull(strstr(t, " 50% loading layers"));
	ck_assert_ptr_nonnull(strstr(t, "out of memory"));
	free(t);
	ui_handle_key(ui, UI_KEY_ENTER);
	ev = next(ui);
	ck_assert_int_eq(ev.type, UI_EVENT_MODEL_SELECT);
	ck_assert_int_eq(ev.index, 0);
	ui_handle_key(ui, UI_KEY_DOWN);       /* "path..." */
	ui_handle_key(ui, UI_KEY_ENTER);
	type(ui, "/tmp/x");
	ui_handle_key(ui, UI_KEY_ENTER);
	ev = next(ui);
	ck_assert_int_eq(ev.type, UI_EVENT_MODEL_PATH);
	ck_assert_str_eq(ev.text, "/tmp/x");
	ui_handle_key(ui, UI_KEY_ESC);
	/* rebinding from config */
	diag_clear(&d);
	ui_themes_set(ui, themes, 2);
	ck_assert_int_eq(ui_keymap_bind(ui, "C-t", "themes", &d), 0);
	ck_assert_int_eq(ui_keymap_bind(ui, "C-t", "bogus", &d), UI_E_ACTION);
	ui_handle_key(ui, 't' | UI_KEY_CTRL);
	ui_handle_key(ui, UI_KEY_DOWN);
	ui_handle_key(ui, UI_KEY_ENTER);
	ev = next(ui);
	ck_assert_int_eq(ev.type, UI_EVENT_THEME_SELECT);
	ck_assert_str_eq(ev.text, "light");
	ui_free(ui);
}
END_TEST

START_TEST(test_notice_and_preview)
{
	struct ui *ui = fixture();
	uint8_t px[2 * 2 * 3] = { 255, 0, 0, 255, 0, 0, 0, 0, 255, 0, 0, 255 };
	const char *att[] = { "cat.png" };
	char *t;

	ui_notice_set(ui, UI_NOTICE_INFO, "completion mode: this model has no chat template");
	ui_attachments_set(ui, att, 1);
	t = check_frame(ui, 80, 24);
	ck_assert_ptr_nonnull(strstr(t, "completion mode: this model has no chat template"));
	ck_assert_ptr_nonnull(strstr(t, "+1 image: cat.png"));
	free(t);
	ui_attach_dir_set(ui, "/nonexistent-dir-for-test");
	ui_handle_key(ui, UI_KEY_F1 + 6);
	ui_image_preview_set(ui, px, 2, 2);
	t = check_frame(ui, 80, 24);
	ck_assert_ptr_nonnull(strstr(t, "Attach image"));
	ck_assert_ptr_nonnull(strstr(t, "\xe2\x96\x80\xe2\x96\x80")); /* ▀▀ preview */
	ck_assert_ptr_nonnull(strstr(t, "No such file"));
	free(t);
	ui_free(ui);
}
END_TEST

/* A directory typed at '/' in the attach dialog is browsed (not sent to
 * be attached), its header the canonical path; ".." entered from there
 * is canonical too. */
START_TEST(test_attach_typed_dir)
{
	struct ui *ui = fixture();
	struct ui_event ev;
	char dir[] = "/tmp/tern-attach-XXXXXX", sub[64], *t;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sub, sizeof sub, "%s/pics", dir);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	ui_handle_key(ui, UI_KEY_F1 + 6);
	ui_handle_key(ui, '/');
	snprintf(sub, sizeof sub, "%s/./pics/", dir);
	type(ui, sub);
	ui_handle_key(ui, UI_KEY_ENTER);
	ck_assert_int_eq(ui_poll_event(ui, &ev), 0); /* nothing to attach */
	snprintf(sub, sizeof sub, "%s/pics", dir);
	t = check_frame(ui, 80, 24);
	ck_assert_msg(strstr(t, sub) && !strstr(t, "/./"), "%s", t);
	free(t);
	ui_handle_key(ui, UI_KEY_ENTER); /* "..", the first entry */
	t = check_frame(ui, 80, 24);
	ck_assert_msg(strstr(t, dir) && !strstr(t, "pics/.."), "%s", t);
	free(t);
	snprintf(sub, sizeof sub, "%s/pics", dir);
	rmdir(sub);
	rmdir(dir);
	ui_free(ui);
}
END_TEST

/* Start-up problems stay on screen under later banners until Esc. */
START_TEST(test_notice_queue)
{
	struct ui *ui = fixture();
	struct ui_event ev;
	char *t;

	ui_notice_push(ui, UI_NOTICE_ERROR, "config.yaml:1:1: unknown key 'bogus_key'");
	ui_notice_push(ui, UI_NOTICE_ERROR, "x.json: damaged (line 1)\n; set aside");
	ui_notice_set(ui, UI_NOTICE_INFO, "loading model...");
	ui_notice_set(ui, UI_NOTICE_INFO, "completion mode: no chat template");
	t = check_frame(ui, 80, 24);
	ck_assert_ptr_nonnull(strstr(t, "config.yaml:1:1: unknown key 'bogus_key'"));
	ck_assert_ptr_nonnull(strstr(t, "x.json: damaged (line 1) ; set aside"));
	ck_assert_ptr_nonnull(strstr(t, "Esc dismisses"));
	ck_assert_ptr_nonnull(strstr(t, "completion mode: no chat template"));
	ck_assert_ptr_null(strstr(t, "loading model"));
	free(t);
	ui_notice_set(ui, UI_NOTICE_INFO, NULL); /* the banner only */
	t = check_frame(ui, 80, 24);
	ck_assert_ptr_nonnull(strstr(t, "bogus_key"));
	ck_assert_ptr_null(strstr(t, "completion mode"));
	free(t);
	/* three at a time; the rest wait */
	ui_notice_push(ui, UI_NOTICE_INFO, "third");
	ui_notice_push(ui, UI_NOTICE_INFO, "fourth");
	ui_notice_push(ui, UI_NOTICE_INFO, "fifth");
	ui_notice_push(ui, UI_NOTICE_INFO, ""); /* ignored */
	t = check_frame(ui, 80, 24);
	ck_assert_ptr_nonnull(strstr(t, "third"));
	ck_assert_ptr_null(strstr(t, "fourth"));
	ck_assert_ptr_nonnull(strstr(t, "+2 more, Esc"));
	free(t);
	ui_handle_key(ui, UI_KEY_ESC);
	ck_assert_int_eq(ui_poll_event(ui, &ev), 0);
	t = check_frame(ui, 80, 24);
	ck_assert_ptr_null(strstr(t, "bogus_key"));
	ck_assert_ptr_nonnull(strstr(t, "fourth"));
	ck_assert_ptr_nonnull(strstr(t, "fifth"));
	free(t);
	ui_resize(ui, 20, 3); /* tiny: rows stay whole */
	free(check_frame(ui, 20, 3));
	ui_resize(ui, 80, 24);
	drain(ui);
	ui_handle_key(ui, UI_KEY_ESC);
	t = check_frame(ui, 80, 24);
	ck_assert_ptr_null(strstr(t, "fifth"));
	ck_assert_ptr_null(strstr(t, "Esc dismisses"));
	free(t);
	/* a long one wraps to a second row */
	ui_notice_push(ui, UI_NOTICE_ERROR,
		       "/home/someone/.local/share/tern/conversations/1700000000-000001-1-0.json: "
		       "damaged; set aside as TAILWORD");
	t = check_frame(ui, 80, 24);
	ck_assert_ptr_nonnull(strstr(t, "/home/someone/.local/share"));
	ck_assert_ptr_nonnull(strstr(t, "TAILWORD"));
	free(t);
	ui_free(ui);
}
END_TEST

/* A message the app cannot take goes back into the editor. */
START_TEST(test_submit_refused)
{
	struct ui *ui = fixture();
	struct ui_event ev;
	char *t;

	type(ui, "good morning");
	ui_handle_key(ui, UI_KEY_ENTER);
	ev = next(ui);
	ck_assert_int_eq(ev.type, UI_EVENT_SUBMIT);
	t = ui_screen_text(ui);
	ck_assert_ptr_null(strstr(t, "good morning"));
	free(t);
	ui_submit_refuse(ui);
	t = ui_screen_text(ui);
	ck_assert_ptr_nonnull(strstr(t, "good morning"));
	free(t);
	ui_submit_refuse(ui); /* nothing more to give back */
	ui_handle_key(ui, UI_KEY_ENTER);
	ev = next(ui);
	ck_assert_int_eq(ev.type, UI_EVENT_SUBMIT);
	ck_assert_str_eq(ev.text, "good morning");
	/* typed after sending: follows the message given back */
	type(ui, "more");
	ui_submit_refuse(ui);
	ui_handle_key(ui, UI_KEY_ENTER);
	ck_assert_str_eq(next(ui).text, "good morning\nmore");
	/* an edit comes back as an edit, the draft kept aside again */
	type(ui, "draft");
	ui_handle_key(ui, 'e' | UI_KEY_META);
	type(ui, "!");
	ui_handle_key(ui, UI_KEY_ENTER);
	ev = next(ui);
	ck_assert_int_eq(ev.type, UI_EVENT_MESSAGE_EDIT);
	ui_submit_refuse(ui);
	ui_handle_key(ui, UI_KEY_ENTER);
	ev = next(ui);
	ck_assert_int_eq(ev.type, UI_EVENT_MESSAGE_EDIT);
	ck_assert_int_eq(ev.id, 10);
	ck_assert_str_eq(ev.text, "hello **there**!");
	ui_submit_refuse(ui);
	ui_handle_key(ui, UI_KEY_ESC); /* leave the edit: the draft is back */
	ui_handle_key(ui, UI_KEY_ENTER);
	ev = next(ui);
	ck_assert_int_eq(ev.type, UI_EVENT_SUBMIT);
	ck_assert_str_eq(ev.text, "draft");
	ui_free(ui);
}
END_TEST

/* The model menu closes once the model chosen there has loaded, and
 * stays open to show why when it failed. */
START_TEST(test_model_menu_closes)
{
	struct ui *ui = fixture();
	struct ui_model_item m[] = { { "llama", "/m/llama", "1B bf16" } };
	char *t;

	ui_models_set(ui, m, 1);
	ui_model_loaded(ui); /* a load from the command line: no menu */
	ui_handle_key(ui, UI_KEY_F1 + 2);
	ui_handle_key(ui, UI_KEY_ENTER);
	ck_assert_int_eq(next(ui).type, UI_EVENT_MODEL_SELECT);
	ui_model_progress(ui, 0.5, "loading layers");
	t = ui_screen_text(ui);
	ck_assert_ptr_nonnull(strstr(t, "Models"));
	free(t);
	ui_model_progress(ui, -1, NULL);
	ui_model_error(ui, "model failed to load: no config.json");
	t = ui_screen_text(ui);
	ck_assert_ptr_nonnull(strstr(t, "no config.json"));
	free(t);
	ui_model_loaded(ui); /* a later load (not chosen here) leaves it open */
	t = ui_screen_text(ui);
	ck_assert_ptr_nonnull(strstr(t, "Models"));
	free(t);
	ui_handle_key(ui, UI_KEY_ENTER); /* try again */
	ck_assert_int_eq(next(ui).type, UI_EVENT_MODEL_SELECT);
	ui_model_loaded(ui);
	t = ui_screen_text(ui);
	ck_assert_ptr_null(strstr(t, "Models"));
	ck_assert_ptr_null(strstr(t, " 50% "));
	free(t);
	ui_free(ui);
}
END_TEST

Suite *ui_suite(void)
{
	Suite *s = suite_create("ui");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_frames_sizes);
	tcase_add_test(tc, test_submit_history_paste);
	tcase_add_test(tc, test_cancel_help_quit);
	tcase_add_test(tc, test_conversations);
	tcase_add_test(tc, test_messages_edit_branch_copy);
	tcase_add_test(tc, test_sampler_validation);
	tcase_add_test(tc, test_models_themes_keymap);
	tcase_add_test(tc, test_notice_and_preview);
	tcase_add_test(tc, test_attach_typed_dir);
	tcase_add_test(tc, test_notice_queue);
	tcase_add_test(tc, test_submit_refused);
	tcase_add_test(tc, test_model_menu_closes);
	suite_add_tcase(s, tc);
	return s;
}
