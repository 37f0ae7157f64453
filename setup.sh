#!/bin/sh
# setup.sh — install what tern needs on Debian/Ubuntu, then bootstrap,
# configure and build it.  Idempotent: packages already present are skipped,
# and an existing configuration is reused.
#
#   ./setup.sh && ./tern          set up and chat with the bundled model
#   ./setup.sh && make check      set up and run the test suite
#
# Environment: CONFIGURE_FLAGS (extra ./configure options), CI=true (adds
# --enable-werror), SETUP_NO_APT=1 (skip package installation).
set -eu
cd "$(dirname "$0")"

PACKAGES="build-essential autoconf automake pkg-config make
libncurses-dev libyaml-dev libutf8proc-dev libjansson-dev libpcre2-dev
libpng-dev libjpeg-dev check tmux"

missing=""
if [ "${SETUP_NO_APT:-0}" != 1 ] && command -v dpkg-query >/dev/null 2>&1; then
	for p in $PACKAGES; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
			missing="$missing $p"
		fi
	done
fi
if [ -n "$missing" ]; then
	echo "setup: installing:$missing"
	SUDO=""
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 || {
			echo "setup: need root or sudo to install:$missing" >&2
			exit 1
		}
		SUDO=sudo
	fi
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	# shellcheck disable=SC2086
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi

flags="${CONFIGURE_FLAGS:-}"
if [ "${CI:-}" = true ]; then
	flags="$flags --enable-werror"
fi
if [ ! -x configure ] || [ configure.ac -nt configure ]; then
	echo "setup: bootstrapping (autoreconf)"
	autoreconf -fi
fi
if [ ! -f config.status ] || [ -n "${CONFIGURE_FLAGS:-}" ] || [ "${CI:-}" = true ]; then
	echo "setup: configuring $flags"
	# shellcheck disable=SC2086
	./configure $flags
fi
jobs=$(nproc 2>/dev/null || echo 2)
make -j"$jobs"
echo "setup: done.  Chat: ./tern    Tests: make check"
