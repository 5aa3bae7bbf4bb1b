# syntax=docker/dockerfile:1
# The gateway (`clinical-llm serve`) on CPU, transformers backend. Build from the repository root:
#   docker build -f deploy/docker/gateway.Dockerfile -t clinical-llm-gateway:0.1.0 .
# Run (docs/deployment.md): the model folder is mounted read-only at /models/base, serve.yaml at
# /etc/clinical-llm/serve.yaml; API key hashes (CLINICAL_LLM_API_KEYS or a mounted keys file)
# and the audit key (CLINICAL_LLM_AUDIT_KEY) are given at run time, never built in.
#
# Targets: `gateway-cpu` (the default, last stage). Another backend's image is one more stage
# FROM gateway-base that installs its extra, e.g. an OpenVINO variant:
#   FROM gateway-base AS gateway-openvino
#   RUN pip install --find-links /wheels "clinical-llm[serve,train,openvino]==${PROJECT_VERSION}"
# built with `--target gateway-openvino`.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY clinical_llm ./clinical_llm
COPY llm ./llm
COPY eval ./eval
COPY serving ./serving
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS gateway-base
ARG PROJECT_VERSION=0.1.0
# the CPU build of torch (the default index serves a CUDA build of several GB)
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    DO_NOT_TRACK=1 \
    HOME=/home/app \
    XDG_STATE_HOME=/var/lib/clinical-llm/state \
    XDG_CONFIG_HOME=/var/lib/clinical-llm/config \
    XDG_CACHE_HOME=/var/lib/clinical-llm/cache
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home app \
    && mkdir -p /models /etc/clinical-llm /var/lib/clinical-llm/state /var/lib/clinical-llm/config \
        /var/lib/clinical-llm/cache \
    && chown -R app:app /var/lib/clinical-llm \
    && chmod 0700 /var/lib/clinical-llm/state /var/lib/clinical-llm/config
# torch before the project's wheel: a source change then leaves this large layer cached
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
COPY --from=wheel /wheels /wheels
WORKDIR /home/app
EXPOSE 8000
# /health answers while the process lives; readiness (/ready) is the orchestrator's probe
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
ENTRYPOINT ["clinical-llm", "serve"]
CMD ["--config", "/etc/clinical-llm/serve.yaml", "--host", "0.0.0.0", "--port", "8000"]

FROM gateway-base AS gateway-cpu
ARG PROJECT_VERSION=0.1.0
# `train` carries transformers, peft and safetensors, which the transformers backend loads
RUN pip install --find-links /wheels "clinical-llm[serve,train]==${PROJECT_VERSION}"
USER 10001:10001
