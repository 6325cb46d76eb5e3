#!/usr/bin/env bash
# Install a real NVIDIA Triton Inference Server (from the nvidia-pytriton wheel) and the real
# perf_analyzer (from the tritonclient wheel) for CPU-only use, without Docker.
#
# Usage: scripts/triton-tools.sh            # prints the bin dir on the last line of stdout
#   PATH="$(scripts/triton-tools.sh | tail -n1):$PATH"
#
# Installs into ${TOKENSCOPE_TOOLS:-$HOME/.cache/tokenscope}:
#   venv/                 python venv with nvidia-pytriton, tritonclient, CUDA runtime, numpy,
#                         tokenizers
#   backends/python/      Triton python backend + the stub matching the venv's python minor
#   bin/tritonserver      wrapper: sets PATH/LD_LIBRARY_PATH, adds --backend-directory
#   bin/perf_analyzer     wrapper: puts libcudart.so.12 on LD_LIBRARY_PATH
#   bin/triton-python     the venv's python (tritonclient importable)
#   .triton-tools-stamp   marker; when it matches, a rerun skips pip and finishes at once
#
# Env: TOKENSCOPE_TOOLS (install dir), TOKENSCOPE_PYTHON (python3 to base the venv on; default
#      python3, falls back to /usr/bin/python3 if the first has no shared libpython),
#      TRITON_TOOLS_FORCE=1 (reinstall even if the marker matches).
# Needs: Linux x86_64, glibc >= 2.35 (Debian 12's 2.36 works; tritonclient >= 2.52 would need
#        2.38, hence the 2.51.0 pin), python3 3.8-3.13 with a shared libpython, and root/sudo
#        only when apt must install libb64-0d, libpython3.X or python3.X-venv.
set -euo pipefail

PYTRITON_VERSION=0.7.0
TRITONCLIENT_VERSION=2.51.0
CUDA_RT_SPEC='nvidia-cuda-runtime-cu12==12.9.79'
NUMPY_SPEC='numpy<2'
# Hugging Face tokenizers for the test models that count tokens as a real server does; without
# its dependencies, which only fetch tokenizers from the Hub.
TOKENIZERS_SPEC='tokenizers==0.22.1'
STAMP_FORMAT=4

TOOLS="${TOKENSCOPE_TOOLS:-$HOME/.cache/tokenscope}"
VENV="$TOOLS/venv"
BIN="$TOOLS/bin"
BACKENDS="$TOOLS/backends"
STAMP="$TOOLS/.triton-tools-stamp"

log() { echo "triton-tools: $*" >&2; }
die() { echo "triton-tools: error: $*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root to run: $*"; fi
}

APT_UPDATED=0
apt_install() {  # apt_install PKG... : install, running apt-get update only if needed
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* yourself"
    log "apt-get install $*"
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2; then
        [ "$APT_UPDATED" = 1 ] && die "apt-get install $* failed"
        log "apt-get update"
        as_root apt-get update >&2
        APT_UPDATED=1
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2
    fi
}

have_lib() { ldconfig -p 2>/dev/null | grep -q "$1 " || [ -e "/usr/lib/x86_64-linux-gnu/$1" ] || [ -e "/lib/x86_64-linux-gnu/$1" ]; }

# Echo "EXE VERSION LIBPYTHON" for a python command, LIBPYTHON empty when it has no usable
# shared libpython. EXE is the real interpreter (pyenv shims resolved).
py_probe() {
    "$1" - <<'EOF' 2>/dev/null
import os, sys, sysconfig
v = sysconfig.get_config_var
lib = ""
if v("Py_ENABLE_SHARED"):
    for d in (v("LIBDIR"), os.path.join(v("LIBDIR") or "", v("MULTIARCH") or "")):
        for n in (v("INSTSONAME"), v("LDLIBRARY")):
            if d and n and os.path.isfile(os.path.join(d, n)):
                lib = os.path.realpath(os.path.join(d, n)); break
        if lib: break
print(os.path.realpath(sys.executable), "%d.%d.%d" % sys.version_info[:3], lib)
EOF
}

stamp_text() {  # what the marker must say for the current install to count as complete
    echo "format=$STAMP_FORMAT pytriton=$PYTRITON_VERSION tritonclient=$TRITONCLIENT_VERSION cudart=$CUDA_RT_SPEC $TOKENIZERS_SPEC python=$1"
}

# ---------- fast path: everything present and the marker matches ----------
if [ "${TRITON_TOOLS_FORCE:-0}" != 1 ] && [ -f "$STAMP" ] && [ -x "$BIN/tritonserver" ] \
   && [ -x "$BIN/perf_analyzer" ] && [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/perf_analyzer" ] \
   && [ -x "$BACKENDS/python/triton_python_backend_stub" ] && have_lib libb64.so.0d; then
    base=$(sed -n 's/.* python=//p' "$STAMP")
    if [ -n "$base" ] && [ -x "${base%%:*}" ] && [ "$(cat "$STAMP")" = "$(stamp_text "$base")" ]; then
        echo "$BIN"
        exit 0
    fi
fi

# ---------- pick the base python ----------
case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) ;;
    *) die "the Triton wheels are Linux x86_64 only (this is $(uname -s)-$(uname -m))" ;;
esac

cands=("${TOKENSCOPE_PYTHON:-python3}")
[ -z "${TOKENSCOPE_PYTHON:-}" ] && [ -x /usr/bin/python3 ] && cands+=(/usr/bin/python3)
PY_EXE="" PY_VER="" PY_LIB=""
for c in "${cands[@]}"; do
    command -v "$c" >/dev/null 2>&1 || continue
    exe="" ver="" lib=""
    read -r exe ver lib <<<"$(py_probe "$c")" || true
    [ -n "${exe:-}" ] || continue
    if [ -z "${lib:-}" ] && [ "$exe" = "$(readlink -f /usr/bin/python3 2>/dev/null)" ]; then
        # Debian/Ubuntu python: the shared libpython is the separate libpython3.X package.
        apt_install "libpython${ver%.*}"
        read -r exe ver lib <<<"$(py_probe "$c")" || true
    fi
    if [ -n "${lib:-}" ]; then PY_EXE=$exe PY_VER=$ver PY_LIB=$lib; break; fi
    log "$c ($exe $ver) has no shared libpython; trying the next python"
done
[ -n "$PY_EXE" ] || die "no python3 with a shared libpython found (set TOKENSCOPE_PYTHON to one built with --enable-shared)"
PY_MINOR=${PY_VER%.*}
log "base python: $PY_EXE ($PY_VER), libpython: $PY_LIB"

# ---------- libb64 for perf_analyzer ----------
have_lib libb64.so.0d || apt_install libb64-0d

# ---------- venv ----------
mkdir -p "$TOOLS" "$BIN" "$BACKENDS"
if [ -x "$VENV/bin/python" ]; then
    vver=$("$VENV/bin/python" -c 'import sys;print("%d.%d.%d"%sys.version_info[:3])' 2>/dev/null || true)
    if [ "$vver" != "$PY_VER" ]; then
        log "venv python is '$vver', base is $PY_VER: recreating the venv"
        rm -rf "$VENV"
    fi
fi
if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv $VENV"
    if ! "$PY_EXE" -m venv "$VENV" >&2; then
        rm -rf "$VENV"
        [ "$PY_EXE" = "$(readlink -f /usr/bin/python3 2>/dev/null)" ] || die "python -m venv failed"
        apt_install "python${PY_MINOR}-venv"
        "$PY_EXE" -m venv "$VENV" >&2
    fi
fi
log "pip install (nvidia-pytriton $PYTRITON_VERSION, tritonclient $TRITONCLIENT_VERSION)"
"$VENV/bin/python" -m pip install --disable-pip-version-check -q \
    "nvidia-pytriton==$PYTRITON_VERSION" "tritonclient[grpc,http]==$TRITONCLIENT_VERSION" \
    "$CUDA_RT_SPEC" "$NUMPY_SPEC" >&2
"$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-deps "$TOKENIZERS_SPEC" >&2

# ---------- locate the payloads ----------
SITE=$("$VENV/bin/python" -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])')
SP="$SITE/pytriton/tritonserver"
PT_LIBS="$SITE/nvidia_pytriton.libs"
CUDART_DIR="$SITE/nvidia/cuda_runtime/lib"
STUB="$SP/python_backend_stubs/$PY_MINOR/triton_python_backend_stub"
[ -x "$SP/bin/tritonserver" ] || die "tritonserver binary missing at $SP/bin"
[ -f "$STUB" ] || die "no python backend stub for python $PY_MINOR (have: $(ls "$SP/python_backend_stubs" | tr '\n' ' '))"
[ -x "$VENV/bin/perf_analyzer" ] || die "perf_analyzer missing from tritonclient $TRITONCLIENT_VERSION"
[ -e "$CUDART_DIR/libcudart.so.12" ] || die "libcudart.so.12 missing in $CUDART_DIR"

# ---------- python backend dir ----------
rm -rf "$BACKENDS/python.tmp"
cp -r "$SP/backends/python" "$BACKENDS/python.tmp"
cp "$STUB" "$BACKENDS/python.tmp/triton_python_backend_stub"
chmod +x "$BACKENDS/python.tmp/triton_python_backend_stub"
rm -rf "$BACKENDS/python"
mv "$BACKENDS/python.tmp" "$BACKENDS/python"

# The stub embeds libpython3.X; it must get the one that belongs to the venv's stdlib
# (same patch release), so its directory goes first on LD_LIBRARY_PATH, unless it is a
# default system dir (then the loader finds it anyway and we keep system dirs off the path).
PY_LIBDIR=$(dirname "$PY_LIB")
case "$PY_LIBDIR" in
    /usr/lib/x86_64-linux-gnu|/lib/x86_64-linux-gnu|/usr/lib|/lib|/usr/lib64|/lib64) LDP="$PT_LIBS" ;;
    *) LDP="$PY_LIBDIR:$PT_LIBS" ;;
esac
got=$(LD_LIBRARY_PATH="$LDP" ldd "$BACKENDS/python/triton_python_backend_stub" | awk '/libpython/ {print $3}')
[ -n "$got" ] && [ "$(readlink -f "$got")" = "$PY_LIB" ] \
    || die "python stub would load '${got:-nothing}' instead of $PY_LIB"

# ---------- wrappers ----------
write_exe() { cat >"$1.tmp"; chmod +x "$1.tmp"; mv "$1.tmp" "$1"; }

write_exe "$BIN/tritonserver" <<EOF
#!/usr/bin/env bash
# Generated by tokenscope scripts/triton-tools.sh: the real tritonserver from nvidia-pytriton $PYTRITON_VERSION.
export PATH="$VENV/bin:\$PATH"   # the python stub finds numpy via the venv's python on PATH
export LD_LIBRARY_PATH="$LDP\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
for a in "\$@"; do
    case "\$a" in --backend-directory|--backend-directory=*) exec "$SP/bin/tritonserver" "\$@" ;; esac
done
exec "$SP/bin/tritonserver" --backend-directory="$BACKENDS" "\$@"
EOF

write_exe "$BIN/perf_analyzer" <<EOF
#!/usr/bin/env bash
# Generated by tokenscope scripts/triton-tools.sh: the real perf_analyzer from tritonclient $TRITONCLIENT_VERSION.
export LD_LIBRARY_PATH="$CUDART_DIR\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
exec "$VENV/bin/perf_analyzer" "\$@"
EOF

write_exe "$BIN/triton-python" <<EOF
#!/usr/bin/env bash
# Generated by tokenscope scripts/triton-tools.sh: python with tritonclient $TRITONCLIENT_VERSION.
exec "$VENV/bin/python" "\$@"
EOF

# ---------- smoke checks ----------
"$BIN/perf_analyzer" --version >/dev/null 2>&1 || "$BIN/perf_analyzer" --help >/dev/null 2>&1 \
    || die "perf_analyzer does not run: $(LD_LIBRARY_PATH="$CUDART_DIR" ldd "$VENV/bin/perf_analyzer" | grep 'not found' || true)"
help=$("$BIN/tritonserver" --help 2>&1 || true)   # --help exits 1
grep -q 'Usage: tritonserver' <<<"$help" \
    || die "tritonserver does not run: $(LD_LIBRARY_PATH="$LDP" ldd "$SP/bin/tritonserver" | grep 'not found' || true)"

stamp_text "$PY_EXE" >"$STAMP"
log "installed into $TOOLS"
echo "$BIN"
