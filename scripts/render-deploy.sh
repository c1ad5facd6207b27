#!/usr/bin/env bash
# Renders the Helm chart (deploy/helm/weft) with its default values into the plain manifests
# deploy/manifests/weft.yaml, which `kubectl apply` and `weft install` use. The only value set is
# namespace.create=true: plain manifests must create the weft-system namespace themselves, which a
# chart leaves to `helm install --create-namespace`.
#
#   scripts/render-deploy.sh           rewrite deploy/manifests/weft.yaml
#   scripts/render-deploy.sh --check   exit 1 if it is out of date
#
# Uses the pinned helm that scripts/setup-helm.sh builds (or WEFT_HELM_BIN).
set -euo pipefail
cd "$(dirname "$0")/.."

helm="${WEFT_HELM_BIN:-$(bash scripts/setup-helm.sh | tail -1)}"
out=deploy/manifests/weft.yaml
# Keep in step with test/deploy/helm.ts, which renders the chart the same way.
rendered="$(
  echo "# Weft: everything \`weft install\` installs (namespace weft-system). Rendered from the Helm chart"
  echo "# deploy/helm/weft with its default values by scripts/render-deploy.sh; do not edit."
  "$helm" template weft deploy/helm/weft --namespace weft-system --include-crds --set namespace.create=true
)"
if [[ "${1:-}" == "--check" ]]; then
  if [[ "$rendered" != "$(cat "$out")" ]]; then
    echo "render-deploy: $out is out of date; run scripts/render-deploy.sh" >&2
    exit 1
  fi
  echo "render-deploy: $out is up to date" >&2
  exit 0
fi
mkdir -p "$(dirname "$out")"
printf '%s\n' "$rendered" > "$out"
echo "render-deploy: wrote $out ($(grep -c '^kind:' "$out") objects)" >&2
