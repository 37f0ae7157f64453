# mk/ — one fragment per feature (see HACKING.md).  Each appends to the layer
# archives, the test programs, tern and EXTRA_DIST.
include mk/tokenizer.mk
include mk/template.mk
include mk/modelfile.mk
include mk/sampler.mk
include mk/cpu.mk
include mk/model.mk
include mk/themes.mk
include mk/ui.mk
include mk/engine.mk
include mk/exl3.mk
include mk/bench.mk
include mk/cuda.mk
include mk/cuda_exl3.mk
include mk/cuda_models.mk
