#!/usr/bin/env bash
# How long make-snapshots keeps filesystems frozen, release build, against
# the local lab with every call that starts snapshots taking 50 ms (a real
# EC2 round trip; the lab's `rtt` rule, which overlaps its own image
# copies with the wait as EC2's work is inside its round trip), for 1, 8
# and 32 volumes, three ways in one run:
#
#   set         one CreateSnapshots for all volumes (the default)
#   per-volume  one CreateSnapshot per volume, all at once (--per-volume)
#   sequential  snaptastic 0.2.12's way: freeze, snapshot, thaw, one
#               volume after another (N runs of a one-volume profile)
#
# and the window with one throttled reply (RequestLimitExceeded once)
# beside the same run without it. The window is what make-snapshots logs
# per filesystem ("frozen for N ms"); for a run the longest counts.
#
#   sudo scripts/bench-freeze.sh [N ...]     (default: 1 8 32)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench-freeze: needs root (loop devices, mount, freeze)" >&2; exit 1; }

export SNAPTASTIC_CACHE="${SNAPTASTIC_CACHE:-/var/tmp/snaptastic-cache}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SNAPTASTIC_CACHE/target}"
scripts/setup.sh >/dev/null
cargo build --locked --release --workspace --bins --quiet
bin="$CARGO_TARGET_DIR/release"
work="$(mktemp -d /tmp/snaptastic-bench.XXXXXX)"
lab_pid=""
stop_lab() {
    if [ -n "$lab_pid" ]; then kill -TERM "$lab_pid" 2>/dev/null || true; wait "$lab_pid" 2>/dev/null || true; fi
    lab_pid=""
}
trap 'stop_lab; rm -rf "$work"' EXIT
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1 8 32)

latency='[[faults]]
action = "CreateSnapshot*"
reply = "rtt"
latency = "50ms"'
throttled='[[faults]]
action = "CreateSnapshot*"
calls = [1]
reply = "throttle"

'"$latency"

start_lab() {
    local dir="$work/$1"
    mkdir -p "$dir"
    printf '%s\n' "$latency" >"$dir/rules.toml"
    "$bin/snaptastic-lab" --dir "$dir/lab" --rules "$dir/rules.toml" \
        --userdata '{"role": "bench", "cluster": "bench", "environment": "bench"}' \
        >"$dir/lab.out" 2>"$dir/lab.err" &
    lab_pid=$!
    for _ in $(seq 1 600); do grep -q '^READY' "$dir/lab.out" 2>/dev/null && break; sleep 0.1; done
    grep -q '^READY' "$dir/lab.out" || { cat "$dir/lab.err" >&2; exit 1; }
    # shellcheck disable=SC1091
    . "$dir/lab/lab.env"
}
rules() { curl -s -X PUT --data-binary "$1" "$SNAPTASTIC_LAB_CONTROL/rules" >/dev/null; }

# N device names EC2 accepts: sdf..sdz, then xvdba, xvdbb, ...
device() {
    local i=$1 letters=(f g h i j k l m n o p q r s t u v w x y z) second=(a b c d e f g h i j k l m n o p)
    if [ "$i" -lt 21 ]; then echo "/dev/sd${letters[$i]}"; else echo "/dev/xvdb${second[$((i - 21))]}"; fi
}

# config FILE N: N volumes in profile "all", and one profile per volume.
config() {
    local file="$1" n="$2" i
    echo "[profiles.all]" >"$file"
    for ((i = 0; i < n; i++)); do
        printf '[[profiles.all.volumes]]\ndevice = "%s"\nmount_point = "%s/mnt/v%d"\nsize = 1\nfile_system = "ext4"\n' \
            "$(device "$i")" "$work" "$i" >>"$file"
    done
    for ((i = 0; i < n; i++)); do
        printf '[profiles.v%d]\n[[profiles.v%d.volumes]]\ndevice = "%s"\nmount_point = "%s/mnt/v%d"\nsize = 1\nfile_system = "ext4"\n' \
            "$i" "$i" "$(device "$i")" "$work" "$i" >>"$file"
    done
}

# The longest "frozen for N ms" of a run (stdin: its log).
longest() { grep -o 'frozen for [0-9]* ms' | grep -o '[0-9]*' | sort -n | tail -1; }
# One run; its longest window. With BENCH_VERBOSE=1 also where the time
# went (freeze phase, the call, the thaw).
make() {
    "$bin/snaptastic" -c "$cfg" make-snapshots "$@" 2>"$work/last.log" >/dev/null
    [ -z "${BENCH_VERBOSE:-}" ] || grep -o 'freezing took.*' "$work/last.log" | sed "s|^|  $* : |" >&2
    longest <"$work/last.log"
}

printf '%-8s %12s %12s %24s\n' volumes set per-volume "sequential (0.2.12)"
declare -A result
for n in "${sizes[@]}"; do
    start_lab "n$n"
    cfg="$work/n$n.toml"
    config "$cfg" "$n"
    "$bin/snaptastic" -c "$cfg" --loglevel=WARNING mount-snapshots all >/dev/null
    set_ms=$(make all)
    per_ms=$(make all --per-volume)
    seq_sum=0
    for ((i = 0; i < n; i++)); do
        w=$(make "v$i" --per-volume)
        seq_sum=$((seq_sum + w))
    done
    result[$n]="$set_ms $per_ms $seq_sum"
    printf '%-8s %9d ms %9d ms %14d ms in all\n' "$n" "$set_ms" "$per_ms" "$seq_sum"
    if [ "$n" = "${sizes[-1]}" ]; then
        plain=$(make all)
        rules "$throttled"
        throttle_ms=$(make all)
        rules "$latency"
    fi
    "$bin/snaptastic" -c "$cfg" --loglevel=WARNING unmount-snapshots all --yes --delete >/dev/null
    stop_lab
done
n="${sizes[-1]}"
read -r set_ms per_ms seq_sum <<<"${result[$n]}"
python3 - "$n" "$set_ms" "$per_ms" "$seq_sum" "${result[${sizes[0]}]%% *}" "$plain" "$throttle_ms" <<'EOF'
import sys
n, set_ms, per_ms, seq, one, plain, thr = (int(x) for x in sys.argv[1:])
print(f"  {n} volumes: set / one volume's set window: {set_ms / max(one, 1):.2f}x")
print(f"  {n} volumes: per-volume / set: {per_ms / max(set_ms, 1):.2f}x; sequential (0.2.12) / set: {seq / max(set_ms, 1):.1f}x")
print(f"  one throttled reply: window {thr} ms vs {plain} ms without (+{thr - plain} ms)")
EOF
