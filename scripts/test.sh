#!/usr/bin/env bash
# The test command of the README: starts the AWS emulator (installing it
# into a venv outside the clone if needed), runs every test against it,
# and stops it again, also when the tests fail.
#
#   scripts/test.sh                 all tests
#   scripts/test.sh -- list_volumes extra arguments go to cargo test
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
cargo test --locked "$@"
