/* tests/bench_tokenize.c — tokenizer throughput and load time (not a test).
 *
 *   tests/bench_tokenize TOKENIZER_PATH TEXT_FILE [REPEAT]
 *
 * Prints the load time of the tokenizer and the encode throughput (MB/s,
 * best of REPEAT runs, one thread) plus a decode round-trip check, for
 * docs/PERFORMANCE.md. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/file.h"
#include "inference/llm.h"

static double now_ms(void)
{
	return (double)clock_now_ns() / 1e6;
}

int main(int argc, char **argv)
{
	struct llm_tokenizer *t = NULL;
	struct diag d;
	char *text = NULL, *back = NULL;
	size_t len = 0, n = 0, blen = 0;
	int32_t *ids = NULL;
	int rep = argc > 3 ? atoi(argv[3]) : 3, i;
	double t0, best = 1e30;

	if (argc < 3) {
		fprintf(stderr, "usage: %s TOKENIZER TEXT [REPEAT]\n", argv[0]);
		return 2;
	}
	diag_clear(&d);
	t0 = now_ms();
	if (llm_tokenizer_open(argv[1], &t, &d)) {
		fprintf(stderr, "%s\n", d.msg);
		return 1;
	}
	printf("load: %.1f ms (%d ids)\n", now_ms() - t0, (int)llm_tokenizer_n_vocab(t));
	if (file_read_all(argv[2], 0, &text, &len, &d)) {
		fprintf(stderr, "%s\n", d.msg);
		return 1;
	}
	for (i = 0; i < rep; i++) {
		free(ids);
		t0 = now_ms();
		if (llm_tokenizer_encode(t, text, len, false, &ids, &n, &d)) {
			fprintf(stderr, "%s\n", d.msg);
			return 1;
		}
		t0 = now_ms() - t0;
		if (t0 < best)
			best = t0;
	}
	printf("encode: %zu bytes -> %zu tokens in %.1f ms = %.2f MB/s\n", len, n, best,
	       (double)len / 1e6 / (best / 1e3));
	t0 = now_ms();
	if (llm_tokenizer_decode(t, ids, n, false, &back, &blen, &d)) {
		fprintf(stderr, "%s\n", d.msg);
		return 1;
	}
	printf("decode: %.1f ms, round trip %s\n", now_ms() - t0,
	       blen == len && memcmp(back, text, len) == 0 ? "exact" : "DIFFERS");
	free(back);
	free(ids);
	free(text);
	llm_tokenizer_free(t);
	return 0;
}
