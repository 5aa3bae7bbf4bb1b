#!/usr/bin/env bash
# Build the CPU gateway image (deploy/docker/gateway.Dockerfile, target gateway-cpu) and run it,
# on a machine that can reach PyPI and Debian's mirror but not Docker Hub:
#
#   MODEL_DIR=build/models/tiny-clinical TORCH_WHEEL=/path/torch-2.13.0+cpu-cp311-...whl \
#     scripts/check_gateway_image.sh
#
# TORCH_WHEEL=pip takes torch (the version in .venv) and its dependencies from the machine's
# package index with `pip download` (what CI does: .ci/run). Exit status: 0 when every check
# passes, 75 when no container engine can be started here (nothing was built), 1 otherwise.
#
# Needs root (dockerd, debootstrap), Debian's docker.io and debootstrap packages, and this
# project's .venv (key generation). What it does, each step because of what cannot be reached:
#   1. a Docker daemon: the one at DOCKER_HOST if it answers, else dockerd started here with its
#      own data root, socket and pid file under WORK, no bridge and no iptables (stopped at exit);
#   2. the base: no python:3.11.11-slim-bookworm without Docker Hub, so a Debian bookworm rootfs
#      from debootstrap (python3 3.11.2, pip) is imported as local/python:3.11.2-bookworm and
#      passed as PYTHON_IMAGE; the machine's CA bundle goes in so pip works behind a TLS-
#      inspecting egress proxy (the image under test is not for shipping);
#   3. torch's CPU build: download.pytorch.org may be unreachable, so TORCH_INDEX_URL points at a
#      local index (python -m http.server on 127.0.0.1) holding TORCH_WHEEL and its dependencies
#      from PyPI;
#   4. the legacy builder (DOCKER_BUILDKIT=0, host network): BuildKit would pull its Dockerfile
#      frontend from Docker Hub; the context is `git archive HEAD` of the package sources (what
#      gateway.Dockerfile.dockerignore lets in), so the committed tree is what is built;
#   5. the container: read-only root, --network host (no bridge), the model mounted read-only,
#      key hashes and the audit key in the environment; checks /health, /ready, 401 without a
#      key, /v1/models and one chat completion with it, the metrics, uid 10001, a read-only root.
# Exit 0 when every check passes. Everything it started (container, http server, dockerd) is
# stopped at exit; the images and WORK stay (a second run reuses the base and the layer cache).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$REPO/build/gateway-image}
MODEL_DIR=${MODEL_DIR:?set MODEL_DIR to a model folder (e.g. build/models/tiny-clinical)}
TORCH_WHEEL=${TORCH_WHEEL:-}
PORT=${PORT:-18080}
INDEX_PORT=${INDEX_PORT:-18427}
BASE=local/python:3.11.2-bookworm
IMAGE=clinical-llm-gateway:0.1.0
NAME=clinical-llm-gateway-check
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
MODEL_DIR=$(cd "$MODEL_DIR" && pwd)

started_dockerd=""
index_pid=""
cleanup() {
    docker rm -f "$NAME" >/dev/null 2>&1 || true
    if [ -n "$index_pid" ]; then kill "$index_pid" 2>/dev/null || true; fi
    if [ -n "$started_dockerd" ] && [ -f "$WORK/dockerd.pid" ]; then
        pid=$(cat "$WORK/dockerd.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        # dockerd leaves its network namespace mounted
        umount "$WORK/docker-exec/netns/default" 2>/dev/null || true
    fi
}
trap cleanup EXIT

step() { echo "== $*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

# 1. a daemon
if ! command -v dockerd >/dev/null 2>&1 && ! docker info >/dev/null 2>&1; then
    echo "NO ENGINE: neither a daemon at DOCKER_HOST nor dockerd (apt-get install docker.io)" >&2
    exit 75
fi
if ! docker info >/dev/null 2>&1; then
    step "starting dockerd (data root $WORK/docker-root)"
    mkdir -p "$WORK/docker-root" "$WORK/docker-exec"
    dockerd --data-root "$WORK/docker-root" --exec-root "$WORK/docker-exec" \
        -H "unix://$WORK/docker.sock" --pidfile "$WORK/dockerd.pid" \
        --iptables=false --bridge=none >"$WORK/dockerd.log" 2>&1 &
    started_dockerd=1
    export DOCKER_HOST="unix://$WORK/docker.sock"
    for _ in $(seq 1 30); do docker info >/dev/null 2>&1 && break; sleep 1; done
    if ! docker info >/dev/null 2>&1; then
        echo "NO ENGINE: dockerd did not start: $(tail -5 "$WORK/dockerd.log")" >&2
        exit 75
    fi
fi
docker info --format 'daemon {{.ServerVersion}}, storage {{.Driver}}'

# 2. the base
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    step "debootstrap bookworm -> $BASE"
    rm -rf "$WORK/rootfs"
    debootstrap --variant=minbase --include=python3,python3-pip,python-is-python3,ca-certificates \
        bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log"
    rm -f "$WORK"/rootfs/usr/lib/python3.*/EXTERNALLY-MANAGED  # the Dockerfile pip-installs
    cp /etc/ssl/certs/ca-certificates.crt "$WORK/rootfs/etc/ssl/certs/ca-certificates.crt"
    rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
    tar -C "$WORK/rootfs" -c . | docker import - "$BASE" >/dev/null
fi

# 3. torch's CPU build from a local index
torch_index=https://download.pytorch.org/whl/cpu
if [ -n "$TORCH_WHEEL" ]; then
    rm -rf "$WORK/wheels" "$WORK/index"
    mkdir -p "$WORK/wheels"
    pip_download=("$REPO/.venv/bin/python" -m pip download --quiet --only-binary :all:
        --python-version 3.11 --platform manylinux_2_28_x86_64 --dest "$WORK/wheels")
    if [ "$TORCH_WHEEL" = pip ]; then
        torch_version=$("$REPO/.venv/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')
        step "local torch index with torch==$torch_version from pip's index"
        "${pip_download[@]}" "torch==$torch_version"  # its dependencies come with it
    else
        step "local torch index with $(basename "$TORCH_WHEEL")"
        cp "$TORCH_WHEEL" "$WORK/wheels/"
        "${pip_download[@]}" filelock fsspec jinja2 networkx setuptools sympy typing-extensions
    fi
    for wheel in "$WORK"/wheels/*.whl; do  # one folder per project: a PEP 503 simple index
        project=$(basename "$wheel" | cut -d- -f1 | tr '[:upper:]_.' '[:lower:]--')
        mkdir -p "$WORK/index/$project"
        ln -f "$wheel" "$WORK/index/$project/"
    done
    (cd "$WORK/index" && exec python3 -m http.server "$INDEX_PORT" --bind 127.0.0.1 \
        >"$WORK/index.log" 2>&1) &
    index_pid=$!
    torch_index=http://127.0.0.1:$INDEX_PORT/
    sleep 1
fi

# 4. the build
step "docker build (legacy builder) -> $IMAGE"
rm -rf "$WORK/context" && mkdir -p "$WORK/context"
git -C "$REPO" archive HEAD pyproject.toml README.md clinical_llm llm eval serving deploy/docker |
    tar -x -C "$WORK/context"
started=$(date +%s)
DOCKER_BUILDKIT=0 docker build --network host -f "$WORK/context/deploy/docker/gateway.Dockerfile" \
    --build-arg "PYTHON_IMAGE=$BASE" --build-arg "TORCH_INDEX_URL=$torch_index" \
    -t "$IMAGE" "$WORK/context" >"$WORK/build.log" 2>&1 || fail "build: $(tail -20 "$WORK/build.log")"
echo "built in $(($(date +%s) - started)) s; $(docker image inspect "$IMAGE" --format '{{.Size}}') bytes"

# 5. run and probe
step "run $IMAGE on 127.0.0.1:$PORT"
key_file="$WORK/keys.jsonl"
rm -f "$key_file"
key=$("$REPO/.venv/bin/clinical-llm" serve keygen --id check --models clinical \
    --keys-file "$key_file" 2>/dev/null | grep -o 'sk-[A-Za-z0-9_-]*' | head -1)
keys_json=$(python3 -c 'import json, sys; print(json.dumps([json.loads(l) for l in sys.stdin]))' \
    <"$key_file")
# the container's user (10001) must be able to read the model
docker run -d --name "$NAME" --network host --read-only --tmpfs /tmp \
    -v "$MODEL_DIR:/models/base:ro" \
    -v "$REPO/deploy/compose/serve.yaml:/etc/clinical-llm/serve.yaml:ro" \
    -v clinical-llm-check-state:/var/lib/clinical-llm \
    -e CLINICAL_LLM_API_KEYS="$keys_json" -e CLINICAL_LLM_AUDIT_KEY="$(openssl rand -hex 32)" \
    "$IMAGE" --config /etc/clinical-llm/serve.yaml --host 127.0.0.1 --port "$PORT" >/dev/null
url=http://127.0.0.1:$PORT
for _ in $(seq 1 60); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/ready")" = 200 ] && break
    sleep 2
done
status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
[ "$(status "$url/ready")" = 200 ] || fail "not ready: $(docker logs "$NAME" 2>&1 | tail -5)"
[ "$(status "$url/health")" = 200 ] || fail "/health"
[ "$(status "$url/v1/models")" = 401 ] || fail "/v1/models without a key is not 401"
auth=(-H "Authorization: Bearer $key")
# whole answers first, then grep: `curl | grep -q` can end curl with SIGPIPE under pipefail
models=$(curl -sf "${auth[@]}" "$url/v1/models") || fail "/v1/models with the key"
grep -q '"id":"clinical"' <<<"$models" || fail "/v1/models: $models"
answer=$(curl -sf "${auth[@]}" -H 'Content-Type: application/json' "$url/v1/chat/completions" \
    -d '{"model": "clinical", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}') ||
    fail "chat completion"
grep -q '"completion_tokens":' <<<"$answer" || fail "chat completion: no usage"
metrics=$(curl -sf "$url/metrics") || fail "/metrics"
grep -q 'clinical_llm_request_duration_seconds_count{adapter="none"' <<<"$metrics" || fail "metrics"
[ "$(docker exec "$NAME" id -u)" = 10001 ] || fail "not user 10001"
if docker exec "$NAME" touch /usr/probe 2>/dev/null; then fail "root file system is writable"; fi
echo "OK: ready, /health, 401 without a key, /v1/models and a chat completion with it, metrics,"
echo "    user 10001, read-only root"
