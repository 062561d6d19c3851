#!/usr/bin/env bash
# The AWS emulator (moto) for tests, the demo and benchmarks.
#
#   scripts/emulator.sh install        make sure the venv with moto[server] exists
#   scripts/emulator.sh start FILE     start moto_server on a free 127.0.0.1 port;
#                                      writes "URL PID" to FILE, returns when it answers
#   scripts/emulator.sh stop FILE      stop the server started with FILE
#
# The venv lives outside the clone so CI and later runs reuse it:
# $SNAPTASTIC_CACHE (default /var/tmp/snaptastic-cache)/venv.
set -euo pipefail

MOTO_VERSION="${MOTO_VERSION:-5.2.5}"
CACHE="${SNAPTASTIC_CACHE:-/var/tmp/snaptastic-cache}"
VENV="$CACHE/venv"

install() {
    if [ -x "$VENV/bin/moto_server" ] && "$VENV/bin/python" -c 'import moto, flask_cors' 2>/dev/null; then
        return 0
    fi
    echo "emulator: installing moto[server]==$MOTO_VERSION into $VENV" >&2
    mkdir -p "$CACHE"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
}

free_port() {
    "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start() {
    local state="$1"
    install
    local port url pid
    port="$(free_port)"
    url="http://127.0.0.1:$port"
    # No default AMIs: they add ~1,300 public snapshots to every listing.
    # MOTO_SERVER=keepalive (benchmarks only): the same moto app served by
    # waitress, which keeps connections alive (scripts/bench/).
    local server=("$VENV/bin/moto_server")
    if [ "${MOTO_SERVER:-stock}" = keepalive ]; then
        server=("$VENV/bin/python" "$(dirname "$0")/bench/moto_server_keepalive.py")
    fi
    MOTO_EC2_LOAD_DEFAULT_AMIS=false setsid "${server[@]}" -H 127.0.0.1 -p "$port" \
        >"$state.log" 2>&1 </dev/null &
    pid=$!
    for _ in $(seq 1 150); do
        if curl -fsS -o /dev/null "$url/moto-api/data.json" 2>/dev/null; then
            echo "$url $pid" >"$state"
            echo "$url"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "emulator: moto_server exited; its log:" >&2
            cat "$state.log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "emulator: moto_server did not answer on $url within 15s" >&2
    kill "$pid" 2>/dev/null || true
    return 1
}

stop() {
    local state="$1"
    [ -f "$state" ] || return 0
    local pid
    pid="$(cut -d' ' -f2 "$state")"
    kill "$pid" 2>/dev/null || true
    rm -f "$state" "$state.log"
}

case "${1:-}" in
    install) install ;;
    start) start "${2:?state file}" ;;
    stop) stop "${2:?state file}" ;;
    *) echo "usage: $0 install | start FILE | stop FILE" >&2; exit 2 ;;
esac
