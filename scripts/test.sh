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

cargo test --workspace --locked "$@"
