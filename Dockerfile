# syntax=docker/dockerfile:1
# etcd-ts image: the member server (default) and the operator (target "operator").
#   docker build -t etcd-ts .                      # member: node /app/dist/node/src/main.js
#   docker build --target operator -t etcd-ts-operator .
# The Kubernetes test bed runs exactly these commands as local processes (no Docker here);
# `node test/run.mjs dockerfile` checks this file with BuildKit's own parser and linter.

# Node 24 LTS, pinned to an exact release. Bump together with the engines field and CI.
ARG NODE_IMAGE=node:24.21.0-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# Install scripts run explicitly (npm rebuild) so a registry change cannot add one silently.
RUN npm ci --ignore-scripts && npm rebuild
COPY tsconfig.json buf.gen.yaml ./
COPY node ./node
COPY operator ./operator
COPY test ./test
RUN npm run build && npm prune --omit=dev

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    ETCD_DATA_DIR=/var/lib/etcd-ts/data
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/node ./dist/node
COPY --from=build /src/dist/operator ./dist/operator
RUN mkdir -p /var/lib/etcd-ts && chown 1000:1000 /var/lib/etcd-ts
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 1000:1000
VOLUME ["/var/lib/etcd-ts"]

FROM runtime AS operator
EXPOSE 8080
CMD ["node", "/app/dist/operator/src/main.js"]

# Last stage = default target: the etcd-ts member, the same as `npm start`.
FROM runtime AS member
EXPOSE 2379 2380
CMD ["node", "/app/dist/node/src/main.js"]
