#!/usr/bin/env bash
# The whole test suite, from a fresh clone: prepares the machine (OpenSSH,
# the test user; needs root, idempotent), then runs every unit and
# integration test. The integration tests start their own sshd servers and
# daemons and stop them when done.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ $(id -u) -eq 0 ]]; then
    bash scripts/test-env.sh
else
    sudo bash scripts/test-env.sh
fi

# Run everything, then close with one line totalling every test binary
# (cargo's own last line is the doc tests' count, which is zero).
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked "$@" 2>&1 | tee "$log" || status=$?
# Timing budgets measure wall time in a real browser: they run after the
# suite, alone, so the machine's other tests do not measure themselves into
# them (see tests/api/console/budgets.rs). Only on a full run.
if [[ $# -eq 0 ]]; then
    cargo test --locked --test api -- --ignored --exact \
        console::budgets::printing_50_mb_keeps_the_page_responsive \
        console::terminals::a_keystroke_in_a_second_terminal_echoes_within_100_ms_while_50_mb_prints_in_the_first \
        2>&1 | tee -a "$log" || status=$?
fi
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "summary: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
