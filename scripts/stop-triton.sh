#!/usr/bin/env bash
# Stop a tritonserver started by scripts/start-triton.sh.
# Usage: scripts/stop-triton.sh [STATE_DIR]   (default: $TRITON_STATE_DIR or ${TMPDIR:-/tmp}/tokenscope-triton)
# Sends SIGTERM (Triton unloads models and exits), waits up to 30 s, then SIGKILLs the
# process group (the server and its python backend stubs).
set -euo pipefail
STATE="${1:-${TRITON_STATE_DIR:-${TMPDIR:-/tmp}/tokenscope-triton}}"
PIDFILE="$STATE/triton.pid"
if [ ! -f "$PIDFILE" ]; then
    echo "stop-triton: no $PIDFILE; nothing to stop" >&2
    exit 0
fi
PID=$(cat "$PIDFILE")
alive() { [ -d "/proc/$PID" ] && ! grep -q '^[^)]*) Z' "/proc/$PID/stat" 2>/dev/null; }
if alive; then
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 300); do alive || break; sleep 0.1; done
    if alive; then
        echo "stop-triton: pid $PID still running after 30 s; killing its process group" >&2
        kill -KILL -- "-$PID" 2>/dev/null || kill -KILL "$PID" 2>/dev/null || true
    fi
fi
# Stubs left behind in the server's process group (setsid made PID the group id).
kill -KILL -- "-$PID" 2>/dev/null || true
rm -f "$PIDFILE" "$STATE/triton.env"
echo "stop-triton: stopped pid $PID" >&2
