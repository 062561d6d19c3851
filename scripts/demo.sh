#!/usr/bin/env bash
# The README's main quick start: snaptastic's original tutorial for a `solr`
# profile, end to end with the real binary, in the local EC2 lab (moto plus
# real loop devices). Needs root (loop devices, mount).
#
#   sudo scripts/demo.sh
#
# mount-snapshots (first time: empty volume, formatted), write a file,
# make-snapshots, unmount-snapshots, mount-snapshots again (at a provisioned
# initialization rate, warmed up in the background): the file is back.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "demo: needs root for loop devices and mount; run: sudo $0" >&2
    exit 1
fi

export SNAPTASTIC_CACHE="${SNAPTASTIC_CACHE:-/var/tmp/snaptastic-cache}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SNAPTASTIC_CACHE/target}"
scripts/setup.sh
echo "== building snaptastic and the lab"
cargo build --locked --workspace --quiet
bin="$CARGO_TARGET_DIR/debug"

work="$(mktemp -d /tmp/snaptastic-demo.XXXXXX)"
lab_pid=""
cleanup() {
    if [ -n "$lab_pid" ]; then
        kill -TERM "$lab_pid" 2>/dev/null || true
        wait "$lab_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "== starting the lab in $work (moto, metadata, devices under $work/lab/dev)"
"$bin/snaptastic-lab" --dir "$work/lab" \
    --userdata '{"role": "solr", "cluster": "solr", "environment": "demo"}' \
    >"$work/lab.out" 2>"$work/lab.err" &
lab_pid=$!
for _ in $(seq 1 600); do
    grep -q '^READY' "$work/lab.out" 2>/dev/null && break
    if ! kill -0 "$lab_pid" 2>/dev/null; then cat "$work/lab.err" >&2; exit 1; fi
    sleep 0.1
done
grep -q '^READY' "$work/lab.out" || { echo "demo: the lab did not start" >&2; cat "$work/lab.err" >&2; exit 1; }
# shellcheck disable=SC1091
. "$work/lab/lab.env"

mnt="$work/mnt/solr"
cat >"$work/snaptastic.toml" <<TOML
[profiles.solr]
[[profiles.solr.volumes]]
device = "/dev/sdf"
mount_point = "$mnt"
size = 1
file_system = "xfs"
TOML
export SNAPTASTIC_CONFIG="$work/snaptastic.toml"
# The warm-up's checkpoints stay with the demo, not in /var/lib/snaptastic.
export SNAPTASTIC_STATE_DIR="$work/state"
echo "== configuration ($SNAPTASTIC_CONFIG)"
cat "$SNAPTASTIC_CONFIG"

# Run one step; a command that has not landed yet ends the demo there.
step() {
    echo
    echo "== snaptastic $*"
    local err="$work/step.err" rc=0
    "$bin/snaptastic" "$@" 2>"$err" || rc=$?
    cat "$err" >&2
    if [ "$rc" -ne 0 ]; then
        if grep -q "is not implemented yet" "$err"; then
            echo
            echo "demo: stops here: '$1' is not implemented yet in this version; the steps after it are still to come."
            exit 0
        fi
        echo "demo: 'snaptastic $*' failed (exit $rc)" >&2
        exit "$rc"
    fi
}

step test
step list-volumes solr
step mount-snapshots solr
echo "== writing a file to $mnt"
echo "hello from the demo, $(date -u)" | tee "$mnt/hello.txt"
step make-snapshots solr
# --delete: the volume is gone, so the file can only come back from the
# snapshot (without it, mount-snapshots re-attaches the detached volume,
# which holds data newer than any snapshot).
step unmount-snapshots solr --yes --delete
step list-volumes solr
# At full speed: EC2 loads the blocks at a provisioned rate (the lab plays
# it), and a background warm-up reads each one once.
step mount-snapshots solr --init-rate 300 --prewarm block
echo
echo "== the file came back from the snapshot:"
cat "$mnt/hello.txt"
step list-volumes solr
echo
echo "== waiting until list-volumes --check-ready says the volume is at full speed"
for _ in $(seq 60); do
    "$bin/snaptastic" list-volumes solr --check-ready >/dev/null 2>&1 && break
    sleep 1
done
step list-volumes solr --check-ready
step unmount-snapshots solr --yes --delete
echo "demo: done"
