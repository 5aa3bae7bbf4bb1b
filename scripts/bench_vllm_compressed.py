"""Tokens/s under vLLM on this CPU: the uncompressed model against its compressed-tensors folders.

    .venv/bin/python scripts/bench_vllm_compressed.py --base build/demo-smollm2/export \\
        --variant build/demo-smollm2/compress-llmc/w8a8 \\
        --variant build/demo-smollm2/compress-llmc/w4a16-g64 \\
        [--new-tokens 64] [--batch 1,8] [--rounds 3] [--json build/bench-vllm-compressed.json]

The variants are folders written by ``clinical-llm compress make --method llmcompressor-*``,
which vLLM runs with its CPU int8 (W8A8) and int4 (W4A16) kernels; through transformers they
are decompressed, so ``compress report``'s speed column says nothing about them. Each model
gets an engine of its own in its own process (``vllm.LLM`` as the ``vllm`` eval runner
builds it: eager, the project's CPU defaults, ``--dtype`` auto = bf16 on CPU), loaded once;
then the rounds interleave the models (base, A, B, ..., again) so load from other jobs slows
every model alike, and each model's median over rounds is reported. One fixed chat prompt
(``eval.compression.speed.PROMPT``) through each model's chat template, greedy,
``--new-tokens`` generated with end-of-sequence ignored, ``--batch`` copies of it per
request batch. ``tokens_per_s`` = new tokens of the batch / the batch's wall time (prefill
included), as in ``compress report``. Peak RSS of each engine's process. Prints a table with
ratios to the base model under vLLM.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import statistics
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any


def _worker(folder: str, dtype: str, max_model_len: int, conn: Connection) -> None:
    """Hold one engine; answer ``(batch, new_tokens)`` with the seconds one generation took."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from eval.compression.speed import PROMPT
    from eval.runners.vllm import VLLMRunner

    started = time.perf_counter()
    runner = VLLMRunner(folder, max_length=max_model_len, dtype=dtype)
    config = runner.llm.llm_engine.model_config
    tokenizer = runner.tokenizer
    ids = list(
        tokenizer.apply_chat_template(
            [{"role": "user", "content": PROMPT}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
        )["input_ids"]
    )
    prompt = TokensPrompt(prompt_token_ids=ids)
    conn.send(
        {
            "load_s": time.perf_counter() - started,
            "quantization": config.quantization,
            "dtype": str(config.dtype),
            "prompt_tokens": len(ids),
        }
    )
    while True:
        message = conn.recv()
        if message is None:
            break
        batch, new_tokens = message
        params = SamplingParams(
            temperature=0.0, max_tokens=new_tokens, min_tokens=new_tokens, ignore_eos=True
        )
        clock = time.perf_counter()
        outputs = runner.llm.generate([prompt] * batch, params, use_tqdm=False)
        seconds = time.perf_counter() - clock
        tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
        conn.send((seconds, tokens))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    conn.send(peak_kb * 1024)


def _ask(name: str, conn: Connection, message: Any) -> Any:
    """Send ``message`` to the worker of ``name`` and return its answer."""
    conn.send(message)
    try:
        return conn.recv()
    except EOFError:
        raise SystemExit(f"{name}: the engine's process died (its traceback is above)") from None


def _weights_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.suffix == ".safetensors")


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="Uncompressed model folder.")
    parser.add_argument(
        "--variant", type=Path, action="append", required=True, help="compressed-tensors folder."
    )
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batch", default="1,8", help="Batch sizes, comma-separated.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dtype", default="auto", help="Engine dtype (auto: bf16 on CPU).")
    parser.add_argument("--max-model-len", type=int, default=512)
    parser.add_argument("--json", type=Path, default=None, help="Write the figures here.")
    args = parser.parse_args()
    batches = [int(b) for b in args.batch.split(",")]

    context = mp.get_context("spawn")
    models = [("base", args.base), *[(v.name, v) for v in args.variant]]
    workers: dict[str, tuple[Any, Connection]] = {}
    info: dict[str, dict[str, Any]] = {}
    for name, folder in models:  # one engine at a time: loads do not compete
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_worker, args=(str(folder), args.dtype, args.max_model_len, theirs)
        )
        process.start()
        theirs.close()  # a worker that dies then ends our recv() with EOFError, not a hang
        try:
            info[name] = ours.recv()
        except EOFError:
            raise SystemExit(f"{name}: the engine's process died while loading {folder}") from None
        workers[name] = (process, ours)
        print(f"{name}: loaded in {info[name]['load_s']:.1f} s ({info[name]['quantization']})")
    seconds: dict[tuple[str, int], list[float]] = {}
    for batch in batches:
        for name, (_, conn) in workers.items():  # warm-up, and the token count check
            _, tokens = _ask(name, conn, (batch, args.new_tokens))
            if tokens != batch * args.new_tokens:
                raise SystemExit(
                    f"{name}: generated {tokens} tokens, not {batch * args.new_tokens}"
                )
        for _ in range(args.rounds):
            for name, (_, conn) in workers.items():
                took, _ = _ask(name, conn, (batch, args.new_tokens))
                seconds.setdefault((name, batch), []).append(took)
    peak: dict[str, int] = {}
    for name, (process, conn) in workers.items():
        peak[name] = _ask(name, conn, None)
        process.join(timeout=120)
    rows = []
    sizes = {name: _weights_bytes(folder) for name, folder in models}
    for batch in batches:
        base_speed = batch * args.new_tokens / statistics.median(seconds[("base", batch)])
        for name, _ in models:
            speed = batch * args.new_tokens / statistics.median(seconds[(name, batch)])
            rows.append(
                {
                    "model": name,
                    "batch": batch,
                    "tokens_per_s": round(speed, 2),
                    "speedup": round(speed / base_speed, 2),
                    "weights_mb": round(sizes[name] / 1e6, 1),
                    "size_ratio": round(sizes[name] / sizes["base"], 3),
                    "peak_rss_mb": round(peak[name] / 1e6),
                    "seconds": [round(s, 3) for s in seconds[(name, batch)]],
                    **info[name],
                }
            )
    result = {
        "base": str(args.base),
        "new_tokens": args.new_tokens,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "rows": rows,
    }
    print("| model | batch | tok/s | × base (vLLM) | weights MB | × size | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['model']} | {row['batch']} | {row['tokens_per_s']:.1f} | "
            f"{row['speedup']:.2f} | {row['weights_mb']:.1f} | {row['size_ratio']:.3f} | "
            f"{row['peak_rss_mb']} |"
        )
    print(f"load average (1, 5, 15 min) at the end: {result['load_average']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
