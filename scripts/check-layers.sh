#!/bin/sh
# scripts/check-layers.sh — enforce the dependency rule of ARCHITECTURE.md §1:
#
#     app/ ──► ui/ ──► themes/ ──┐
#      │                          ├──► common/
#      └────► inference/ ──► gpu/ ┘
#
# A file may include headers of its own layer, and only the *public* header
# of a layer it points to (gpu/gpu.h, inference/llm.h, themes/theme.h,
# ui/ui.h; every common/*.h is public).  Tests under tests/LAYER/ follow
# LAYER's rule (and may use that layer's internal headers).
#
# Usage: check-layers.sh [SRCDIR]   exit 0 when clean, 1 on a violation.
# It first proves itself on a scratch tree with a known violation, so the
# check cannot silently pass by matching nothing.
set -u

allowed() { # layer -> layers it may include
	case "$1" in
	common) echo "common" ;;
	gpu) echo "gpu common" ;;
	inference) echo "inference gpu common" ;;
	themes) echo "themes common" ;;
	ui) echo "ui themes common" ;;
	app) echo "app ui themes inference common" ;;
	*) echo "" ;;
	esac
}

public_header() { # layer -> its public header path (empty = all public)
	case "$1" in
	gpu) echo "gpu/gpu.h" ;;
	inference) echo "inference/llm.h" ;;
	themes) echo "themes/theme.h" ;;
	ui) echo "ui/ui.h" ;;
	*) echo "" ;;
	esac
}

check_tree() { # root -> prints violations, returns count>0 as status 1
	root=$1
	bad=0
	for dir in common gpu inference themes ui app tests/common tests/gpu \
		tests/inference tests/themes tests/ui tests/app; do
		[ -d "$root/$dir" ] || continue
		layer=${dir#tests/}
		ok=$(allowed "$layer")
		for f in $(find "$root/$dir" -type f \( -name '*.c' -o -name '*.h' \
			-o -name '*.cu' -o -name '*.cuh' -o -name '*.def' \) | sort); do
			# "#include "x/y.h"" lines only; system headers are free.
			grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[a-z_]*/' "$f" |
			while IFS= read -r line; do
				inc=$(printf '%s\n' "$line" | sed 's/.*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/')
				target=${inc%%/*}
				case " $ok " in
				*" $target "*) ;;
				*)
					echo "${f#$root/}:${line%%:*}: layer '$layer' may not include '$inc'"
					continue ;;
				esac
				if [ "$target" != "$layer" ]; then
					pub=$(public_header "$target")
					if [ -n "$pub" ] && [ "$inc" != "$pub" ]; then
						echo "${f#$root/}:${line%%:*}: '$inc' is internal to $target/ (include $pub)"
					fi
				fi
			done
		done
	done
}

# Self-test: a scratch tree with one legal and two illegal includes.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tern-layers.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/ui" "$tmp/app"
printf '#include "themes/theme.h"\n#include "inference/llm.h"\n' > "$tmp/ui/bad.c"
printf '#include "gpu/gpu_impl.h"\n#include "ui/ui.h"\n' > "$tmp/app/bad.c"
n=$(check_tree "$tmp" | wc -l)
if [ "$n" -ne 2 ]; then
	echo "check-layers: self-test expected 2 violations, found $n" >&2
	exit 1
fi

root=${1:-$(dirname "$0")/..}
out=$(check_tree "$root")
if [ -n "$out" ]; then
	printf '%s\n' "$out" >&2
	echo "check-layers: $(printf '%s\n' "$out" | wc -l) include(s) break the layer rule (ARCHITECTURE.md §1)" >&2
	exit 1
fi
echo "check-layers: all includes follow the layer rule"
exit 0
