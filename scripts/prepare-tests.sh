#!/usr/bin/env bash
# Makes sure everything the test tiers need is on this machine, so `npm test` is enough on a fresh
# one: Debian packages (when running as root with apt-get), Go (named when missing), the pinned Kubernetes control plane
# (scripts/setup-kube.sh, with the node components of the cluster tier), the pinned Envoy (scripts/setup-envoy.sh) and the pinned helm
# (scripts/setup-helm.sh). Each is built or fetched once and cached under ~/.cache/weft; a run that
# finds everything there takes a few seconds. What cannot be installed is named with the fix, and
# the run fails, since the tiers that need it would fail anyway.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "prepare-tests: $*" >&2; }

# Commands the tiers use, and the Debian package that has each.
declare -A package_of=(
  [openssl]=openssl          # the test API server's serving certificates
  [ip]=iproute2              # the Envoy tier's network namespaces
  [iptables]=iptables        # capture rules inside them
  [iptables-restore]=iptables
  [unshare]=util-linux       # per-pod mount namespaces
  [setpriv]=util-linux       # sidecars as uid 1337
  [prometheus]=prometheus    # the TrafficMetrics Prometheus source's test scrapes real sidecars
  [chromium]=chromium        # the dashboard's browser test (driven by playwright-core)
  [containerd]=containerd    # the cluster tier's container runtime (with ctr to load images)
  [ctr]=containerd
  [runc]=runc
  [conntrack]=conntrack      # kube-proxy clears stale UDP entries with it
)
missing=()
for c in "${!package_of[@]}"; do
  command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done
pip_ok=false
for p in python3 python; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -m pip --version >/dev/null 2>&1; then pip_ok=true; break; fi
done
packages=()
for c in "${missing[@]}"; do packages+=("${package_of[$c]}"); done
# The cluster tier's pod network: the CNI bridge and host-local plugins (files, not commands).
if [[ ! -x /usr/lib/cni/bridge || ! -x /usr/lib/cni/host-local ]]; then
  missing+=(cni-plugins)
  packages+=(containernetworking-plugins)
fi
$pip_ok || packages+=(python3-pip)
if [[ ${#packages[@]} -gt 0 ]]; then
  mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)
  if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "installing Debian packages: ${packages[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
  else
    $pip_ok || missing+=(pip)
    log "missing: ${missing[*]}"
    log "install the Debian packages ${packages[*]} (as root: apt-get install ${packages[*]}), then run npm test again"
    exit 1
  fi
fi

# Go builds kube-apiserver, etcd, kubectl and helm (Debian's is too old for them), unless the
# binaries are given.
if { [[ -z "${WEFT_KUBE_BIN:-}" ]] || [[ -z "${WEFT_HELM_BIN:-}" ]]; } && ! command -v go >/dev/null 2>&1; then
  log "error: Go 1.24 or later is needed to build the Kubernetes binaries and helm the tests run; install it and run npm test again, or point WEFT_KUBE_BIN and WEFT_HELM_BIN at binaries you have"
  exit 1
fi

step() {
  local name="$1" script="$2" given="$3" t0
  if [[ -n "$given" ]]; then
    log "$name: using $given"
    return
  fi
  t0=$(date +%s)
  if ! bash "$script" >/dev/null; then
    log "error: $name could not be set up (see the lines above from $script)"
    exit 1
  fi
  log "$name ready ($(($(date +%s) - t0))s)"
}
step "Kubernetes (control plane and node)" scripts/setup-kube.sh "${WEFT_KUBE_BIN:-}"
step "Envoy" scripts/setup-envoy.sh "${WEFT_ENVOY_BIN:-}"
step "helm" scripts/setup-helm.sh "${WEFT_HELM_BIN:-}"
