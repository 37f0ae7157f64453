# tests/e2e/tmux.sh — sourced by the tmux end-to-end tests (tui.sh,
# tui_errors.sh): the tern binary ($TERN), a scratch $home removed at exit,
# a private tmux server ($sock) and the helpers that drive pane "t".
# Exits the test with 77 (SKIP) when tmux is missing.
TERN=${TERN:-$(cd "$(dirname "$0")/../.." && pwd)/tern}
[ -x "$TERN" ] || TERN=$(pwd)/tern
command -v tmux >/dev/null 2>&1 || { echo "SKIP: tmux not installed"; exit 77; }

home=$(mktemp -d "${TMPDIR:-/tmp}/tern-e2e.XXXXXX")
sock="tern-e2e-$(basename "$0" .sh)-$$"
cleanup() {
	tmux -L "$sock" kill-server 2>/dev/null
	rm -rf "$home"
}
trap cleanup EXIT
# tern in $home, as a pane's command (append arguments, "; ..." after it)
tern_cmd="env -u XDG_CONFIG_HOME -u XDG_DATA_HOME HOME='$home' TERM=xterm-256color LANG=C.UTF-8 '$TERN'"
# fail MESSAGE: say why, show the screen, end the test.
fail() {
	echo "FAIL: $*"
	echo "---- screen ----"
	tmux -L "$sock" capture-pane -p -t t 2>/dev/null
	echo "----------------"
	exit 1
}
screen() { tmux -L "$sock" capture-pane -p -t t; }
# wait_for PATTERN SECONDS: poll the screen until grep -E matches.
wait_for() {
	i=0
	while [ "$i" -lt $(($2 * 10)) ]; do
		screen | grep -Eq -- "$1" && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}
keys() { tmux -L "$sock" send-keys -t t "$@"; }
