#!/usr/bin/env bash
# Builds the frontend into dist/ with Trunk, installing the exact tools it needs first.
#
# Idempotent: each tool is installed only when missing or at the wrong version, so a
# second run costs only the (incremental) `trunk build`. Run from anywhere.
set -euo pipefail

TRUNK_VERSION="0.21.14"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

log() { printf '==> %s\n' "$*" >&2; }

# The Rust target Trunk compiles for.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "adding rust target wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
fi

# Trunk itself, pinned.
if [[ "$(trunk --version 2>/dev/null || true)" != "trunk $TRUNK_VERSION" ]]; then
    log "installing trunk $TRUNK_VERSION"
    cargo install --locked trunk --version "$TRUNK_VERSION"
fi

# wasm-bindgen-cli must match the wasm-bindgen crate in Cargo.lock exactly, or the
# generated JS glue and the wasm disagree (and Trunk refuses it in offline mode).
WASM_BINDGEN_VERSION="$(awk '
    $0 == "name = \"wasm-bindgen\"" { found = 1; next }
    found && /^version = / { gsub(/"/, "", $3); print $3; exit }
' Cargo.lock)"
if [[ -z "$WASM_BINDGEN_VERSION" ]]; then
    log "no wasm-bindgen in Cargo.lock; run 'cargo generate-lockfile' first"
    exit 1
fi
if [[ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]]; then
    log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
    cargo install --locked wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" \
        || cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

# wasm-split-cli splits the page into the module every page loads and its lazily loaded
# chunks (scripts/split-wasm.sh, Trunk's post-build hook), pinned like Trunk.
WASM_SPLIT_VERSION="0.2.4"
if ! cargo install --list | grep -qx "wasm_split_cli_support v$WASM_SPLIT_VERSION:" \
    || ! command -v wasm-split-cli >/dev/null; then
    log "installing wasm-split-cli $WASM_SPLIT_VERSION"
    cargo install --locked wasm_split_cli_support --version "$WASM_SPLIT_VERSION" --features build-binary
fi

# wasm-opt from npm's binaryen (a JS/wasm build, no native download), kept in the
# git-ignored .tools/ and put first on PATH. Its version must equal [tools] wasm_opt in
# Trunk.toml; Debian's binaryen 108 breaks wasm-bindgen's externref table.
BINARYEN_VERSION="$(sed -n 's/^wasm_opt = "version_\([0-9]*\)"$/\1/p' Trunk.toml)"
BINARYEN_DIR="$ROOT/.tools/binaryen"
export PATH="$BINARYEN_DIR/node_modules/.bin:$PATH"
if [[ "$(wasm-opt --version 2>/dev/null || true)" != "wasm-opt version $BINARYEN_VERSION "* ]]; then
    if ! command -v npm >/dev/null; then
        log "installing npm (for binaryen's wasm-opt)"
        if [[ $(id -u) -eq 0 ]]; then SUDO=""; else SUDO="sudo"; fi
        $SUDO apt-get update -qq && $SUDO apt-get install -y -qq nodejs npm
    fi
    log "installing wasm-opt (binaryen $BINARYEN_VERSION) into .tools/"
    npm install --silent --no-audit --no-fund --prefix "$BINARYEN_DIR" "binaryen@$BINARYEN_VERSION.0.0"
fi

# Trunk passes --offline on to cargo, so fetch crates while the network may be used.
cargo fetch --quiet

log "trunk build --release --offline"
start=$(date +%s)
trunk build --release --offline
log "built in $(( $(date +%s) - start )) s"

# What a browser may download, compressed by gzip -9: the module and loader every page
# loads, and each chunk. The dashboard serves Zopfli's gzip, a few per cent smaller, or
# Brotli (server/build.rs, measured by the dashboard benchmark).
total=0
for f in dist/*.wasm dist/*.js; do
    [[ -e "$f" ]] || continue
    size=$(gzip -9 -c "$f" | wc -c)
    total=$(( total + size ))
    printf '%8d B gzipped  %s\n' "$size" "$f"
done
printf '%8d B gzipped  wasm + js total\n' "$total"
