#!/bin/sh
# scripts/sass.sh — the sm_90 machine code of one kernel, here, without the
# GPU machine: compile a .cu file to a cubin with this machine's nvcc, then
# disassemble it with Debian's cuobjdump (CUDA 11.8, package
# nvidia-cuda-toolkit in bookworm's non-free component; this nvcc's image
# ships no disassembler).  CUDA 11.8 does not read the cubin header nvcc 13
# writes (ELF ABI version 8), so a copy gets the older header (OS/ABI 0x33,
# ABI version 7, flags 0x5a055a: sm_90); the machine code is untouched and
# disassembles as it is.  Development aid only (not part of any build).
#
# Usage: scripts/sass.sh FILE.cu [KERNEL-SUBSTRING] [-- NVCC-FLAGS...]
#   prints the SASS of every function whose mangled name contains the
#   substring (all functions without one), then, for each loop that
#   issues cp.async copies (LDGSTS), its instruction count by opcode.
# Environment: SASS_TOOLS (default /tmp/tern-sass-tools) holds the unpacked
# package; it is downloaded there on first use (needs apt's network).
#
# Example: the 4-bit MUL1 one-row-group decode GEMV's steady loop
#   scripts/sass.sh gpu/cuda/exl3.cu xl_gemv_kernelILi4ELi2ELb0ELi1E
set -eu
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n '2,20p' "$0"; exit 2; }
src=$1
shift
pat=""
if [ $# -ge 1 ] && [ "$1" != -- ]; then
	pat=$1
	shift
fi
[ $# -ge 1 ] && [ "$1" = -- ] && shift
tools=${SASS_TOOLS:-/tmp/tern-sass-tools}
cuobjdump=$tools/x/usr/bin/cuobjdump
if [ ! -x "$cuobjdump" ]; then
	echo "sass: fetching Debian's nvidia-cuda-toolkit into $tools" >&2
	mkdir -p "$tools/lists/partial" "$tools/dl"
	printf 'deb http://deb.debian.org/debian bookworm main contrib non-free\n' \
		> "$tools/sources.list"
	o="-oDir::Etc::SourceList=$tools/sources.list -oDir::Etc::SourceParts=/dev/null -oDir::State::Lists=$tools/lists"
	# shellcheck disable=SC2086
	apt-get $o update >/dev/null
	# shellcheck disable=SC2086
	(cd "$tools/dl" && apt-get $o download nvidia-cuda-toolkit >/dev/null 2>&1)
	dpkg -x "$tools"/dl/nvidia-cuda-toolkit_*.deb "$tools/x"
fi
nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tern-sass.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck disable=SC2068
"$nvcc" -O3 -std=c++17 --expt-relaxed-constexpr -gencode=arch=compute_90,code=sm_90 \
	-I. -cubin -o "$tmp/k.cubin" "$src" $@
python3 - "$tmp/k.cubin" <<'EOF'
import struct, sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
if b[7] != 0x33:  # an nvcc 12+/13 header: rewrite it as CUDA 11.8 reads it
    b[7], b[8] = 0x33, 7
    struct.pack_into('<I', b, 0x30, 0x5a055a)
open(p, 'wb').write(b)
EOF
"$cuobjdump" -sass "$tmp/k.cubin" > "$tmp/all.sass"
python3 - "$tmp/all.sass" "$pat" <<'EOF'
import collections, re, sys
path, pat = sys.argv[1], sys.argv[2]
fns, cur = {}, None
for l in open(path):
    if 'Function :' in l:
        name = l.split('Function :')[1].strip()
        cur = name if pat in name else None
        if cur:
            fns[cur] = []
        continue
    m = re.match(r'\s+/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;', l)
    if cur and m:
        fns[cur].append((int(m.group(1), 16), m.group(2)))
for name, ins in fns.items():
    print('== ' + name)
    for a, i in ins:
        print('%05x  %s' % (a, i))
    for a, i in ins:
        m = re.search(r'BRA (0x[0-9a-f]+)', i)
        if not m or 'DIV' in i or int(m.group(1), 16) >= a:
            continue
        t = int(m.group(1), 16)
        body = [x for y, x in ins if t <= y <= a]
        if not any('LDGSTS' in x for x in body):
            continue
        ops = collections.Counter()
        for x in body:
            w = x.split()
            op = w[1] if w[0].startswith('@') else w[0]
            ops[op.split('.')[0]] += 1
        print('-- loop %05x..%05x: %d instructions: %s' % (
            t, a, len(body),
            ', '.join('%s %d' % kv for kv in ops.most_common())))
EOF
