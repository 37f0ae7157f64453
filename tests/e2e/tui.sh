#!/bin/sh
# tests/e2e/tui.sh — drive the real tern binary in tmux, as a person would:
# start with an empty HOME (first start writes the default config naming the
# bundled model), send a message and see the streamed reply, stop and
# regenerate it and browse back to the first branch, make a second
# conversation, switch back, quit, restart, and find both conversations.
# Exits 77 (SKIP) when tmux is missing.
set -u
. "$(dirname "$0")/tmux.sh"

start() {
	tmux -L "$sock" new-session -d -s t -x 100 -y 30 \
		"$tern_cmd; sleep 30" ||
		fail "tmux could not start"
}

start
wait_for 'stories260k' 20 || fail "status bar never showed the bundled model"
[ -f "$home/.config/tern/config.yaml" ] || fail "first start did not write config.yaml"
grep -q 'stories260k' "$home/.config/tern/config.yaml" || fail "default config does not name the bundled model"
wait_for 'completion' 20 || fail "no completion-mode notice for a model without a chat template"

# Resizing while idle redraws at once, with no key pressed: the status bar
# is on the new last row.
tmux -L "$sock" resize-window -t t -x 90 -y 26
sleep 1
screen | tail -n 1 | grep -q 'stories260k' || fail "resizing while idle did not redraw (no status bar)"
tmux -L "$sock" resize-window -t t -x 100 -y 30
sleep 1
screen | tail -n 1 | grep -q 'stories260k' || fail "resizing back while idle did not redraw"

keys -l 'Once upon a time'
keys Enter
# The reply streams in: the story model continues with more words.  Wait
# for the reply to finish (the status bar's tokens/s, then idle) by looking
# for text beyond the prompt.
wait_for 'Once upon a time' 10 || fail "the sent message is not in the transcript"
sleep 1
i=0
while [ $i -lt 100 ]; do
	n=$(screen | grep -Eo '[A-Za-z]+' | wc -l)
	[ "$n" -gt 60 ] && break
	sleep 0.2
	i=$((i + 1))
done
[ "$n" -gt 60 ] || fail "no streamed reply appeared"
sleep 1

# Stop the reply (Esc), regenerate it (C-r): the old reply stays as a
# branch that can be browsed back to (M-,).
keys Escape
sleep 1
keys C-r
wait_for 'branch 2/2' 10 || fail "regenerating did not make a second branch"
sleep 1
keys Escape
sleep 1
keys M-,
wait_for 'branch 1/2' 10 || fail "could not browse back to the first branch"
sleep 1

keys C-n
sleep 0.5
keys -l 'Lily and Ben'
keys Enter
wait_for 'Lily and Ben' 10 || fail "second conversation did not get its message"
sleep 3
# Back to the first conversation.
keys M-n
sleep 0.5
keys M-p
sleep 1
keys C-q
sleep 1
tmux -L "$sock" kill-session -t t 2>/dev/null

ls "$home/.local/share/tern/conversations/"*.json >/dev/null 2>&1 || fail "no conversation files were saved"
n=$(ls "$home/.local/share/tern/conversations/"*.json | wc -l)
[ "$n" -ge 2 ] || fail "expected 2 saved conversations, found $n"

start
wait_for 'Once upon a time' 20 || fail "after restart the first conversation is missing"
wait_for 'Lily and Ben' 5 || fail "after restart the second conversation is missing"
# The newest conversation opens first; the other one keeps its branches
# and the branch that was chosen last.
keys M-n
wait_for 'branch 1/2' 10 || fail "after restart the branches of the first conversation are missing"

# A prompt longer than the context (512 positions): cut to fit, and the
# reply that then fills the context ends with a notice saying both; the
# notice belongs to its conversation (gone in another, back on return).
keys C-n
sleep 0.5
awk 'BEGIN { for (i = 0; i < 300; i++) printf "Once upon a time a cat sat. " }' >"$home/long.txt"
tmux -L "$sock" load-buffer "$home/long.txt"
tmux -L "$sock" paste-buffer -p -t t
sleep 1
keys Enter
wait_for 'context is full' 30 || fail "a reply cut by the full context has no notice"
screen | grep -q 'ctx 512/512' || fail "the status bar does not show the full context"
wait_for 'prompt cut to fit: first [0-9]+ of [0-9]+ tokens' 2 || fail "no notice that the prompt was cut to fit"
keys M-n
sleep 0.5
screen | grep -q 'context is full' && fail "the notice followed to another conversation"
screen | grep -q 'ctx 512/512' && fail "the other conversation shows this one's context"
keys M-p
wait_for 'context is full' 5 || fail "the conversation's notice is gone on return"
keys C-q
echo "PASS: tui end-to-end (send, stream, stop, regenerate, branches, second conversation, restart)"
exit 0
