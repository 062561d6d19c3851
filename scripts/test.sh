#!/usr/bin/env bash
# The test command of the README: starts the AWS emulator (installing it
# into a venv outside the clone if needed), runs every test against it,
# and stops it again, also when the tests fail.
#
#   scripts/test.sh                 all tests
#   scripts/test.sh -- list_volumes extra arguments go to the test runner
#                                   (cargo nextest, or cargo test without it)
set -euo pipefail
cd "$(dirname "$0")/.."

export SNAPTASTIC_CACHE="${SNAPTASTIC_CACHE:-/var/tmp/snaptastic-cache}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SNAPTASTIC_CACHE/target}"

state="$(mktemp -t snaptastic-moto.XXXXXX)"
trap 'scripts/emulator.sh stop "$state"' EXIT
SNAPTASTIC_TEST_MOTO_URL="$(scripts/emulator.sh start "$state")"
export SNAPTASTIC_TEST_MOTO_URL
echo "test.sh: moto at $SNAPTASTIC_TEST_MOTO_URL" >&2

[ "${1:-}" = "--" ] && shift
# The lab is a workspace binary the tests start; build it first.
cargo build --locked -p snaptastic-lab
if cargo nextest --version >/dev/null 2>&1; then
    # One summary line at the end ("N tests run: N passed ...").
    cargo nextest run --locked --workspace --no-fail-fast "$@"
else
    cargo test --locked --workspace "$@"
fi
