#!/usr/bin/env bash
# Trunk's post-build hook (Trunk.toml): splits the page's wasm into the module every page
# loads and the chunks that arrive when a part of the page is first shown
# (frontend/src/lazy.rs).
#
# Trunk has built the crate and written its own unsplit page into the staging folder. This
# splits the linker's output at the `#[wasm_split]` functions (wasm-split-cli), binds the main
# module (wasm-bindgen), shrinks every module (wasm-opt, release only), names each chunk and
# the chunks' loader after their contents, and puts them all in place of Trunk's files.
set -euo pipefail

: "${TRUNK_STAGING_DIR:?run by trunk build as its post_build hook}"
log() { printf '==> split-wasm: %s\n' "$*" >&2; }
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

want_opt="$(sed -n 's/^wasm_opt = "version_\([0-9]*\)"$/\1/p' "$root/Trunk.toml")"
if [[ "$TRUNK_PROFILE" == release && "$(wasm-opt --version 2>/dev/null || true)" != "wasm-opt version $want_opt "* ]]; then
    log "wasm-opt must be binaryen $want_opt (Trunk.toml); scripts/build-frontend.sh installs it"
    exit 1
fi

target_dir="${CARGO_TARGET_DIR:-$(cargo metadata --manifest-path "$root/Cargo.toml" --format-version 1 --no-deps --offline |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')}"
case "$TRUNK_PROFILE" in
    release) profile=wasm-release ;; # data-cargo-profile-release in frontend/index.html
    *) profile=debug ;;
esac
raw="$target_dir/wasm32-unknown-unknown/$profile/frontend.wasm"
[[ -f "$raw" ]] || { log "no $raw: did cargo build the frontend?"; exit 1; }

cd "$TRUNK_STAGING_DIR"
js=(frontend-*.js)
[[ ${#js[@]} -eq 1 && -f "${js[0]}" ]] || { log "expected one frontend-*.js from Trunk in $PWD"; exit 1; }
stem="${js[0]%.js}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
wasm-split-cli "$raw" "$work/split" --out-name "$stem"
wasm-bindgen --target web --no-typescript --keep-lld-exports \
    --out-dir "$work/bound" --out-name "$stem" "$work/split/$stem.wasm"

shrink() { # IN OUT
    if [[ "$TRUNK_PROFILE" == release ]]; then
        wasm-opt -Oz "$1" -o "$2" 2> >(grep -v '^warning: unknown name subsection' >&2)
    else
        cp "$1" "$2"
    fi
}
hash_of() { sha256sum "$1" | cut -c1-16; }

loader="$work/split/__wasm_split.js"
for chunk in "$work"/split/*.wasm; do
    name="$(basename "$chunk" .wasm)"
    [[ "$name" == "$stem" ]] && continue
    shrink "$chunk" "$work/$name.wasm"
    hashed="$name-$(hash_of "$work/$name.wasm").wasm"
    mv "$work/$name.wasm" "$hashed"
    sed -i "s|\"./$name.wasm\"|\"./$hashed\"|" "$loader"
    log "chunk $hashed: $(wc -c <"$hashed") B"
done
hashed_loader="__wasm_split-$(hash_of "$loader").js"
cp "$loader" "$hashed_loader"
# Only the JS import names the file; the wasm still imports from the module "./__wasm_split.js".
sed "/^import /s|\"./__wasm_split.js\"|\"./$hashed_loader\"|" "$work/bound/$stem.js" >"$stem.js"
shrink "$work/bound/${stem}_bg.wasm" "${stem}_bg.wasm"
log "main ${stem}_bg.wasm: $(wc -c <"${stem}_bg.wasm") B"

# Trunk wrote the unsplit files' digests into the page; give it these files' digests.
sri() { printf 'sha384-%s' "$(openssl dgst -sha384 -binary "$1" | base64 -w0)"; }
html=index.html
for f in "$stem.js" "${stem}_bg.wasm"; do
    sed -i "s|href=\"/$f\"\\([^>]*\\)integrity=\"[^\"]*\"|href=\"/$f\"\\1integrity=\"$(sri "$f")\"|" "$html"
done
