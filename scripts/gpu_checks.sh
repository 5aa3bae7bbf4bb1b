#!/usr/bin/env bash
# The GPU measurements of docs/benchmarks.md, in one command for a lent GPU machine
# (one H100/H200, no network, Python 3.12 with CUDA torch but no DeepSpeed).
#
#   scripts/gpu_wheels.sh                       # here first: build/gpu-wheels
#   # then on the GPU machine, from the repo root, carrying build/gpu-wheels:
#   scripts/gpu_checks.sh                       # results under $OUT (or build/gpu-checks)
#
# It takes about 4 minutes after the machine starts:
#   1. versions of the GPU, driver and libraries (and whether vLLM is there);
#   2. scripts/bench_mfu.py: ~1B Llama (Llama-3.2-1B's shape, random init), full
#      fine-tune, bf16, through the recipe path's trainer and packed rows, with
#      DeepSpeed ZeRO-2 and without it, side by side.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/gpu-checks}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TORCH_EXTENSIONS_DIR=/tmp/torch_extensions
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site build/gpu-wheels/*.whl || { echo "wheel install failed"; exit 2; }
export PYTHONPATH=/tmp/site:$PWD

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 - <<'EOF'
import importlib, torch
print("python torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())
for name in ("transformers", "accelerate", "deepspeed", "pydantic", "flash_attn", "vllm"):
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as err:  # noqa: BLE001 - report and go on
        print(name, "missing:", type(err).__name__, err)
EOF
} 2>&1 | tee "$OUT/versions.txt"

status=0
for mode in zero2 plain; do
  flags=()
  [ "$mode" = plain ] && flags+=(--no-deepspeed)
  echo "== bench_mfu $mode"
  timeout 420 python3 scripts/bench_mfu.py "${flags[@]}" --json "$OUT/mfu-$mode.json" \
    > "$OUT/mfu-$mode.log" 2>&1 || status=1
  tail -n 30 "$OUT/mfu-$mode.log"
done
exit $status
