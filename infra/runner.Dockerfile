# syntax=docker/dockerfile:1.7
# GPU runner image: Node 22 LTS on the CUDA 12 + cuDNN 9 runtime (what onnxruntime-node 1.30's CUDA provider links against).
# Build from the repository root:  docker build -f infra/runner.Dockerfile -t vigil-runner .

ARG NODE_VERSION=22
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
# The repo's .npmrc skips onnxruntime's install script (for offline CPU dev boxes). The env var wins over
# .npmrc, so here the script runs and downloads the CUDA 12 execution provider at build time, never at run time.
ENV ONNXRUNTIME_NODE_INSTALL=cuda12
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && test -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so

FROM ${CUDA_IMAGE}
# Node from the official image (same glibc family, newer on Ubuntu 24.04), no package-manager download of node.
COPY --from=deps /usr/local/bin/node /usr/local/bin/node
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tini && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /app vigil
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY contract ./contract
COPY gpu-runner ./gpu-runner
COPY models ./models

ENV NODE_ENV=production \
    VIGIL_EXECUTION_PROVIDERS=cuda,cpu \
    VIGIL_MODELS_DIR=/app/models \
    VIGIL_SHUTDOWN_GRACE_SECONDS=60 \
    PORT=9464
USER vigil
EXPOSE 9464
# tini forwards SIGTERM so the runner drains (finishes or releases in-flight jobs) before the pod dies.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--import", "tsx", "gpu-runner/src/cli.ts", "serve"]
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||9464)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
