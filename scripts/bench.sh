#!/usr/bin/env bash
# Benchmarks against the local lab, each beside a peer in the same run:
#
#  1. mount-snapshots of 1 and of 8 volumes with 50 ms added to every EC2
#     call: wall time and EC2 call count (8 should take well under 2x of 1).
#  2. make-snapshots of 8 volumes with 50 ms added to CreateSnapshot: how
#     long filesystems are frozen, beside the sequential freeze, snapshot,
#     thaw per volume of snaptastic 0.2.12 (8 runs of a 1-volume profile).
#
#   sudo scripts/bench.sh          (needs root: loop devices, mount, freeze)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root" >&2; exit 1; }

export SNAPTASTIC_CACHE="${SNAPTASTIC_CACHE:-/var/tmp/snaptastic-cache}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SNAPTASTIC_CACHE/target}"
scripts/setup.sh >/dev/null
cargo build --locked --workspace --quiet
bin="$CARGO_TARGET_DIR/debug"
work="$(mktemp -d /tmp/snaptastic-bench.XXXXXX)"
lab_pid=""
stop_lab() {
    if [ -n "$lab_pid" ]; then kill -TERM "$lab_pid" 2>/dev/null || true; wait "$lab_pid" 2>/dev/null || true; fi
    lab_pid=""
}
trap 'stop_lab; rm -rf "$work"' EXIT

# start_lab NAME RULES: a fresh lab (own instance and moto) with rules.
start_lab() {
    local dir="$work/$1"
    mkdir -p "$dir"
    printf '%s\n' "$2" >"$dir/rules.toml"
    "$bin/snaptastic-lab" --dir "$dir/lab" --rules "$dir/rules.toml" \
        --userdata '{"role": "bench", "cluster": "bench", "environment": "bench"}' \
        >"$dir/lab.out" 2>"$dir/lab.err" &
    lab_pid=$!
    for _ in $(seq 1 600); do grep -q '^READY' "$dir/lab.out" 2>/dev/null && break; sleep 0.1; done
    grep -q '^READY' "$dir/lab.out" || { cat "$dir/lab.err" >&2; exit 1; }
    # shellcheck disable=SC1091
    . "$dir/lab/lab.env"
}

# config FILE N [PROFILES]: N volumes (sdf, sdg, ...) in profile "all";
# with PROFILES=split also one profile per volume (v0 .. vN-1).
config() {
    local file="$1" n="$2" split="${3:-}" letters=(f g h i j k l m) i
    echo "[profiles.all]" >"$file"
    for ((i = 0; i < n; i++)); do
        printf '[[profiles.all.volumes]]\ndevice = "/dev/sd%s"\nmount_point = "%s/mnt/v%d"\nsize = 1\nfile_system = "ext4"\n' \
            "${letters[$i]}" "$work" "$i" >>"$file"
    done
    if [ "$split" = split ]; then
        for ((i = 0; i < n; i++)); do
            printf '[profiles.v%d]\n[[profiles.v%d.volumes]]\ndevice = "/dev/sd%s"\nmount_point = "%s/mnt/v%d"\nsize = 1\nfile_system = "ext4"\n' \
                "$i" "$i" "${letters[$i]}" "$work" "$i" >>"$file"
        done
    fi
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }
calls() { curl -s "$SNAPTASTIC_LAB_CONTROL/state" | python3 -c 'import json,sys; print(sum(json.load(sys.stdin)["calls"].values()))'; }

echo "== mount-snapshots, 50 ms added to every EC2 call"
latency='[[faults]]
action = "*"
reply = "latency"
latency = "50ms"'
declare -A mount_ms
for n in 1 8; do
    start_lab "mount$n" "$latency"
    config "$work/mount$n.toml" "$n"
    before=$(calls)
    t0=$(now_ms)
    "$bin/snaptastic" -c "$work/mount$n.toml" --loglevel=WARNING mount-snapshots all >/dev/null
    t1=$(now_ms)
    mount_ms[$n]=$((t1 - t0))
    printf '  %d volume(s): %6d ms wall, %3d EC2 calls\n' "$n" "${mount_ms[$n]}" "$(($(calls) - before))"
    "$bin/snaptastic" -c "$work/mount$n.toml" --loglevel=WARNING unmount-snapshots all --yes --delete >/dev/null
    stop_lab
done
python3 -c "print('  8 volumes / 1 volume: %.2fx the time' % (${mount_ms[8]} / ${mount_ms[1]}))"

echo "== make-snapshots of 8 volumes, 50 ms added to CreateSnapshot"
start_lab snap '[[faults]]
action = "CreateSnapshot*"
reply = "latency"
latency = "50ms"'
config "$work/snap.toml" 8 split
"$bin/snaptastic" -c "$work/snap.toml" --loglevel=WARNING mount-snapshots all >/dev/null
windows() { grep -o 'frozen for [0-9]* ms' | grep -o '[0-9]*'; }
t0=$(now_ms)
ours=$("$bin/snaptastic" -c "$work/snap.toml" make-snapshots all 2>&1 >/dev/null | windows)
t1=$(now_ms)
ours_max=$(echo "$ours" | sort -n | tail -1)
seq_sum=0
seq_max=0
for i in 0 1 2 3 4 5 6 7; do
    w=$("$bin/snaptastic" -c "$work/snap.toml" make-snapshots "v$i" 2>&1 >/dev/null | windows)
    seq_sum=$((seq_sum + w))
    [ "$w" -gt "$seq_max" ] && seq_max=$w
done
printf '  snaptastic (all frozen together): longest window %4d ms; some filesystem frozen for ~%d ms (run took %d ms)\n' \
    "$ours_max" "$ours_max" "$((t1 - t0))"
printf '  sequential per volume (0.2.12):   longest window %4d ms; filesystems frozen one after another for >= %d ms in all\n' \
    "$seq_max" "$seq_sum"
python3 -c "print('  time with a frozen filesystem, sequential / together: %.1fx' % ($seq_sum / max($ours_max, 1)))"
"$bin/snaptastic" -c "$work/snap.toml" --loglevel=WARNING unmount-snapshots all --yes --delete >/dev/null
