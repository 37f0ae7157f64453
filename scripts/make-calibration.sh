#!/bin/sh
# scripts/make-calibration.sh — rebuild data/calibration.txt, the text
# `tern convert` calibrates on by default: this repository's own prose
# (README, docs) and C sources, so the corpus carries no third-party
# text.  About 400 KB: 64 rows of 512 tokens (the default) take a
# quarter of it.  Run from the repository root.
set -eu
cd "$(dirname "$0")/.."
{
	for f in README.md docs/ARCHITECTURE.md docs/PERFORMANCE.md \
		inference/engine.c inference/forward.c inference/model.c \
		inference/sampler.c inference/tokenizer_bpe.c \
		inference/jinja_eval.c inference/vision.c app/tui.c app/worker.c \
		app/chat.c; do
		cat "$f"
		printf '\n'
	done
} > data/calibration.txt
wc -c data/calibration.txt
