#!/usr/bin/env bash
# Opens the built page (dist/) in headless Chromium and checks that the WebAssembly app
# mounted and rendered the metric definitions. Run scripts/build-frontend.sh first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -f dist/index.html ]] || { echo "dist/index.html is missing: run scripts/build-frontend.sh" >&2; exit 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$port" --bind 127.0.0.1 --directory dist >/dev/null 2>&1 &
server=$!
profile=$(mktemp -d)
trap 'kill $server 2>/dev/null; rm -rf "$profile"' EXIT
for _ in $(seq 50); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
    sleep 0.1
done

dom=$(timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --user-data-dir="$profile" \
    --virtual-time-budget=5000 --dump-dom "http://127.0.0.1:$port/" 2>/dev/null)

failed=0
for text in "What the numbers mean" "Time to first token (TTFT)" "Token-to-token latency"; do
    if grep -qF "$text" <<<"$dom"; then
        echo "found: $text"
    else
        echo "missing from the rendered page: $text" >&2
        failed=1
    fi
done
if (( failed )); then
    echo "browser: 0 passed, 1 failed"
    exit 1
fi
echo "browser: 1 passed, 0 failed"
