#!/usr/bin/env bash
# Weft on a local kind cluster: creates the cluster (unless it exists), builds Weft's image and
# the bookstore's echo image, loads both into the cluster, installs Weft from
# deploy/manifests/weft.yaml, waits until it serves the sidecar injector, then applies the
# bookstore example. Run from anywhere: deploy/kind/up.sh. Needs docker, kind and kubectl.
#
#   KIND_CLUSTER_NAME   cluster name (default weft)
#   KIND_NODE_IMAGE     node image (default: the one your kind release pins)
set -euo pipefail
cd "$(dirname "$0")/../.."

cluster="${KIND_CLUSTER_NAME:-weft}"
ctx="kind-$cluster"
version="$(sed -n 's/^  "version": "\(.*\)",$/\1/p' package.json)"
weft_image="ghcr.io/weft-mesh/weft:$version"
# The image examples/bookstore's Deployments name.
echo_image="$(sed -n 's/.*image: \(weft\/echo:[^,} ]*\).*/\1/p' examples/bookstore/10-workloads.yaml | head -1)"

step() { printf '\n== %s\n' "$*"; }
need() {
  command -v "$1" >/dev/null 2>&1 || { echo "up.sh: $1 is not on PATH: $2" >&2; exit 1; }
}
need docker "install Docker (https://docs.docker.com/get-docker/) and start it"
need kind "install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
need kubectl "install kubectl (https://kubernetes.io/docs/tasks/tools/)"
k() { kubectl --context "$ctx" "$@"; }

step "cluster $cluster"
if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  echo "exists; reusing it"
else
  kind create cluster --name "$cluster" --config deploy/kind/cluster.yaml \
    ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 120s
fi

step "images: $weft_image, $echo_image"
docker build -t "$weft_image" .
docker build -f e2e/cluster/Dockerfile -t "$echo_image" .
kind load docker-image --name "$cluster" "$weft_image" "$echo_image"

step "Weft (deploy/manifests/weft.yaml)"
# The CRDs first: the MeshConfig in the manifests needs its kind to be served.
k apply --server-side -f deploy/helm/weft/crds
k wait --for=condition=Established --timeout=60s crd -l app.kubernetes.io/part-of=weft
k apply --server-side -f deploy/manifests/weft.yaml
k -n weft-system rollout status deployment/weft --timeout=180s

# Pods created before Weft has patched its CA into the webhook are admitted without a sidecar
# (the webhook's failurePolicy is Ignore), so wait for the caBundle before the bookstore.
printf 'waiting for the sidecar injector'
for _ in $(seq 1 60); do
  if [[ -n "$(k get mutatingwebhookconfiguration weft-sidecar-injector -o jsonpath='{.webhooks[0].clientConfig.caBundle}')" ]]; then
    echo ' ready'
    break
  fi
  printf .
  sleep 2
done
if [[ -z "$(k get mutatingwebhookconfiguration weft-sidecar-injector -o jsonpath='{.webhooks[0].clientConfig.caBundle}')" ]]; then
  echo
  echo "up.sh: Weft has not patched its CA into the webhook after 2 minutes; see: kubectl --context $ctx -n weft-system logs deployment/weft" >&2
  exit 1
fi

step "bookstore example (examples/bookstore)"
k apply -f examples/bookstore
for ns in bookbuyer bookthief bookstore bookwarehouse; do
  k -n "$ns" rollout status deployment --timeout=180s
done

cat <<DONE

Weft and the bookstore are running on kind cluster $cluster (context $ctx).
  kubectl --context $ctx -n bookbuyer logs deployment/bookbuyer -f   # where bookbuyer's calls go
  kubectl --context $ctx -n bookthief logs deployment/bookthief -f   # denied: no TrafficTarget
  kubectl --context $ctx -n bookstore edit trafficsplit bookstore-split   # move the weights
  kind delete cluster --name $cluster                                # remove it all
DONE
