"""Tokens/s and size on disk: torch fp32 against its OpenVINO IR variants, side by side.

    .venv/bin/python scripts/bench_openvino.py --base build/smollm2 \\
        --variant build/ov/fp32 --variant build/ov/int8 --variant build/ov/int4 \\
        [--new-tokens 64] [--rounds 3] [--json build/bench-openvino.json]

The variants are folders written by ``clinical-llm compress make --method openvino-*``.
All models are loaded once, then the rounds interleave them (torch, IR A, IR B, ..., again),
so load from other jobs slows every model alike; each model's median over rounds is reported.
Batch 1, greedy, one fixed chat prompt (``eval.compression.speed.PROMPT``) through each
model's own chat template, ``--threads`` per model (default: torch's and OpenVINO's own),
``--new-tokens`` generated with end-of-sequence ignored (torch:
``min_new_tokens``; OpenVINO: ``ignore_eos``) so every model generates the same count.
``tokens_per_s`` = new tokens / time of the whole generation (prefill included), the same
definition as ``compress report``. Size: the weight files (``*.safetensors``; the IR's
``openvino_model.xml`` + ``.bin``). The torch model runs as ``compress report`` runs it
(``llm.models.loading.load_causal_lm``); OpenVINO through ``openvino_genai.LLMPipeline``, as
the ``openvino`` serving backend does. Prints a table with ratios to torch fp32.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any


def _torch_runner(folder: Path, new_tokens: int, threads: int | None) -> tuple[Any, int]:
    import torch

    if threads:
        torch.set_num_threads(threads)
    from eval.compression.speed import PROMPT
    from llm.models.loading import load_causal_lm

    model: Any
    tokenizer: Any
    model, tokenizer = load_causal_lm(folder)
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    ids: Any = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]

    def run() -> int:
        with torch.inference_mode():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
            )
        return int(out.shape[1] - ids.shape[1])

    return run, int(ids.shape[1])


def _openvino_runner(folder: Path, new_tokens: int, threads: int | None) -> tuple[Any, int]:
    import numpy as np
    import openvino
    import openvino_genai

    from eval.compression.speed import PROMPT

    properties = {"INFERENCE_NUM_THREADS": threads} if threads else {}
    pipeline = openvino_genai.LLMPipeline(str(folder), "CPU", **properties)
    tokenizer = pipeline.get_tokenizer()
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}], add_generation_prompt=True
    )
    ids = tokenizer.encode(text, add_special_tokens=False).input_ids.data
    inputs = openvino.Tensor(np.array(ids, dtype=np.int64))
    config = pipeline.get_generation_config()
    config.max_new_tokens = new_tokens
    config.ignore_eos = True
    config.do_sample = False
    config.apply_chat_template = False

    def run() -> int:
        result = pipeline.generate(inputs, config)
        return len(result.tokens[0])

    return run, int(ids.shape[1])


def _weights_bytes(folder: Path) -> int:
    return sum(
        p.stat().st_size
        for p in folder.iterdir()
        if p.suffix == ".safetensors" or p.name in ("openvino_model.xml", "openvino_model.bin")
    )


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="Uncompressed model folder.")
    parser.add_argument("--variant", type=Path, action="append", required=True, help="IR folder.")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="Threads of every model (default: each library's).",
    )
    parser.add_argument("--json", type=Path, default=None, help="Write the figures here.")
    args = parser.parse_args()

    runners: dict[str, Any] = {}
    sizes: dict[str, int] = {}
    load_s: dict[str, float] = {}
    for name, folder, make in [
        ("torch-fp32", args.base, _torch_runner),
        *[(v.name, v, _openvino_runner) for v in args.variant],
    ]:
        started = time.perf_counter()
        run, prompt_tokens = make(folder, args.new_tokens, args.threads)
        load_s[name] = time.perf_counter() - started
        got = run()  # warm-up, and the token count check
        if got != args.new_tokens:
            raise SystemExit(f"{name}: generated {got} tokens, not {args.new_tokens}")
        runners[name] = run
        sizes[name] = _weights_bytes(folder)
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, run in runners.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    base_speed = args.new_tokens / statistics.median(seconds["torch-fp32"])
    rows = []
    for name in runners:
        speed = args.new_tokens / statistics.median(seconds[name])
        rows.append(
            {
                "model": name,
                "tokens_per_s": round(speed, 2),
                "speedup": round(speed / base_speed, 2),
                "weights_mb": round(sizes[name] / 1e6, 1),
                "size_ratio": round(sizes[name] / sizes["torch-fp32"], 3),
                "load_s": round(load_s[name], 1),
                "seconds": [round(s, 3) for s in seconds[name]],
            }
        )
    result = {
        "base": str(args.base),
        "new_tokens": args.new_tokens,
        "rounds": args.rounds,
        "prompt_tokens": prompt_tokens,
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "load_average": os.getloadavg(),
        "rows": rows,
    }
    print("| model | tok/s | × torch fp32 | weights MB | × size |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['model']} | {row['tokens_per_s']:.1f} | {row['speedup']:.2f} | "
            f"{row['weights_mb']:.1f} | {row['size_ratio']:.3f} |"
        )
    print(f"load average (1, 5, 15 min) at the end: {result['load_average']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
