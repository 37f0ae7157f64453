#!/usr/bin/env python3
"""scripts/tokenizer-vs-hf.py TOKENIZER.json TEXT [TERN_IDS]

Time HF `tokenizers` on one thread over TEXT (one encode call of the whole
file, no special tokens, best of 3) and, given the ids tern printed for the
same file (`tern tokenize -m TOKENIZER.json --ids-only - < TEXT`), check that
both produced the same ids.  Used for the tokenizer table of
docs/PERFORMANCE.md (run where `tokenizers` is installed, e.g. the GPU
machine's image).  The file is read with newline="" so CRLF bytes reach the
tokenizer unchanged, as they reach tern."""
import os
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import tokenizers  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

t0 = time.perf_counter()
tok = Tokenizer.from_file(sys.argv[1])
load = time.perf_counter() - t0
with open(sys.argv[2], encoding="utf-8", newline="") as f:
    text = f.read()
nbytes = len(text.encode("utf-8"))
best, enc = 1e9, None
for _ in range(3):
    a = time.perf_counter()
    enc = tok.encode(text, add_special_tokens=False)
    best = min(best, time.perf_counter() - a)
print(f"HF tokenizers {tokenizers.__version__}: load {1000 * load:.0f} ms; "
      f"encode {nbytes / 1e6:.2f} MB -> {len(enc.ids)} tokens in "
      f"{1000 * best:.0f} ms = {nbytes / best / 1e6:.1f} MB/s (1 thread, best of 3)")
if len(sys.argv) > 3:
    with open(sys.argv[3]) as f:
        ours = [int(x) for x in f.read().split()]
    print("ids identical to tern's:", ours == enc.ids, len(ours), len(enc.ids))
