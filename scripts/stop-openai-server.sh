#!/usr/bin/env bash
# Stops a server that scripts/start-openai-server.sh started: scripts/stop-openai-server.sh PID
set -euo pipefail
pid="${1:?usage: stop-openai-server.sh PID}"
kill "$pid" 2>/dev/null || exit 0
for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || exit 0
    sleep 0.1
done
kill -9 "$pid" 2>/dev/null || true
