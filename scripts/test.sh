#!/usr/bin/env bash
# The test command of the README: starts the AWS emulator (installing it
# into a venv outside the clone if needed), runs every test against it,
# and stops it again, also when the tests fail.
#
#   scripts/test.sh                 all tests
#   scripts/test.sh -- list_volumes extra arguments go to the test runner
#                                   (cargo nextest, or cargo test without it)
#   SNAPTASTIC_TEST_FILTER='test(/^attacks::/)' scripts/test.sh
#                                   only the tests a nextest filterset picks
#   SNAPTASTIC_TEST_BIN=PATH        run the binary at PATH (e.g. the release
#                                   build) instead of this build's
#
# Tests that need root (loop devices, mount(2), freezing) are marked
# #[ignore] with the reason, so a plain `cargo test` as a user reports them
# as skipped, never as passed. This script runs them when it is root, and
# in CI (CI set) always: there they fail if root is missing.
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
# The lab and the example snapshotters are binaries the tests start; build
# them first.
cargo build --locked --workspace --bins --examples

# The tests that need the emulator or root are #[ignore]d, so a bare
# `cargo test` lists them as ignored instead of passing them silently;
# here the emulator runs, so all of them run. Without root, those that
# need loop devices and mount print SKIPPED and why (in CI they fail).
if [ "$(id -u)" != 0 ] && [ -z "${CI:-}" ]; then
    echo "test.sh: not root: the tests that need loop devices and mount print SKIPPED" >&2
fi
# panicking_child is a helper that the panic test runs in a child. The
# long soak and the memory measurement take minutes: they run with
# SNAPTASTIC_LONG_SOAK=1 and are otherwise counted as skipped, not passed.
filter='not test(=lab::panicking_child)'
if [ -z "${SNAPTASTIC_LONG_SOAK:-}" ]; then
    filter+=' & not test(/^tablesnap_longrun::(a_long_churn|memory_and_disk)/)'
fi
# The fault matrix (tests/it/fault_matrix) writes one line per command
# and fault; the totals are printed at the end.
matrix_log="$(mktemp -t snaptastic-fault-matrix.XXXXXX)"
export SNAPTASTIC_FAULT_MATRIX_LOG="$matrix_log"
status=0
if cargo nextest --version >/dev/null 2>&1; then
    # One summary line at the end ("N tests run: N passed, M skipped").
    cargo nextest run --locked --workspace --no-fail-fast --run-ignored all \
        -E "${SNAPTASTIC_TEST_FILTER:-$filter}" "$@" || status=$?
else
    cargo test --locked --workspace "$@" -- --include-ignored --skip lab::panicking_child || status=$?
fi
scripts/fault-matrix-summary.sh "$matrix_log" >&2 || true
rm -f "$matrix_log"
exit "$status"
