#!/usr/bin/env bash
# Wheels for a bare GPU machine that has Python 3.12, CUDA torch, accelerate and
# transformers but not this project's training stack (no DeepSpeed, no pydantic),
# and no network. Run here (with network), then carry build/gpu-wheels there and
# run scripts/gpu_checks.sh, which installs them with --no-index --no-deps.
#
#   scripts/gpu_wheels.sh            # -> build/gpu-wheels/*.whl (about 22 MB)
#
# The versions are the ones .venv runs (and the tests pass with), so the GPU
# figures come from the same code paths. DeepSpeed is published as a source
# archive only: it is built here into a pure-Python wheel (no ops compiled; the
# ones it needs are JIT-built on first use there).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=build/gpu-wheels
PY=.venv/bin/python
rm -rf "$OUT" && mkdir -p "$OUT"

platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
  platforms+=(--platform "$tag")
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${platforms[@]}" -d "$OUT" \
  transformers==5.19.0 tokenizers==0.23.3 safetensors==0.8.0 accelerate==1.16.0 peft==0.21.2 \
  hjson==3.1.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
  typing-inspection==0.4.5 typing-extensions==4.16.0
DS_BUILD_OPS=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$OUT" deepspeed==0.19.8
ls -la "$OUT"
du -sh "$OUT"
