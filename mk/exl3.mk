# mk/exl3.mk — EXL3 quantized weights (docs/exl3-format.md, issue 8): the
# gpu_exl3_* front end and the CPU backend's trellis decode + on-the-fly
# EXL3 linear, the EXL3 model loader in the engine, the quantizer (the
# trellis search and one linear's quantization in gpu/exl3_quant.c,
# `tern convert` in inference/convert.c), and their tests (tile
# decode and reconstruction against ExLlamaV3's kernels' outputs in
# tests/data/exl3/, the synthetic exl3-llama3 model against transformers).
gpu_libgpu_a_SOURCES += gpu/exl3.c gpu/exl3_ref.h gpu/exl3_cb.h gpu/cpu/exl3.c \
	gpu/exl3_quant.c
inference_libllm_a_SOURCES += inference/exl3.c inference/exl3_impl.h \
	inference/convert.c
# tern convert: the command and its bundled calibration text
app_libapp_a_SOURCES += app/cmd_convert.c
dist_pkgdata_DATA = data/calibration.txt
tests_check_gpu_SOURCES += tests/gpu/test_exl3.c tests/gpu/test_exl3_quant.c
# the gpu test reads the safetensors fixture with its own tiny reader
tests_check_gpu_LDADD += $(JANSSON_LIBS)
tests_check_inference_SOURCES += tests/inference/test_exl3_model.c \
	tests/inference/test_exl3_moe.c tests/inference/test_convert.c
# (tests/data/models/exl3-llama3/ is distributed by mk/modelfile.mk)
EXTRA_DIST += tests/data/exl3/dequant_vectors.safetensors
