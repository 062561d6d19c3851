#!/usr/bin/env bash
# The IAM policy linter (parliament, PyPI) that tests/it/policy.rs runs on
# the output of `snaptastic iam-policy`.
#
#   scripts/policy-lint.sh install    make sure the venv with parliament exists
#   scripts/policy-lint.sh path       print the linter's path (after install)
#
# The venv lives outside the clone so CI and later runs reuse it, beside the
# emulator's: $SNAPTASTIC_CACHE (default /var/tmp/snaptastic-cache)/parliament-venv.
# The test finds it there (or at $SNAPTASTIC_PARLIAMENT); in CI it fails
# when the linter is missing, elsewhere it says it skipped.
set -euo pipefail

PARLIAMENT_VERSION="${PARLIAMENT_VERSION:-1.6.4}"
CACHE="${SNAPTASTIC_CACHE:-/var/tmp/snaptastic-cache}"
VENV="$CACHE/parliament-venv"

install() {
    if [ -x "$VENV/bin/parliament" ] &&
        [ "$("$VENV/bin/parliament" --version 2>/dev/null)" = "parliament $PARLIAMENT_VERSION" ]; then
        return 0
    fi
    echo "policy-lint: installing parliament==$PARLIAMENT_VERSION into $VENV" >&2
    mkdir -p "$CACHE"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "parliament==$PARLIAMENT_VERSION" >&2
}

case "${1:-}" in
    install) install ;;
    path) echo "$VENV/bin/parliament" ;;
    *) echo "usage: $0 install | path" >&2; exit 2 ;;
esac
