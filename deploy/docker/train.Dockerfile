# syntax=docker/dockerfile:1
# Training on GPU with DeepSpeed (`clinical-llm train`). Build from the repository root:
#   docker build -f deploy/docker/train.Dockerfile -t clinical-llm-train:0.1.0 .
# The base's CUDA build of torch is kept (a constraint stops pip replacing it); the devel
# image carries nvcc, which DeepSpeed needs to build its fused ops at first use.
# Mount the base model at /models, the data at /data and the output folder at /runs.

ARG PYTORCH_IMAGE=pytorch/pytorch:2.8.0-cuda12.8-cudnn9-devel
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY clinical_llm ./clinical_llm
COPY llm ./llm
COPY eval ./eval
COPY serving ./serving
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${PYTORCH_IMAGE}
ARG PROJECT_VERSION=0.1.0
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    DO_NOT_TRACK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    HOME=/home/app \
    TRITON_CACHE_DIR=/home/app/.cache/triton
COPY --from=wheel /wheels /wheels
RUN python -c "import torch; print(f'torch=={torch.__version__}')" > /etc/keep-torch.txt \
    && pip install --constraint /etc/keep-torch.txt --find-links /wheels \
        "clinical-llm[train]==${PROJECT_VERSION}"
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home app \
    && mkdir -p /models /data /runs \
    && chown app:app /runs
WORKDIR /runs
USER 10001:10001
# A training job has no endpoint to probe: its liveness is the launcher's (accelerate,
# Slurm, the Kubernetes Job), which sees the process exit.
HEALTHCHECK NONE
ENTRYPOINT ["clinical-llm"]
CMD ["train", "--help"]
