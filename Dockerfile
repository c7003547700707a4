# syntax=docker/dockerfile:1
# One image for both components: `podnet controller` (runs as non-root) and `podnet agent` (DaemonSet,
# hostNetwork, NET_ADMIN and NET_RAW), plus the standard CNI plugins the agent's init container installs on nodes.
# Multi-arch (docker buildx --platform linux/amd64,linux/arm64): the bundle is plain JavaScript and the plugins
# are cross-compiled, so only the last stage runs on the target platform (emulated, for the apt install and the
# compile-cache warm-up).
ARG NODE_VERSION=24
FROM --platform=$BUILDPLATFORM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY scripts/bundle.ts ./scripts/
# One self-contained file: the runtime image needs no node_modules at all.
RUN npx tsx scripts/bundle.ts /src/dist/podnet.mjs

# The CNI plugins the agent's init container installs on nodes, built static by the repo's own script: a
# plugin copied onto a node must not need that node's glibc.
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS cni
ARG TARGETOS=linux
ARG TARGETARCH
COPY hack/common.sh hack/versions.env hack/build-cni-plugins.sh /src/hack/
RUN cp -r "$(GOOS=$TARGETOS GOARCH=${TARGETARCH:-$(go env GOARCH)} PODNET_CACHE=/cache bash /src/hack/build-cni-plugins.sh)" /out

FROM node:${NODE_VERSION}-bookworm-slim
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="podnet" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
# iproute2 + nftables for the agent; iptables for hosts whose firewall is on iptables-legacy; procps for sysctl;
# kmod to load br_netfilter (init container); the CNI plugins are copied to nodes on demand.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 nftables iptables procps kmod \
 && rm -rf /var/lib/apt/lists/*
COPY --from=cni /out/ /opt/cni/bin-src/
WORKDIR /app
COPY --from=build /src/dist/podnet.mjs ./
# V8's compiled code for the bundle, made now for both users podnet runs as (agent: root, controller: 65532):
# without it every start parses 3.3 MB of JavaScript first. Node keys the cache by user and by V8 flags, so
# each is warmed with the flags the chart starts it with; it is only read, so a read-only root works.
# One glibc malloc arena instead of one per thread (Node's worker and V8's platform threads): −13 MB of the
# controller's peak at 5,000 Nodes and −11 MB of a running agent's resident memory, no CPU cost measured
# (src/localcluster/podnet-cli.ts gives the local cluster and the benchmarks the same).
ENV NODE_ENV=production NODE_COMPILE_CACHE=/app/compile-cache MALLOC_ARENA_MAX=2
RUN mkdir -p /app/compile-cache && chown 65532:65532 /app/compile-cache && node --max-semi-space-size=1 --optimize-for-size /app/podnet.mjs help 2>/dev/null
USER 65532:65532
RUN node --max-semi-space-size=2 /app/podnet.mjs help 2>/dev/null
ENTRYPOINT ["node", "/app/podnet.mjs"]
