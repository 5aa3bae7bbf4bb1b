# syntax=docker/dockerfile:1
# vLLM's own OpenAI server on GPU, as the engine behind the gateway. Build from the repository root:
#   docker build -f deploy/docker/vllm.Dockerfile -t clinical-llm-vllm:0.11.0 .
# Decision (docs/deployment.md): this image runs vLLM alone; the gateway image
# (gateway.Dockerfile) sits in front with `--backend openai`, so auth, limits, audit and metrics
# stay in the gateway, the engine stays private, and vLLM's pinned torch/transformers never
# have to agree with the project's. This layer only adds what the upstream image lacks: a
# non-root user, usage statistics off, offline model loading and a health check.
#
# Pin the base by digest where your registry allows: --build-arg VLLM_IMAGE=vllm/vllm-openai@sha256:...

ARG VLLM_IMAGE=vllm/vllm-openai:v0.11.0

FROM ${VLLM_IMAGE}
ENV VLLM_NO_USAGE_STATS=1 \
    VLLM_DO_NOT_TRACK=1 \
    DO_NOT_TRACK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    HOME=/home/vllm \
    HF_HOME=/var/cache/vllm/huggingface \
    VLLM_CACHE_ROOT=/var/cache/vllm
RUN groupadd --system --gid 10001 vllm \
    && useradd --system --uid 10001 --gid vllm --home-dir /home/vllm --create-home vllm \
    && mkdir -p /models /var/cache/vllm \
    && chown -R vllm:vllm /var/cache/vllm
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=600s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
# The model folder is mounted at /models/base; an API key for the engine comes from VLLM_API_KEY
# at run time (the gateway sends it through `backend_options.api_key_env`).
ENTRYPOINT ["vllm", "serve"]
CMD ["/models/base", "--served-model-name", "base", "--host", "0.0.0.0", "--port", "8000"]
