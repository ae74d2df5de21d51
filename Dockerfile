# syntax=docker/dockerfile:1
# Targets: `cloud` (the default, last stage) and `agent`.
#   docker build -t fieldgate-cloud .
#   docker build --target agent -t fieldgate-agent .

# ---- build: compile TypeScript and the native SQLite addon ----------------------------------
FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
COPY shared/package.json shared/
COPY cloud/package.json cloud/
COPY agent/package.json agent/
COPY console/package.json console/
RUN npm ci --no-audit --no-fund
COPY shared/ shared/
COPY cloud/ cloud/
COPY agent/ agent/
COPY console/ console/
RUN npm run build && npm prune --omit=dev

# ---- runtime base: production dependencies and the shared protocol --------------------------
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules/ node_modules/
COPY --from=build /src/shared/package.json shared/
COPY --from=build /src/shared/dist/ shared/dist/

# ---- agent ---------------------------------------------------------------------------------
FROM runtime AS agent
COPY --from=build /src/agent/package.json agent/
COPY --from=build /src/agent/dist/ agent/dist/
RUN mkdir -p /var/lib/fieldgate /etc/fieldgate && chown node:node /var/lib/fieldgate
USER node
VOLUME ["/var/lib/fieldgate"]
ENTRYPOINT ["node", "/app/agent/dist/cli/main.js"]
CMD ["run", "--config", "/etc/fieldgate/agent.json"]

# ---- cloud (default) -----------------------------------------------------------------------
FROM runtime AS cloud
COPY --from=build /src/cloud/package.json cloud/
COPY --from=build /src/cloud/dist/ cloud/dist/
# The web console: built files only, served by the cloud under /.
COPY --from=build /src/console/package.json console/
COPY --from=build /src/console/dist/ console/dist/
RUN mkdir -p /data && chown node:node /data
ENV FIELDGATE_DATA_DIR=/data \
    FIELDGATE_HOST=0.0.0.0
USER node
VOLUME ["/data"]
EXPOSE 8443 8883
ENTRYPOINT ["node", "/app/cloud/dist/cli/main.js"]
CMD ["serve"]
