#!/usr/bin/env bash
# Starts a real OpenAI-compatible server for the tests: llama-cpp-python's server (llama.cpp
# underneath, built from its PyPI source release for the CPU) serving a tiny random-weight
# llama model, `tiny-llama`, that scripts/make_tiny_gguf.py writes.
#
# Usage: scripts/start-openai-server.sh [--install-only]
#   Installs what is missing, starts the server on a free loopback port, waits until it
#   answers GET /v1/models and prints, on stdout:
#     OPENAI_ADDR=127.0.0.1:PORT
#     OPENAI_PID=PID          (stop it with scripts/stop-openai-server.sh PID)
#   --install-only installs and writes the model, then exits.
#
# Requests in flight together wait their turn, as a serving deployment queues them (the
# server's default cuts a stream short when another request comes in).
#
# Installs into ${TOKENSCOPE_TOOLS:-$HOME/.cache/tokenscope}/openai: a venv with
# llama-cpp-python[server] and gguf, the model, and a stamp; when the stamp matches, a rerun
# skips the install at once. The first install compiles llama.cpp (about 6 minutes on 2 cores).
# Env: TOKENSCOPE_PYTHON (python3 to base the venv on), OPENAI_SERVER_FORCE=1 (reinstall).
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=0.3.36
GGUF_SPEC='gguf==0.17.1'
STAMP_FORMAT=1
MODEL_NAME=tiny-llama

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOLS="${TOKENSCOPE_TOOLS:-$HOME/.cache/tokenscope}"
DIR="$TOOLS/openai"
VENV="$DIR/venv"
MODEL="$DIR/$MODEL_NAME.gguf"
STAMP="$DIR/.stamp"
WANT="$STAMP_FORMAT llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION $GGUF_SPEC $(sha256sum "$HERE/make_tiny_gguf.py" | cut -c1-16)"

log() { echo "openai-server: $*" >&2; }
die() { echo "openai-server: error: $*" >&2; exit 1; }

install_only=0
case "${1:-}" in
    --install-only) install_only=1 ;;
    "") ;;
    *) die "unknown argument '$1' (usage: start-openai-server.sh [--install-only])" ;;
esac

install() {
    local python="${TOKENSCOPE_PYTHON:-python3}"
    command -v "$python" >/dev/null || die "$python not found; set TOKENSCOPE_PYTHON to a python3 (3.8 or newer)"
    command -v c++ >/dev/null || die "no C++ compiler (c++) to build llama.cpp; install g++"
    rm -rf "$DIR"
    mkdir -p "$DIR"
    log "creating the venv ($("$python" --version 2>&1))"
    "$python" -m venv "$VENV" >&2 || die "cannot create a venv with $python; install python3-venv"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip >&2
    log "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION (compiles llama.cpp for a generic x86-64 CPU)"
    # Only the libraries the server loads: no multimodal library, no machine-specific code, so
    # a cached build runs on any x86-64 machine; compiled with every core.
    CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_OPENMP=OFF" \
        CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir \
        "llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION" "$GGUF_SPEC" >&2 \
        || die "pip could not install llama-cpp-python; see its output above"
    log "writing the model $MODEL"
    "$VENV/bin/python" "$HERE/make_tiny_gguf.py" "$MODEL" >&2
    echo "$WANT" >"$STAMP"
}

if [[ "${OPENAI_SERVER_FORCE:-0}" == 1 || ! -f "$STAMP" || "$(cat "$STAMP")" != "$WANT" ]]; then
    install
fi
(( install_only )) && exit 0

port="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
server_log="$(mktemp -t tokenscope-openai-XXXXXX.log)"
setsid "$VENV/bin/python" -m llama_cpp.server --model "$MODEL" --model_alias "$MODEL_NAME" \
    --host 127.0.0.1 --port "$port" --n_ctx 4096 --n_threads 1 --verbose False \
    --interrupt_requests False \
    </dev/null >"$server_log" 2>&1 &
pid=$!

for _ in $(seq 1 600); do
    if ! kill -0 "$pid" 2>/dev/null; then
        cat "$server_log" >&2
        die "the server exited before it answered; its log is above"
    fi
    if "$VENV/bin/python" - "$port" <<'EOF' 2>/dev/null; then
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/v1/models", timeout=1).read()
EOF
        echo "OPENAI_ADDR=127.0.0.1:$port"
        echo "OPENAI_PID=$pid"
        log "serving $MODEL_NAME at http://127.0.0.1:$port/v1 (pid $pid, log $server_log)"
        exit 0
    fi
    sleep 0.1
done
kill "$pid" 2>/dev/null || true
cat "$server_log" >&2
die "the server did not answer GET /v1/models within 60 s; its log is above"
