"""Tokens/s and first-token latency of a model and its compressed variants, side by side.

    .venv/bin/python scripts/bench_compress.py --base build/demo-smollm2/export \
        --variant build/compress-smollm2/int8 --variant build/compress-smollm2/int4 \
        --new-tokens 32 --rounds 3 --threads 1 --out build/compress-smollm2/speed.json

The timing half of ``clinical-llm compress report`` (:mod:`eval.compression.speed`: all
models loaded, rounds interleaved, medians), without the evaluation, for a machine too busy
to run the suite on every variant. Prints and writes one JSON object: per model its
tokens/s, first-token seconds, ratios to the base model and weights on disk.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from eval.compression.run import BASE, model_name
from eval.compression.speed import measure_speed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="Uncompressed model folder.")
    parser.add_argument("--variant", type=Path, action="append", required=True)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own)."
    )
    parser.add_argument("--out", type=Path, default=None, help="Write the JSON here too.")
    args = parser.parse_args()
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    models = {BASE: args.base, **{model_name(v): v for v in args.variant}}
    speeds = measure_speed(models, new_tokens=args.new_tokens, rounds=args.rounds)
    base = speeds[BASE]
    result = {
        "load_average": os.getloadavg(),
        "new_tokens": args.new_tokens,
        "threads": args.threads,
        "models": {
            name: {
                **speed.as_json(),
                "speedup": round(speed.tokens_per_s / base.tokens_per_s, 3),
                "first_token_ratio": round(speed.first_token_s / base.first_token_s, 3),
                "weights_bytes": sum(p.stat().st_size for p in models[name].glob("*.safetensors")),
            }
            for name, speed in speeds.items()
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
