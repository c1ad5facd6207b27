#!/usr/bin/env bash
# Builds the pinned Helm 3 CLI (hack/helm/VERSION) from its Go module with `go install`, for
# scripts/render-deploy.sh and the deploy tests.
#
# The binary lands in ${WEFT_HELM_CACHE:-$HOME/.cache/weft/helm}/<version>/bin/helm; a run that
# finds it there only checks it and returns at once. test/deploy/helm.ts looks in the same place
# (WEFT_HELM_BIN overrides). Prints the binary's path on its last line, so
# `helm="$(bash scripts/setup-helm.sh | tail -1)"` works. Safe to run twice at once (a lock).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "setup-helm: $*" >&2; }

version="$(tr -d '[:space:]' < hack/helm/VERSION)"
cache_root="${WEFT_HELM_CACHE:-$HOME/.cache/weft/helm}"
dir="$cache_root/$version"
helm="$dir/bin/helm"

if [[ -x "$helm" ]]; then
  log "helm $version is cached"
  echo "$helm"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  log "error: the Go toolchain is not on PATH; it is needed to build helm $version (go install helm.sh/helm/v3/cmd/helm@$version)"
  exit 1
fi

mkdir -p "$dir"
exec 9>"$dir/.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi
if [[ -x "$helm" ]]; then
  log "helm $version was built by a concurrent run"
  echo "$helm"
  exit 0
fi

# Helm's own go.mod decides every dependency; no toolchain download.
export GOTOOLCHAIN=local
start=$(date +%s)
log "$(go version); building helm $version (a few minutes on 2 cores the first time)..."
tmp="$dir/.gobin"
rm -rf "$tmp"
# Helm's Makefile stamps the version `helm version` prints and the Kubernetes version that
# `helm template` and `helm lint` assume (1.<client-go minor>; without it they assume 1.20).
mod_dir="$(go mod download -json "helm.sh/helm/v3@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
k8s_minor="$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$mod_dir/go.mod")"
if [[ -z "$k8s_minor" ]]; then
  log "error: could not read the k8s.io/client-go version from $mod_dir/go.mod"
  exit 1
fi
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
for pkg in pkg/lint/rules pkg/chartutil; do
  ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$k8s_minor"
done
( while sleep 30; do log "still building helm ($(($(date +%s) - start))s)..."; done ) &
ticker=$!
if ! GOBIN="$tmp" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$version"; then
  kill "$ticker" 2>/dev/null || true
  log "error: building helm $version failed"
  exit 1
fi
kill "$ticker" 2>/dev/null || true
mkdir -p "$dir/bin"
# Moved into place only when complete, so an interrupted build is never taken as cached.
mv -f "$tmp/helm" "$helm"
rm -rf "$tmp"
log "built in $(($(date +%s) - start))s: $("$helm" version --short)"
echo "$helm"
