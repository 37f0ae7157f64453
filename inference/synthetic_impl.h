/* inference/synthetic_impl.h — internals of the synthetic models
 * (inference/synthetic.c), shared with their tests and the benchmark
 * (inference/bench.c).  Engine-internal.
 *
 * A synthetic spec names a real model's shapes ("llama3-8b") and optionally
 * a quantization ("llama3-8b@exl3:4.0"); llm_synthetic_config turns it into
 * the llm_config that model's config.json would give, without allocating.
 */
#ifndef TERN_INFERENCE_SYNTHETIC_IMPL_H
#define TERN_INFERENCE_SYNTHETIC_IMPL_H

#include <stdint.h>

#include "common/diag.h"
#include "inference/config_impl.h"

/* Parse SPEC ("[synthetic:]NAME[@exl3:BITS]") into *cfg (and, for EXL3,
 * cfg->exl3 = true, exl3_bits = BITS in [1, 8], exl3_head_bits = 6).
 * Errors: LLM_E_INVALID (unknown name: the message lists the known ones;
 * malformed suffix or bits).  *cfg is written only on success. */
int llm_synthetic_config(const char *spec, struct llm_config *cfg,
			 struct diag *d);

/* Weight elements of a model with config CFG, counted as llm_model_open
 * counts them (a tied embedding once, norms and biases included). */
uint64_t llm_synthetic_n_params(const struct llm_config *cfg);

/* The known names, comma-separated (static). */
const char *llm_synthetic_names(void);

#endif
