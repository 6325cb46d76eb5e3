#!/usr/bin/env bash
# Sets up and runs the dashboard: builds the browser app (installing Trunk, wasm-bindgen-cli
# and wasm-opt when missing), builds tokenscope with the app embedded, and serves it.
#
#   scripts/dashboard.sh                      # with a built-in simulated Triton
#   scripts/dashboard.sh --target http://triton-host:8001
#
# Arguments go to `tokenscope serve` (see `--help`). Steps that already succeeded are quick.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

bash scripts/build-frontend.sh
printf '==> %s\n' "building tokenscope (release)" >&2
cargo build --release --quiet --bin tokenscope
exec target/release/tokenscope serve "$@"
