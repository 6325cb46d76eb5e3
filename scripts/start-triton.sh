#!/usr/bin/env bash
# Start the real tritonserver (installed by scripts/triton-tools.sh, which this runs first; a
# no-op when already installed) on free loopback ports, wait until it is ready, and print:
#
#   TRITON_GRPC=127.0.0.1:PORT      gRPC endpoint (what tokenscope talks to)
#   TRITON_HTTP=127.0.0.1:PORT      HTTP endpoint (/v2/health/ready etc.)
#   TRITON_METRICS=127.0.0.1:PORT   Prometheus metrics
#   TRITON_PID=PID
#   TRITON_LOG=FILE                 server log
#   TRITON_STATE_DIR=DIR            holds triton.pid, triton.env (these lines), triton.log
#
# Usage: scripts/start-triton.sh [MODEL_REPO] [-- extra tritonserver args]
#        eval "$(scripts/start-triton.sh server/tests/triton_models)"   # sets the vars above
#        scripts/stop-triton.sh [STATE_DIR]
# MODEL_REPO defaults to server/tests/triton_models. Only KEY=VALUE lines go to stdout.
#
# Env: TRITON_STATE_DIR (default ${TMPDIR:-/tmp}/tokenscope-triton; use one per concurrent
#      server), TRITON_GRPC_PORT / TRITON_HTTP_PORT / TRITON_METRICS_PORT (default: free ports
#      chosen by the OS), TRITON_READY_TIMEOUT (seconds, default 120), TOKENSCOPE_TOOLS.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
REPO="$ROOT/server/tests/triton_models"
if [ $# -gt 0 ] && [ "$1" != "--" ]; then REPO=$1; shift; fi
[ "${1:-}" = "--" ] && shift
[ -d "$REPO" ] || { echo "start-triton: model repository '$REPO' is not a directory" >&2; exit 2; }
REPO=$(cd "$REPO" && pwd)

STATE="${TRITON_STATE_DIR:-${TMPDIR:-/tmp}/tokenscope-triton}"
TIMEOUT="${TRITON_READY_TIMEOUT:-120}"
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
PIDFILE="$STATE/triton.pid" ENVFILE="$STATE/triton.env" LOG="$STATE/triton.log"

if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "start-triton: a server is already running from $STATE (pid $(cat "$PIDFILE"));" \
         "stop it with scripts/stop-triton.sh $STATE or set TRITON_STATE_DIR" >&2
    exit 1
fi
rm -f "$PIDFILE" "$ENVFILE"

BIN=$("$HERE/triton-tools.sh" | tail -n1)

PY="$BIN/triton-python"
# Ask the OS for free ports (bind to 0); all three are held at once so they differ.
read -r FREE1 FREE2 FREE3 < <("$PY" -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
for s in ss: s.close()')
GRPC_PORT="${TRITON_GRPC_PORT:-$FREE1}"
HTTP_PORT="${TRITON_HTTP_PORT:-$FREE2}"
METRICS_PORT="${TRITON_METRICS_PORT:-$FREE3}"

start_ns=$(date +%s%N)
# setsid: the server survives this shell and gets its own process group for stop-triton.sh.
setsid "$BIN/tritonserver" \
    --model-repository="$REPO" \
    --grpc-address=127.0.0.1 --grpc-port="$GRPC_PORT" \
    --http-address=127.0.0.1 --http-port="$HTTP_PORT" \
    --metrics-address=127.0.0.1 --metrics-port="$METRICS_PORT" \
    --allow-gpu-metrics=false \
    "$@" </dev/null >"$LOG" 2>&1 &
PID=$!
echo "$PID" >"$PIDFILE"

fail() {
    echo "start-triton: $1" >&2
    echo "---- error lines in $LOG ----" >&2
    grep -E '^E[0-9]{4} |error|Error' "$LOG" | grep -v 'Default is' | tail -n 20 >&2 || true
    echo "---- last 15 lines of $LOG ----" >&2
    tail -n 15 "$LOG" | cut -c1-300 >&2 || true
    kill -TERM "$PID" 2>/dev/null && sleep 1
    kill -KILL "$PID" 2>/dev/null || true
    rm -f "$PIDFILE"
    exit 1
}

"$PY" - "$HTTP_PORT" "$PID" "$TIMEOUT" <<'EOF' || fail "server not ready (see log below)"
import os, sys, time, urllib.request
port, pid, timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + timeout
url = f"http://127.0.0.1:{port}/v2/health/ready"
while time.monotonic() < deadline:
    try:  # gone, or a zombie (it is our shell's child, so nobody has reaped it yet)
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        state = "X"
    if state in ("Z", "X"):
        sys.exit("start-triton: tritonserver exited during start-up")
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.1)
sys.exit(f"start-triton: not ready after {timeout:g}s ({url})")
EOF
ready_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))

{
    echo "TRITON_GRPC=127.0.0.1:$GRPC_PORT"
    echo "TRITON_HTTP=127.0.0.1:$HTTP_PORT"
    echo "TRITON_METRICS=127.0.0.1:$METRICS_PORT"
    echo "TRITON_PID=$PID"
    echo "TRITON_LOG=$LOG"
    echo "TRITON_STATE_DIR=$STATE"
} >"$ENVFILE"
cat "$ENVFILE"
echo "start-triton: ready in ${ready_ms} ms (repository $REPO)" >&2
