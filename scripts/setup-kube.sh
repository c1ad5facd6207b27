#!/usr/bin/env bash
# Builds the real Kubernetes the test tiers run: kube-apiserver and kubectl (the Kubernetes tier),
# and kubelet, kube-scheduler, kube-controller-manager and kube-proxy (the cluster tier, which runs
# pods) from the k8s.io/kubernetes module, etcd from the etcd server module (all pinned in
# hack/kube).
#
# The binaries land in ${WEFT_KUBE_CACHE:-$HOME/.cache/weft/kube}/<hash>/bin, where <hash> covers
# hack/kube's go.mod, go.sum and Go sources: a change of version gets a new folder, and a run whose
# binaries already exist only checks them and returns in about a second. test/kube/env.ts takes the
# newest build there, so tests find the binaries without being told (WEFT_KUBE_BIN overrides).
#
# Idempotent and safe to run twice at once (the build holds a lock). Prints the bin folder on its
# last line, so `bin="$(bash scripts/setup-kube.sh | tail -1)"` works.
set -euo pipefail
cd "$(dirname "$0")/../hack/kube"

log() { echo "setup-kube: $*" >&2; }

if ! command -v go >/dev/null 2>&1; then
  log "error: the Go toolchain is not on PATH; it is needed to build kube-apiserver, etcd, kubectl and the node components"
  exit 1
fi

# The cache key: sha256 over go.mod, go.sum, then every .go file
# in C-locale path order, first 16 hex digits.
hash="$( { cat go.mod go.sum; find . -name '*.go' -type f | LC_ALL=C sort | xargs cat; } | sha256sum | cut -c1-16)"
cache_root="${WEFT_KUBE_CACHE:-$HOME/.cache/weft/kube}"
bin="$cache_root/$hash/bin"
binaries=(kube-apiserver etcd kubectl kubelet kube-scheduler kube-controller-manager kube-proxy pause)

have_all() {
  local b
  for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
}

if have_all; then
  log "binaries for hack/kube $hash are cached"
  echo "$bin"
  exit 0
fi

mkdir -p "$bin"
# A second run started during a build waits here instead of building the same thing again.
exec 9>"$cache_root/$hash/.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi
if have_all; then
  log "binaries for hack/kube $hash were built by a concurrent run"
  echo "$bin"
  exit 0
fi

# The module's go.mod and go.sum are the whole truth: no toolchain download, no edits to go.mod.
export GOTOOLCHAIN=local
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=readonly"
log "$(go version); cache $bin"
log "downloading modules..."
start=$(date +%s)
go mod download
log "modules ready ($(($(date +%s) - start))s)"

# Version-stamp the Kubernetes binaries as their release build does (`kubectl version` and the
# API server's /version then say v1.34.x, not v0.0.0-master), from the version pinned in go.mod.
k8s_version="$(sed -n 's/^[[:space:]]*k8s.io\/kubernetes v\([0-9][0-9.]*\).*/\1/p' go.mod | head -1)"
stamp=""
if [[ -n "$k8s_version" ]]; then
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    stamp+=" -X $pkg.gitVersion=v$k8s_version -X $pkg.gitMajor=${k8s_version%%.*}"
    minor="${k8s_version#*.}"
    stamp+=" -X $pkg.gitMinor=${minor%%.*} -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
fi

build() {
  local name="$1" pkg="$2" t0
  t0=$(date +%s)
  log "building $name from $pkg (the first build takes many minutes on 2 cores)..."
  # A progress line every 30 s: the first build is long and otherwise silent.
  ( while sleep 30; do log "still building $name ($(($(date +%s) - t0))s)..."; done ) &
  local ticker=$!
  if ! go build -trimpath -ldflags="-s -w$stamp" -o "$bin/.$name.tmp" "$pkg"; then
    kill "$ticker" 2>/dev/null || true
    log "error: building $name failed"
    exit 1
  fi
  kill "$ticker" 2>/dev/null || true
  # Renamed into place only when complete, so an interrupted build is never taken as cached.
  mv -f "$bin/.$name.tmp" "$bin/$name"
  log "$name built in $(($(date +%s) - t0))s"
}
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build etcd ./cmd/etcd
build kubectl k8s.io/kubernetes/cmd/kubectl
# The node components of the cluster tier. Built one after the other: they share most packages, so
# after kube-apiserver each takes about a minute on 2 cores.
for cmd in kubelet kube-scheduler kube-controller-manager kube-proxy; do
  build "$cmd" "k8s.io/kubernetes/cmd/$cmd"
done
# The pods' sandbox process (hack/kube/cmd/pause), static so that it runs alone in its image.
CGO_ENABLED=0 build pause ./cmd/pause

log "done in $(($(date +%s) - start))s: $("$bin/kube-apiserver" --version), etcd $("$bin/etcd" --version | sed -n 's/^etcd Version: //p'), kubectl $("$bin/kubectl" version --client 2>/dev/null | sed -n 's/^Client Version: //p')"
echo "$bin"
