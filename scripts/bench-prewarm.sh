#!/usr/bin/env bash
# The warm-up's read throughput beside fio's on the same device in the same
# run (issue 28's bar: ours >= 0.9 x fio):
#
#   fio --name=warm --filename=/dev/loopN --rw=read --bs=1M --iodepth=32 \
#       --ioengine=libaio --direct=1
#   snaptastic prewarm /dev/loopN --volume-id vol-... (its defaults)
#
# The device is a loop device over a file of BENCH_SIZE_MIB (default 2048)
# MiB of random data in /var/tmp, attached with --direct-io=on so every
# read reaches the disk below (without it the second run would read the
# backing file's page cache); caches are dropped before every run anyway.
# BENCH_RUNS (default 3) rounds, fio first in odd rounds and ours first in
# even ones (drift hits both); the medians and their ratio are printed.
# Each warm-up gets a fresh state directory (no checkpoint: it reads all).
#
#   sudo scripts/bench-prewarm.sh           the comparison
#   sudo scripts/bench-prewarm.sh --tune    ours at depths x request sizes,
#                                           one run each (how the defaults
#                                           were chosen)
#
# SNAPTASTIC_BIN picks the binary (default: the release build, built here).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench-prewarm: needs root (loop devices, drop_caches)" >&2; exit 1; }
command -v fio >/dev/null || scripts/setup.sh >/dev/null
command -v fio >/dev/null || { echo "bench-prewarm: fio is missing (scripts/setup.sh installs it)" >&2; exit 1; }

export SNAPTASTIC_CACHE="${SNAPTASTIC_CACHE:-/var/tmp/snaptastic-cache}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SNAPTASTIC_CACHE/target}"
if [ -z "${SNAPTASTIC_BIN:-}" ]; then
    cargo build --locked --release --bin snaptastic --quiet
    SNAPTASTIC_BIN="$CARGO_TARGET_DIR/release/snaptastic"
fi
size_mib="${BENCH_SIZE_MIB:-2048}"
runs="${BENCH_RUNS:-3}"
vol=vol-0123456789abcdef0

work="$(mktemp -d /var/tmp/snaptastic-bench-prewarm.XXXXXX)"
loop=""
cleanup() {
    if [ -n "$loop" ]; then losetup -d "$loop" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "bench-prewarm: writing $size_mib MiB of random data" >&2
dd if=/dev/urandom of="$work/img" bs=1M count="$size_mib" status=none conv=fsync
loop="$(losetup --find --show --direct-io=on "$work/img")"
echo "bench-prewarm: $loop over $work/img (direct I/O: $(cat "/sys/block/${loop#/dev/}/loop/dio"))" >&2

drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

# fio's read bandwidth in MiB/s.
fio_run() {
    drop_caches
    fio --name=warm --filename="$loop" --rw=read --bs=1M --iodepth=32 \
        --ioengine=libaio --direct=1 --output-format=json |
        python3 -c 'import json,sys; j=json.load(sys.stdin); print("%.1f" % (j["jobs"][0]["read"]["bw_bytes"]/1048576))'
}

# Ours, in MiB/s, as it reports its run ("..., N MiB/s)"); extra flags
# (--depth, --request-kib) as given.
ours_run() {
    local state
    state="$(mktemp -d "$work/state.XXXXXX")"
    drop_caches
    SNAPTASTIC_STATE_DIR="$state" "$SNAPTASTIC_BIN" prewarm "$loop" --volume-id "$vol" "$@" 2>&1 |
        sed -n 's/.*warmed .* this run, \([0-9.]*\) MiB\/s).*/\1/p'
    rm -rf "$state"
}

median() {
    python3 -c 'import statistics,sys; print("%.1f" % statistics.median(float(x) for x in sys.argv[1:]))' "$@"
}

if [ "${1:-}" = "--tune" ]; then
    printf '%-8s' "depth"
    for kib in 256 1024 4096; do printf '%12s' "${kib} KiB"; done
    printf '%12s\n' "fio (32)"
    for depth in 1 4 8 16 32 64; do
        printf '%-8s' "$depth"
        for kib in 256 1024 4096; do printf '%12s' "$(ours_run --depth "$depth" --request-kib "$kib")"; done
        printf '%12s\n' "$(fio_run)"
    done
    exit 0
fi

fio_rates=()
ours_rates=()
for i in $(seq 1 "$runs"); do
    if [ $((i % 2)) -eq 1 ]; then
        fio_rates+=("$(fio_run)")
        ours_rates+=("$(ours_run)")
    else
        ours_rates+=("$(ours_run)")
        fio_rates+=("$(fio_run)")
    fi
    echo "bench-prewarm: round $i: fio ${fio_rates[-1]} MiB/s, snaptastic prewarm ${ours_rates[-1]} MiB/s" >&2
done
f="$(median "${fio_rates[@]}")"
o="$(median "${ours_rates[@]}")"
echo "== $size_mib MiB loop device (direct I/O), median of $runs runs"
printf '  %-52s %8s MiB/s  (%s)\n' "fio --bs=1M --iodepth=32 --ioengine=libaio --direct=1" "$f" "${fio_rates[*]}"
printf '  %-52s %8s MiB/s  (%s)\n' "snaptastic prewarm (defaults)" "$o" "${ours_rates[*]}"
python3 -c 'import sys; print("  ours / fio: %.2f" % (float(sys.argv[2]) / float(sys.argv[1])))' "$f" "$o"
