/* tests/inference/test_template.c — suite `template`: the chat-template
 * interpreter (inference/jinja*.c) and its public API
 * (inference/chat_template.c).
 *
 * Conformance: every case of tests/data/templates/cases.json (transformers
 * 5.17.0 render_jinja_template on 16 real templates) renders byte for byte,
 * or fails where transformers fails: raise_exception messages must match
 * the text after "TemplateError: ", other Jinja errors only need to happen.
 * The smaller cases below pin Jinja semantics the fixture templates touch
 * lightly; each expected string is jinja2 3.1.6's output for the same
 * template in transformers' environment (ImmutableSandboxedEnvironment,
 * trim_blocks, lstrip_blocks, loopcontrols, json.dumps-based tojson),
 * recorded when the case was written.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "inference/llm.h"
#include "testutil.h"

static json_t *g_cases;

static json_t *cases(void)
{
	if (!g_cases) {
		char *p = test_data_path("templates/cases.json");
		json_error_t je;
		g_cases = json_load_file(p, 0, &je);
		ck_assert_msg(g_cases != NULL, "%s: %s", p, je.text);
		free(p);
	}
	return json_object_get(g_cases, "cases");
}

static char *read_template(const char *name, size_t *len)
{
	char rel[256];
	snprintf(rel, sizeof rel, "templates/%s.jinja", name);
	char *p = test_data_path(rel);
	char *src = test_read_file(p, len);
	free(p);
	return src;
}

/* Render SRC with CTX (JSON text); returns the rc, output in *out. */
static int render(const char *src, const char *ctx, char **out, struct diag *d)
{
	struct llm_template *t = NULL;
	size_t n = 0;
	*out = NULL;
	int rc = llm_template_compile(src, strlen(src), "test", &t, d);
	if (rc)
		return rc;
	rc = llm_template_render(t, ctx ? ctx : "{}", out, &n, d);
	llm_template_free(t);
	if (rc == 0)
		ck_assert_uint_eq(n, strlen(*out));
	return rc;
}

static void expect(const char *src, const char *ctx, const char *want)
{
	struct diag d = {0};
	char *out = NULL;
	int rc = render(src, ctx, &out, &d);
	ck_assert_msg(rc == 0, "%s: rc %d: %s", src, rc, d.msg);
	ck_assert_msg(strcmp(out, want) == 0, "template %s\n got: [%s]\nwant: [%s]", src,
		      out, want);
	free(out);
}

static void expect_error(const char *src, const char *ctx, int code)
{
	struct diag d = {0};
	char *out = NULL;
	int rc = render(src, ctx, &out, &d);
	ck_assert_msg(rc == code, "%s: rc %d, wanted %d (%s)", src, rc, code, d.msg);
	ck_assert_ptr_null(out);
	ck_assert_msg(d.msg[0] != 0, "no message for %s", src);
}

/* ---- conformance ------------------------------------------------------- */
START_TEST(test_reference_case)
{
	json_t *c = json_array_get(cases(), (size_t)_i);
	ck_assert_ptr_nonnull(c);
	const char *name = json_string_value(json_object_get(c, "template"));
	size_t len;
	char *src = read_template(name, &len);

	json_t *ctx = json_object();
	json_object_set(ctx, "messages", json_object_get(c, "messages"));
	json_object_set(ctx, "tools", json_object_get(c, "tools"));
	json_object_set_new(ctx, "documents", json_null());
	json_object_set(ctx, "add_generation_prompt",
			json_object_get(c, "add_generation_prompt"));
	json_object_update(ctx, json_object_get(c, "special_tokens"));
	json_object_update(ctx, json_object_get(c, "extra_kwargs"));
	char *ctx_text = json_dumps(ctx, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(ctx);

	struct diag d = {0};
	struct llm_template *t = NULL;
	int rc = llm_template_compile(src, len, name, &t, &d);
	ck_assert_msg(rc == 0, "case %d (%s): compile: %s", _i, name, d.msg);
	char *out = NULL;
	size_t out_len = 0;
	rc = llm_template_render(t, ctx_text, &out, &out_len, &d);
	llm_template_free(t);

	json_t *want = json_object_get(c, "output");
	const char *conv = json_string_value(json_object_get(c, "conversation"));
	if (want) {
		ck_assert_msg(rc == 0, "case %d (%s, %s): rc %d: %s", _i, name, conv, rc,
			      d.msg);
		ck_assert_msg(out_len == json_string_length(want) &&
				      memcmp(out, json_string_value(want), out_len) == 0,
			      "case %d (%s, %s):\n got: [%s]\nwant: [%s]", _i, name, conv,
			      out, json_string_value(want));
	} else {
		const char *err = json_string_value(json_object_get(c, "error"));
		ck_assert_msg(rc != 0, "case %d (%s, %s): rendered, wanted %s", _i, name,
			      conv, err);
		ck_assert_ptr_null(out);
		if (strncmp(err, "TemplateError: ", 15) == 0) {
			ck_assert_int_eq(rc, LLM_E_RAISED);
			ck_assert_str_eq(d.msg, err + 15);
		} else {
			ck_assert_int_eq(rc, LLM_E_TEMPLATE);
		}
	}
	free(out);
	free(ctx_text);
	free(src);
}
END_TEST

START_TEST(test_case_count)
{
	/* the fixture promises 298 cases, 47 of them errors */
	size_t n_err = 0, i;
	json_t *c;
	json_array_foreach(cases(), i, c)
		n_err += json_object_get(c, "error") != NULL;
	ck_assert_uint_eq(json_array_size(cases()), 298);
	ck_assert_uint_eq(n_err, 47);
}
END_TEST

/* ---- whitespace control ------------------------------------------------ */
START_TEST(test_whitespace)
{
	/* trim_blocks eats the newline after %}; lstrip_blocks the indent
	 * before {% (also after a previous tag's newline); the template's one
	 * trailing newline is dropped */
	expect("{% if true %}\n  yes\n{% endif %}\n  {% if true %}\n  indented\n"
	       "  {% endif %}\nend\n",
	       NULL, "  yes\n  indented\nend");
	expect("a {#- c -#} b {# c #}\nc\n  {# lstrip comment #}\nd", NULL,
	       "ab c\nd");
	expect("{%+ if true %}x{% endif +%}\ny", NULL, "x\ny");
	expect("a  \n  {% if true %}\n  x\n  {% endif %}\n  b\n", NULL,
	       "a  \n  x\n  b");
	expect("{% raw %}{{ not rendered }}{% endraw %}", NULL,
	       "{{ not rendered }}");
	expect("x  {{- 1 -}}  \n y {{ 2 }}\r\nz", NULL, "x1y 2\nz");
}
END_TEST

/* ---- expressions and Python semantics ---------------------------------- */
#define CTX "{\"d\": {\"a\": 1, \"b\": [1, 2.5, null, true, \"x'y\"], " \
	"\"c\": {\"n\": \"\\u00e9\\u2028\\n\\t\\u0001\"}}, \"s\": \"  Hello World  \", " \
	"\"l\": [3, 1, 2], \"msgs\": [{\"role\": \"user\", \"content\": \"hi\"}, " \
	"{\"role\": \"assistant\", \"content\": \"yo\"}], \"e\": [], \"n\": null, " \
	"\"u8\": \"h\\u00e9llo w\\u00f6rld \\u00df\"}"

START_TEST(test_values)
{
	expect("{{ d }}|{{ d.b }}|{{ d.c }}", CTX,
	       "{'a': 1, 'b': [1, 2.5, None, True, \"x'y\"], 'c': {'n': "
	       "'\xc3\xa9\\u2028\\n\\t\\x01'}}|[1, 2.5, None, True, \"x'y\"]|{'n': "
	       "'\xc3\xa9\\u2028\\n\\t\\x01'}");
	expect("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ 2 ** 3 ** 2 }} {{ 1 / 3 }} "
	       "{{ 10 / 4 }} {{ 1e20 }} {{ 1e-7 }} {{ 123456789.123 }} {{ 0.1 }} "
	       "{{ -0.0 }} {{ 3.0 * 2 }}",
	       NULL,
	       "3 -4 -2 64 0.3333333333333333 2.5 1e+20 1e-07 123456789.123 0.1 -0.0 6.0");
	expect("{{ \"a\" ~ 1 ~ none ~ true ~ undefined_var }}|{{ \"x\" * 3 }}|"
	       "{{ [1] * 2 }}|{{ [1] + [2] }}",
	       NULL, "a1NoneTrue|xxx|[1, 1]|[1, 2]");
	expect("{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 'a' in 'abc' }} {{ 'z' not in ['a'] }} "
	       "{{ 1 == 1.0 }} {{ 'a' < 'b' }}",
	       NULL, "True False True True True True");
	expect("{{ (1, 2) }} {{ (1,) }} {{ {'a': (1, 'b')} }} {{ [none, true, 1.5] }}", NULL,
	       "(1, 2) (1,) {'a': (1, 'b')} [None, True, 1.5]");
	expect("{{ -1|abs }} {{ not 1 == 2 }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} "
	       "{{ 2 * 3 ~ 4 }} {{ 'a' + 'b'|upper }}",
	       NULL, "1 True 7 9 64 aB");
	expect("{{ 'a' if false }}|{{ 'b' if true else 'c' }}|{{ (1 if n else 2) + 1 }}",
	       CTX, "|b|3");
	expect("{{ n.x }}|{{ n['x'] }}|{{ d['zz'] }}|{{ l[10] }}", CTX, "|||");
	expect("{{ msgs[-1].content }} {{ msgs.0.role }} {{ l[1:] }} {{ l[::-1] }}", CTX,
	       "yo user [1, 2] [2, 1, 3]");
	expect("{{ \"tab\\there\" }} {{ 'it\\'s' }} {{ \"\\u00e9\\x41\" }}", NULL,
	       "tab\there it's \xc3\xa9" "A");
}
END_TEST

START_TEST(test_statements)
{
	expect("{% for m in msgs %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}"
	       "{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.cycle('a','b') }}"
	       "{% endfor %}",
	       CTX, "102TrueFalse2a211FalseTrue2b");
	expect("{% for m in msgs if m.role == 'assistant' %}{{ loop.index }}{{ m.content }}"
	       "{% else %}none{% endfor %}|{% for x in e %}x{% else %}empty{% endfor %}",
	       CTX, "1yo|empty");
	expect("{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}"
	       "{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}",
	       NULL, "0134");
	/* a set inside a loop body lasts one iteration; namespaces carry over */
	expect("{% set x = 1 %}{% for i in range(3) %}{% if i == 1 %}{% set x = 5 %}"
	       "{% endif %}{{ x }}{% endfor %}{{ x }}",
	       NULL, "1511");
	expect("{% set ns = namespace(x=1, y=[]) %}{% for i in range(3) %}"
	       "{% set ns.x = ns.x + i %}{% endfor %}{{ ns.x }}",
	       NULL, "4");
	expect("{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!"
	       "{% endmacro %}{{ greet('Bob') }} {{ greet('Al', greeting='Hi') }} "
	       "{{ greet(name='Zed') }}",
	       NULL, "Hello, Bob! Hi, Al! Hello, Zed!");
	expect("{% macro wrap() %}[{{ caller() }}]{% endmacro %}{% call wrap() %}inner"
	       "{% endcall %}",
	       NULL, "[inner]");
	expect("{% filter upper %}hello {{ s|trim }}{% endfilter %}", CTX,
	       "HELLO HELLO WORLD");
	expect("{% set x %}block {{ 1 + 1 }}{% endset %}{{ x }}|{% set a, b = 1, 2 %}"
	       "{{ a }}{{ b }}",
	       NULL, "block 2|12");
	expect("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
	       "{\"d\": {\"z\": 1, \"a\": [2]}}", "z=1;a=[2];");
	expect("{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }}", NULL, "3");
}
END_TEST

START_TEST(test_filters_and_tests)
{
	expect("{{ s|trim }}|{{ s.strip() }}|{{ s.lstrip() }}|{{ s|upper }}|{{ s|title }}"
	       "|{{ s|capitalize }}",
	       CTX, "Hello World|Hello World|Hello World  |  HELLO WORLD  |  Hello World  "
		    "|  hello world  ");
	expect("{{ l|sort }}|{{ l|sort(reverse=true) }}|{{ l|first }}|{{ l|last }}|"
	       "{{ l|length }}|{{ l|sum }}|{{ l|min }}|{{ l|max }}|{{ l|join(', ') }}|"
	       "{{ l|reverse|list }}",
	       CTX, "[1, 2, 3]|[3, 2, 1]|3|2|3|6|1|3|3, 1, 2|[2, 1, 3]");
	expect("{{ msgs|selectattr('role', 'equalto', 'user')|list }}|"
	       "{{ msgs|rejectattr('role', 'eq', 'user')|map(attribute='content')|list }}",
	       CTX, "[{'role': 'user', 'content': 'hi'}]|['yo']");
	expect("{{ d|tojson }} {{ l|tojson(indent=1) }} {{ d.c|tojson(sort_keys=true) }} "
	       "{{ \"\\u00e9\"|tojson(ensure_ascii=true) }}",
	       CTX,
	       "{\"a\": 1, \"b\": [1, 2.5, null, true, \"x'y\"], \"c\": {\"n\": "
	       "\"\xc3\xa9\xe2\x80\xa8\\n\\t\\u0001\"}} [\n 3,\n 1,\n 2\n] {\"n\": "
	       "\"\xc3\xa9\xe2\x80\xa8\\n\\t\\u0001\"} \"\\u00e9\"");
	expect("{{ \"a,b,,c\".split(\",\") }} {{ \"a,b,c\".split(\",\", 1) }} "
	       "{{ \"abc\".endswith((\"x\", \"c\")) }} {{ \"hello\".replace(\"l\", \"L\") }} "
	       "{{ \"xxhixx\".strip(\"x\") }}",
	       NULL, "['a', 'b', '', 'c'] ['a', 'b,c'] True heLLo hi");
	expect("{{ u8|upper }} {{ u8|length }} {{ u8[1:4] }} {{ u8[::-1] }}", CTX,
	       "H\xc3\x89LLO W\xc3\x96RLD SS 13 \xc3\xa9ll \xc3\x9f dlr\xc3\xb6w oll\xc3\xa9h");
	expect("{{ 3.7|int }} {{ \"42\"|int }} {{ \"4.5\"|float }} {{ \"x\"|int }} "
	       "{{ 3.14159|round(2) }} {{ 2.5|round }} {{ [1,2]|string }}",
	       NULL, "3 42 4.5 0 3.14 2.0 [1, 2]");
	expect("{{ none_var|default('dflt') }} {{ ''|default('e', true) }} "
	       "{{ n|default('x') }}",
	       CTX, "dflt e None");
	expect("{{ n is none }} {{ s is string }} {{ d is mapping }} {{ l is iterable }} "
	       "{{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ x is defined }} "
	       "{{ d.a is integer }} {{ d is sequence }} {{ n is iterable }}",
	       CTX, "True True True True True True False True True False");
}
END_TEST

/* ---- errors and limits ------------------------------------------------- */
START_TEST(test_errors)
{
	struct diag d = {0};
	char *out;
	/* raise_exception: exactly the message, LLM_E_RAISED */
	ck_assert_int_eq(render("{{ raise_exception('boom') }}", NULL, &out, &d),
			 LLM_E_RAISED);
	ck_assert_str_eq(d.msg, "boom");
	/* syntax errors carry line and column */
	ck_assert_int_eq(render("line1\n{% if x %}\n{{ 1 + }}", NULL, &out, &d),
			 LLM_E_TEMPLATE);
	ck_assert_msg(strstr(d.msg, "test:3:") != NULL, "%s", d.msg);
	ck_assert_int_eq(render("{% for x in y %}", NULL, &out, &d), LLM_E_TEMPLATE);
	ck_assert_int_eq(render("{{ x | nosuchfilter }}", NULL, &out, &d),
			 LLM_E_TEMPLATE);
	/* UndefinedError where Jinja raises it; None in `in` is a TypeError */
	expect_error("{{ x.y }}", NULL, LLM_E_TEMPLATE);
	expect_error("{{ d.zz.y }}", CTX, LLM_E_TEMPLATE);
	expect_error("{{ 'a' in n }}", CTX, LLM_E_TEMPLATE);
	expect_error("{{ x + 1 }}", NULL, LLM_E_TEMPLATE);
	/* the immutable sandbox refuses list mutation */
	expect_error("{% set items = ['x'] %}{{ items.append('y') }}", NULL,
		     LLM_E_TEMPLATE);
	/* context must be an object */
	struct llm_template *t;
	ck_assert_int_eq(llm_template_compile("x", 1, NULL, &t, &d), 0);
	ck_assert_int_eq(llm_template_render(t, "[1]", &out, NULL, &d), LLM_E_INVALID);
	ck_assert_ptr_null(out);
	llm_template_free(t);
	llm_template_free(NULL);
}
END_TEST

START_TEST(test_limits)
{
	/* nested loops past the iteration cap */
	expect_error("{% for i in range(100000) %}{% for j in range(100000) %}"
		     "{% endfor %}{% endfor %}",
		     NULL, LLM_E_LIMIT);
	/* unbounded macro recursion */
	expect_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", NULL,
		     LLM_E_LIMIT);
	/* exponential string growth hits the output/memory caps */
	expect_error("{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}"
		     "{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
		     NULL, LLM_E_LIMIT);
	expect_error("{{ 'x' * 10000000000 }}", NULL, LLM_E_LIMIT);
	expect_error("{{ range(1000000000) }}", NULL, LLM_E_LIMIT);
	/* deep nesting is a syntax error, not a stack overflow */
	size_t n = 100000;
	char *deep = malloc(2 * n + 16);
	ck_assert_ptr_nonnull(deep);
	strcpy(deep, "{{ ");
	memset(deep + 3, '(', n);
	strcpy(deep + 3 + n, "1 }}");
	struct diag d = {0};
	char *out;
	ck_assert_int_eq(render(deep, NULL, &out, &d), LLM_E_TEMPLATE);
	memset(deep + 3, '-', n);
	ck_assert_int_eq(render(deep, NULL, &out, &d), LLM_E_TEMPLATE);
	free(deep);
}
END_TEST

/* ---- loading and llm_chat_render --------------------------------------- */
START_TEST(test_load_tokenizer_config)
{
	/* tokenizers/qwen3/tokenizer_config.json holds hf-qwen3.jinja's text */
	char *cfg = test_data_path("tokenizers/qwen3/tokenizer_config.json");
	struct diag d = {0};
	char *src = NULL, *bos = NULL, *eos = NULL;
	int rc = llm_chat_template_load(cfg, &src, &bos, &eos, &d);
	ck_assert_msg(rc == 0, "%s", d.msg);
	size_t len;
	char *want = read_template("hf-qwen3", &len);
	ck_assert_str_eq(src, want);
	ck_assert_str_eq(eos, "<|im_end|>");
	ck_assert_ptr_null(bos); /* Qwen3's bos_token is null */

	/* the simple-message API gives transformers' render */
	struct llm_template *t;
	ck_assert_int_eq(llm_template_compile(src, strlen(src), "qwen3", &t, &d), 0);
	struct llm_chat_msg msgs[] = {{"system", "Be brief."}, {"user", "Hi"}};
	char *out = NULL;
	rc = llm_chat_render(t, msgs, 2, true, bos, eos, "{\"enable_thinking\": false}",
			     &out, NULL, &d);
	ck_assert_msg(rc == 0, "%s", d.msg);
	ck_assert_str_eq(out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n"
			      "Hi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
	free(out);
	llm_template_free(t);
	free(want);
	free(src);
	free(eos);
	free(cfg);

	/* a model directory: chat_template.jinja wins over tokenizer_config's
	 * template; bos/eos given as {"content": ...} objects */
	char dir[] = "/tmp/tern-template-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char path[512];
	snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("{\"bos_token\": {\"__type\": \"AddedToken\", \"content\": \"<s>\"}, "
	      "\"eos_token\": \"</s>\", \"chat_template\": [{\"name\": \"tool_use\", "
	      "\"template\": \"T\"}, {\"name\": \"default\", \"template\": \"D\"}]}", f);
	fclose(f);
	rc = llm_chat_template_load(dir, &src, &bos, &eos, &d);
	ck_assert_msg(rc == 0, "%s", d.msg);
	ck_assert_str_eq(src, "D");
	ck_assert_str_eq(bos, "<s>");
	ck_assert_str_eq(eos, "</s>");
	free(src);
	free(bos);
	free(eos);
	char jpath[512];
	snprintf(jpath, sizeof jpath, "%s/chat_template.jinja", dir);
	f = fopen(jpath, "w");
	ck_assert_ptr_nonnull(f);
	fputs("J{{ bos_token }}", f);
	fclose(f);
	rc = llm_chat_template_load(dir, &src, NULL, NULL, &d);
	ck_assert_msg(rc == 0, "%s", d.msg);
	ck_assert_str_eq(src, "J{{ bos_token }}");
	free(src);
	remove(jpath);
	remove(path);
	rmdir(dir);
	/* Mistral's real file: model_max_length 1000000000000000019884624838656
	 * (past any C integer) does not stop its template loading */
	cfg = test_data_path("tokenizers/mistral-7b-instruct-v0.2/tokenizer_config.json");
	rc = llm_chat_template_load(cfg, &src, &bos, &eos, &d);
	ck_assert_msg(rc == 0, "%s", d.msg);
	want = read_template("hf-mistral-7b-instruct-v0.2", &len);
	ck_assert_str_eq(src, want);
	ck_assert_str_eq(bos, "<s>");
	ck_assert_str_eq(eos, "</s>");
	free(want);
	free(src);
	free(bos);
	free(eos);
	free(cfg);
	/* no template anywhere (llama2's file has none, and the same huge
	 * integer) */
	cfg = test_data_path("tokenizers/llama2/tokenizer_config.json");
	ck_assert_int_eq(llm_chat_template_load(cfg, &src, &bos, &eos, &d), LLM_E_FORMAT);
	ck_assert_msg(strstr(d.msg, "no chat template") != NULL, "%s", d.msg);
	ck_assert_ptr_null(src);
	ck_assert_ptr_null(bos);
	/* ... and through llm_chat_template_open: nothing left allocated */
	t = (struct llm_template *)1;
	ck_assert_int_eq(llm_chat_template_open(cfg, &t, &bos, &eos, &d), LLM_E_FORMAT);
	ck_assert_ptr_null(t);
	ck_assert_ptr_null(bos);
	ck_assert_ptr_null(eos);
	free(cfg);
}
END_TEST

/* llm_chat_template_open = load + compile: the qwen3 template renders as
 * transformers does; a template that does not compile is LLM_E_TEMPLATE
 * with nothing returned. */
START_TEST(test_chat_template_open)
{
	char *cfg = test_data_path("tokenizers/qwen3/tokenizer_config.json");
	struct diag d = {0};
	struct llm_template *t = NULL;
	char *bos = NULL, *eos = NULL, *out = NULL;
	struct llm_chat_msg msgs[] = {{"user", "Hi"}};
	char dir[] = "/tmp/tern-tplopen-XXXXXX", path[512];
	FILE *f;

	ck_assert_msg(llm_chat_template_open(cfg, &t, &bos, &eos, &d) == 0, "%s", d.msg);
	ck_assert_ptr_null(bos);
	ck_assert_str_eq(eos, "<|im_end|>");
	ck_assert_int_eq(llm_chat_render(t, msgs, 1, true, bos, eos,
					 "{\"enable_thinking\": false}", &out, NULL, &d), 0);
	ck_assert_str_eq(out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
			      "<think>\n\n</think>\n\n");
	free(out);
	llm_template_free(t);
	free(eos);
	free(cfg);

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("{% for m in messages %}{{ m.content }", f); /* unterminated */
	fclose(f);
	t = (struct llm_template *)1;
	ck_assert_int_eq(llm_chat_template_open(dir, &t, NULL, NULL, &d), LLM_E_TEMPLATE);
	ck_assert_ptr_null(t);
	remove(path);
	rmdir(dir);
}
END_TEST

Suite *template_suite(void)
{
	Suite *s = suite_create("template");
	TCase *tc = tcase_create("reference");
	tcase_add_test(tc, test_case_count);
	tcase_add_loop_test(tc, test_reference_case, 0, 298);
	suite_add_tcase(s, tc);
	tc = tcase_create("semantics");
	tcase_add_test(tc, test_whitespace);
	tcase_add_test(tc, test_values);
	tcase_add_test(tc, test_statements);
	tcase_add_test(tc, test_filters_and_tests);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_load_tokenizer_config);
	tcase_add_test(tc, test_chat_template_open);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}
