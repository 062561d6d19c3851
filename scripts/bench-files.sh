#!/usr/bin/env bash
# Benchmark of the file commands (tablesnap, tableslurp, tablechop) beside
# their peers, in one run, against the same S3 emulator (moto):
#
#   ours       snaptastic tablesnap / tableslurp / tablechop (release build)
#   1.2.1      tablesnap 1.2.1 from PyPI (Python 2.7, boto 2), the tool ours
#              replaces, installed into $SNAPTASTIC_CACHE/py27-tablesnap
#   aws-cli    `aws s3 cp --recursive` (awscli v1 in the emulator's venv)
#
# Each row runs with S3 as fast as moto answers and with 20 ms added to
# every S3 request. The latency is added by the repository's lab
# (lab/, snaptastic-lab, rule `action = "*"`, `reply = "latency"`), which
# stands as a proxy in front of moto and also counts the requests per S3
# operation; every tool talks to the lab, the bench's own checks go to moto
# directly and are not counted. Row 3 (big files) talks to moto directly.
#
#   1  backup of SMALL (1,000) x 4 KiB in one directory (tablesnap -B until
#      all keys and the index are there; aws s3 cp --recursive)
#   2  backup of TREE_DIRS (100) x TREE_FILES (100) x 4 KiB (-r)
#   3  upload of BIG (4) x BIG_MIB (256) MiB; peak RSS too (0 ms only)
#   4  restore of row 1's backup: tableslurp vs aws s3 cp --recursive
#   5  restore of row 2's tree: tableslurp -r vs aws s3 cp --recursive
#   6  tablechop --dry-run over CHOP_OBJECTS (10,000) data objects and
#      CHOP_INDEXES (1,000) indexes vs tablechop 1.2.1 -d (its dry run)
#   7  SIGTERM to exit of tablesnap with uploads owed while S3 hangs (lab
#      `hang` rule) and while S3 refuses connections (a closed port)
#   8  last data file of a 50-file batch in S3 -> its index in S3 (daemon
#      watching, files written while it runs)
#
# Files are named as Cassandra SSTable components (8 per generation:
# Data.db, Index.db, ..., TOC.txt); 1.2.1 writes one index per Data.db
# file, ours one per directory batch.
#
#   sudo scripts/bench-files.sh            (root: the lab refuses to run
#                                           without; without root only the
#                                           0 ms rows run, uncounted)
#
# Knobs (environment): ROWS="1 2 3 4 5 6 7 8" LATENCIES="0 20" SMALL=1000
# TREE_DIRS=100 TREE_FILES=100 CHOP_OBJECTS=10000 CHOP_INDEXES=1000
# SCALE=1 (multiplies TREE_DIRS, CHOP_OBJECTS and CHOP_INDEXES: rows 2, 5,
# 6) BIG=4 BIG_MIB=256 BATCH=50 THREADS=N (-t for ours and 1.2.1; default: each tool's own)
# PEERS="1.2.1 aws-cli" (which peers to try) MOTO_SERVER=stock|keepalive
# (keepalive: moto served by waitress, see scripts/bench/moto_server_keepalive.py) TIMEOUT=900 (s per run)
# KEEP=1 (keep the work directory). The whole run takes ~15-20 minutes on
# 2 cores; ROWS="1 3 4 7" SCALE=0.2 a few.
set -euo pipefail
cd "$(dirname "$0")/.."
export SNAPTASTIC_CACHE="${SNAPTASTIC_CACHE:-/var/tmp/snaptastic-cache}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SNAPTASTIC_CACHE/target}"
export ROWS="${ROWS:-1 2 3 4 5 6 7 8}" LATENCIES="${LATENCIES:-0 20}"
export PEERS="${PEERS:-1.2.1 aws-cli}"

scripts/setup.sh >/dev/null
venv="$SNAPTASTIC_CACHE/venv"

# Peers: installed once, reused; a peer that cannot be installed is left
# out of the run (said below), never the end of it.
peers_ok=()
case " $PEERS " in *" aws-cli "*)
    if [ -x "$venv/bin/aws" ] || "$venv/bin/pip" install --quiet --disable-pip-version-check awscli >&2; then
        peers_ok+=(aws-cli)
    else
        echo "bench: could not install awscli; running without aws-cli" >&2
    fi ;;
esac
# MOTO_SERVER=keepalive: the same moto app behind waitress, which keeps
# connections alive as S3 does (stock moto_server closes every one).
export MOTO_SERVER="${MOTO_SERVER:-stock}"
if [ "$MOTO_SERVER" = keepalive ] && ! "$venv/bin/python" -c 'import waitress' 2>/dev/null \
    && ! "$venv/bin/pip" install --quiet --disable-pip-version-check waitress >&2; then
    echo "bench: could not install waitress; moto runs as stock moto_server" >&2
    MOTO_SERVER=stock
fi
py27="" py27_dir="$SNAPTASTIC_CACHE/py27-tablesnap"
case " $PEERS " in *" 1.2.1 "*)
    for p in "$(pyenv prefix 2.7.18 2>/dev/null || true)/bin/python2.7" \
        "$HOME"/.pyenv/versions/2.7*/bin/python2.7 /usr/bin/python2.7 /usr/local/bin/python2.7; do
        if [ -x "$p" ] && "$p" -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null; then py27="$p"; break; fi
    done
    if [ -z "$py27" ]; then
        echo "bench: no Python 2.7 interpreter found; running without tablesnap 1.2.1" >&2
    else
        # pip --target: a private directory, nothing added to the interpreter.
        # tablechop 1.2.1 imports eventlet, which its package does not require.
        if ! PYTHONPATH="$py27_dir" "$py27" -c 'import boto, pyinotify, eventlet, dateutil' 2>/dev/null \
            || [ ! -f "$py27_dir/bin/tablesnap" ]; then
            echo "bench: installing tablesnap==1.2.1 into $py27_dir" >&2
            "$py27" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
                --target "$py27_dir" 'tablesnap==1.2.1' eventlet >&2 2>/dev/null || true
        fi
        if PYTHONPATH="$py27_dir" "$py27" -c 'import boto, pyinotify, eventlet, dateutil' 2>/dev/null \
            && [ -f "$py27_dir/bin/tablesnap" ]; then
            peers_ok+=(1.2.1)
        else
            echo "bench: tablesnap 1.2.1 could not be installed; running without it" >&2
            py27=""
        fi
    fi ;;
esac

CARGO_NET_OFFLINE="${CARGO_NET_OFFLINE:-true}" cargo build --locked --release --quiet --bin snaptastic
bin="$CARGO_TARGET_DIR/release"
lab_ok=""
if [ "$(id -u)" -eq 0 ]; then
    if CARGO_NET_OFFLINE="${CARGO_NET_OFFLINE:-true}" cargo build --locked --release --quiet -p snaptastic-lab; then
        lab_ok=1
    else
        echo "bench: the lab did not build; running without it" >&2
    fi
else
    echo "bench: not root, so no lab (it needs root): 0 ms rows only, no request counts" >&2
fi

work="$(mktemp -d /var/tmp/snaptastic-bench-files.XXXXXX)"
state="$work/moto.state"
lab_pid=""
cleanup() {
    if [ -n "$lab_pid" ]; then kill -TERM "$lab_pid" 2>/dev/null || true; wait "$lab_pid" 2>/dev/null || true; fi
    if [ -n "${KEEP:-}" ] && [ -f "$state.log" ]; then cp "$state.log" "$work/moto.log"; fi
    scripts/emulator.sh stop "$state"
    if [ -n "${KEEP:-}" ]; then echo "bench: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
moto_url="$(scripts/emulator.sh start "$state")"
lab_url=""
if [ -n "$lab_ok" ]; then
    "$bin/snaptastic-lab" --dir "$work/lab" --moto-url "$moto_url" --exit-with-parent \
        >"$work/lab.out" 2>"$work/lab.err" &
    lab_pid=$!
    for _ in $(seq 1 300); do grep -q '^READY' "$work/lab.out" 2>/dev/null && break; sleep 0.1; done
    if grep -q '^READY' "$work/lab.out"; then
        lab_url="$(sed -n 's/^export AWS_ENDPOINT_URL=//p' "$work/lab/lab.env")"
    else
        echo "bench: the lab did not start; running without it:" >&2
        cat "$work/lab.err" >&2
        kill -TERM "$lab_pid" 2>/dev/null || true
        lab_pid=""
    fi
fi

export BENCH_WORK="$work" BENCH_MOTO_URL="$moto_url" BENCH_MOTO_PID="$(cut -d' ' -f2 "$state")" \
    BENCH_MOTO_LOG="$state.log" BENCH_LAB_URL="$lab_url"
export BENCH_SNAPTASTIC="$bin/snaptastic" BENCH_AWS="$venv/bin/aws" BENCH_PEERS="${peers_ok[*]:-}"
export BENCH_PY27="$py27" BENCH_PY27_DIR="$py27_dir"
"$venv/bin/python" scripts/bench/files.py
