#!/usr/bin/env bash
# Sets up everything the tests need on a fresh Debian machine, then runs them all:
# formatting, lints and every crate's tests: a real Triton server, and the dashboard in
# headless Chromium, included. Steps that already succeeded are skipped quickly.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
log() { printf '\n==> %s\n' "$*" >&2; }

if [[ $(id -u) -eq 0 ]]; then SUDO=""; else SUDO="sudo"; fi
missing=()
for pkg in chromium chromium-driver; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if (( ${#missing[@]} )); then
    log "installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
rustup component list --installed | grep -q '^clippy' || rustup component add clippy rustfmt

log "real Triton server and perf_analyzer"
bash scripts/triton-tools.sh >/dev/null

log "real OpenAI-compatible server (llama-cpp-python)"
bash scripts/start-openai-server.sh --install-only

log "frontend (Trunk, release)"
bash scripts/build-frontend.sh

log "cargo fmt --check"
cargo fmt --all --check

log "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

log "cargo test"
cargo test --workspace
