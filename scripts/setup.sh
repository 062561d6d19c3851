#!/usr/bin/env bash
# Install what the tests, the lab and the demo need on a fresh Debian/Ubuntu
# machine: filesystem tools (mkfs.xfs, xfs_repair, mkfs.ext4, fsck), loop
# devices (losetup), curl, fio (the warm-up benchmark's yardstick),
# python3-venv for the emulator's venv, dpkg, man-db, systemd-analyze, rpm,
# rpmlint and lintian for the package checks; then the
# emulator itself and the IAM policy linter (parliament, for the test that
# lints `snaptastic iam-policy`). Idempotent: does nothing when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v mkfs.xfs >/dev/null 2>&1 || need+=(xfsprogs)
command -v mkfs.ext4 >/dev/null 2>&1 || need+=(e2fsprogs)
command -v losetup >/dev/null 2>&1 || need+=(util-linux)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux) # the fault matrix's tablesnap kill points
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v fio >/dev/null 2>&1 || need+=(fio) # scripts/bench-prewarm.sh's yardstick
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
# The package check: build, inspect and install the .deb, read its man
# page, verify its systemd units.
command -v dpkg-deb >/dev/null 2>&1 || need+=(dpkg)
command -v man >/dev/null 2>&1 || need+=(man-db)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# The RPM (rpmbuild, rpm, rpmlint) and the .deb's lint.
command -v rpmbuild >/dev/null 2>&1 || need+=(rpm)
command -v rpmlint >/dev/null 2>&1 || need+=(rpmlint)
command -v lintian >/dev/null 2>&1 || need+=(lintian)

if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing packages: ${need[*]} (run as root or install them)" >&2
        exit 1
    fi
    echo "setup: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${need[@]}" >/dev/null
fi

scripts/emulator.sh install
scripts/policy-lint.sh install
