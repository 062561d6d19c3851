#!/usr/bin/env bash
# Benchmark: tableslurp restoring 1,000 x 4 KiB files and 4 x 256 MiB files
# from the emulator, beside `aws s3 cp --recursive` downloading the same
# prefix in the same run (wall time and throughput; the ratio is the result).
#
#   scripts/bench-files.sh          (SMALL=1000 BIG=4 BIG_MIB=256 to change)
set -euo pipefail
cd "$(dirname "$0")/.."
export SNAPTASTIC_CACHE="${SNAPTASTIC_CACHE:-/var/tmp/snaptastic-cache}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SNAPTASTIC_CACHE/target}"
SMALL="${SMALL:-1000}" BIG="${BIG:-4}" BIG_MIB="${BIG_MIB:-256}"

scripts/setup.sh >/dev/null
venv="$SNAPTASTIC_CACHE/venv"
[ -x "$venv/bin/aws" ] || "$venv/bin/pip" install --quiet --disable-pip-version-check awscli >&2
cargo build --locked --release --quiet --bin snaptastic
bin="$CARGO_TARGET_DIR/release/snaptastic"

work="$(mktemp -d /tmp/snaptastic-bench-files.XXXXXX)"
state="$work/moto.state"
trap 'scripts/emulator.sh stop "$state"; rm -rf "$work"' EXIT
url="$(scripts/emulator.sh start "$state")"
export AWS_ENDPOINT_URL="$url" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
aws() { "$venv/bin/aws" --endpoint-url "$url" "$@"; }
aws s3 mb s3://bench >/dev/null

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# One data set: generate, back up with tablesnap -B, restore both ways.
run() {
    local label="$1" count="$2" size_kib="$3"
    local src="$work/src/$label"
    mkdir -p "$src"
    python3 - "$src" "$count" "$size_kib" <<'PY'
import os, sys
d, n, kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    with open(os.path.join(d, f"ks-tbl-ka-{i}-Data.db"), "wb") as f:
        for _ in range(kib // 1024 or 1):
            f.write(os.urandom(min(kib, 1024) * 1024))
PY
    "$bin" --loglevel=WARNING tablesnap bench "$src" -B -n bench -t 4 &
    local pid=$!
    local want=$((count + 1))
    for _ in $(seq 1 1200); do
        local have
        have=$( (aws s3 ls "s3://bench/bench:$src/" || true) | wc -l)
        [ "$have" -ge "$want" ] && break
        sleep 0.5
    done
    sleep 2
    kill -TERM "$pid"; wait "$pid" || true
    local bytes
    bytes=$(du -sb "$src" | cut -f1)

    local t0 t1 ours theirs
    t0=$(now_ms)
    "$bin" --loglevel=WARNING tableslurp bench "$src" "$work/ours/$label" -n bench -t 8 >/dev/null
    t1=$(now_ms); ours=$((t1 - t0))
    t0=$(now_ms)
    aws s3 cp --recursive --only-show-errors "s3://bench/bench:$src/" "$work/theirs/$label/"
    t1=$(now_ms); theirs=$((t1 - t0))
    diff -rq "$src" "$work/ours/$label" >/dev/null || { echo "bench: restored files differ" >&2; exit 1; }
    python3 - "$label" "$bytes" "$ours" "$theirs" <<'PY'
import sys
label, b, ours, theirs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
mib = b / (1 << 20)
print(f"  {label:<14} tableslurp {ours:6d} ms ({mib / (ours / 1000):7.1f} MiB/s, MD5-verified)   "
      f"aws s3 cp {theirs:6d} ms ({mib / (theirs / 1000):7.1f} MiB/s)   ratio {theirs / ours:4.2f}x")
PY
    rm -rf "$work/ours/$label" "$work/theirs/$label"
}

echo "== restore from the emulator: tableslurp vs aws s3 cp --recursive (same prefix, same run)"
run "${SMALL}x4KiB" "$SMALL" 4
run "${BIG}x${BIG_MIB}MiB" "$BIG" "$((BIG_MIB * 1024))"
