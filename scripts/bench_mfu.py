"""Full fine-tune throughput and MFU of a ~1B Llama (random init) through the recipe path's trainer.

    # one GPU: bf16, DeepSpeed ZeRO-2 (recipes/deepspeed/zero2.json), Llama-3.2-1B's shape
    python scripts/bench_mfu.py --json build/bench_mfu/results.json
    # check the script on CPU: tiny shape, fp32, no DeepSpeed (it needs a launcher on CPU)
    .venv/bin/python scripts/bench_mfu.py --shape tiny --steps 4 --warmup 1 --no-deepspeed

The model is a ``LlamaForCausalLM`` built from ``LlamaConfig`` (no download):
``--shape 1b`` is Llama-3.2-1B's architecture (16 layers, d_model 2048, GQA
32/8 heads, SwiGLU 8192, vocab 128,256, tied embeddings; 1.24 B parameters).
The training step is the one ``clinical-llm train`` runs:
:class:`~llm.train.callbacks.RecipeTrainer` over rows packed by
:class:`~llm.train.packing.PackedCollator`, attention ``flash_attention_2``
when flash-attn is installed, else ``sdpa_varlen``; AdamW; the Trainer fills
the DeepSpeed JSON's ``"auto"`` values. The data are random token ids in
examples whose lengths are spread like clinical notes (log-normal around a
quarter of ``--seq-len``, as in ``bench_train.py``), packed best-fit into
rows of ``--seq-len``. Only the data layer is left out, so the script needs
torch, transformers and (for ZeRO-2) deepspeed, nothing else of the project's.

Reported: steady-state real tokens/s over the steps after ``--warmup``
(each step timed between device syncs), model FLOP/s and MFU = FLOP/s /
peak. FLOPs per step count what the model multiplies, forward and backward
(3x the forward): 2 FLOPs per multiply-add over every ``nn.Linear`` weight
(the layers and the output head) for each token, plus causal attention,
4 * d_model FLOPs per (query, key) pair per layer forward, over each packed
example's own l(l+1)/2 pairs. The peak is the GPU's dense bf16 figure
(``PEAK_TFLOPS``; ``--peak-tflops`` for another device).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from llm.models.tiny import SHAPES as TINY_SHAPES
from llm.net import free_port
from llm.train.attention import SDPA_VARLEN, register_varlen_sdpa
from llm.train.packing import PackedCollator, plan_packing

REPO = Path(__file__).resolve().parents[1]
# Dense bf16 tensor-core peak, TFLOP/s, by a substring of torch.cuda.get_device_name().
PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.0, "A10G": 125.0}

SHAPES: dict[str, dict[str, Any]] = {
    "1b": dict(  # meta-llama/Llama-3.2-1B's config.json
        vocab_size=128256,
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=64,
        max_position_embeddings=131072,
        rope_theta=500000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
    ),
    # the project's tiny shape (untied, as `model init` builds it): a quick CPU check
    "tiny": {**asdict(TINY_SHAPES["tiny"]), "tie_word_embeddings": False},
}


@dataclass
class StepTimes:
    """Per-step wall time and work, filled in by :class:`StepTimer`."""

    seconds: list[float] = field(default_factory=list)
    real_tokens: list[int] = field(default_factory=list)
    attention_pairs: list[int] = field(default_factory=list)


class RowDataset(torch.utils.data.Dataset[dict[str, Any]]):
    """Pre-packed rows (``input_ids``, ``labels``, ``seq_lens``) for the Trainer."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


def packed_rows(n_rows: int, seq_len: int, vocab: int, seed: int) -> list[dict[str, Any]]:
    """Random-token examples with note-like lengths, packed best-fit into ``n_rows`` rows."""
    rng = random.Random(seed)
    lengths: list[int] = []
    while sum(lengths) < n_rows * seq_len * 0.97:
        lengths.append(int(min(seq_len, max(16, rng.lognormvariate(math.log(seq_len / 4), 0.7)))))
    rows = []
    for plan in plan_packing(lengths, seq_len)[:n_rows]:
        seq_lens = [lengths[i] for i in plan]
        ids = [rng.randrange(vocab) for _ in range(sum(seq_lens))]
        rows.append({"input_ids": ids, "labels": ids, "seq_lens": seq_lens})
    return rows


def matmul_params(model: torch.nn.Module) -> int:
    """Weights that multiply every token: all ``nn.Linear`` weights (the tied head included)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--shape", choices=sorted(SHAPES), default="1b", help="model architecture")
    p.add_argument("--seq-len", type=int, default=2048, help="tokens per packed row")
    p.add_argument("--micro-batch", type=int, default=4, help="packed rows per step")
    p.add_argument("--steps", type=int, default=30, help="optimizer steps")
    p.add_argument("--warmup", type=int, default=5, help="first steps left out of the figures")
    p.add_argument("--deepspeed", type=Path, default=REPO / "recipes/deepspeed/zero2.json")
    p.add_argument("--no-deepspeed", action="store_true", help="plain Trainer (CPU check)")
    p.add_argument(
        "--gradient-checkpointing", action="store_true", help="recompute activations in backward"
    )
    p.add_argument("--peak-tflops", type=float, help="device peak (default: PEAK_TFLOPS by name)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "build/bench_mfu", help="Trainer folder")
    p.add_argument("--json", type=Path, help="also write the results here")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    from transformers import LlamaConfig, LlamaForCausalLM, TrainerCallback, TrainingArguments

    from llm.train.callbacks import RecipeTrainer, TokenCountingCollator

    cuda = torch.cuda.is_available()
    device_name = torch.cuda.get_device_name() if cuda else "cpu"
    peak = args.peak_tflops or next(
        (tf for key, tf in PEAK_TFLOPS.items() if key in device_name), None
    )
    use_ds = not args.no_deepspeed
    if use_ds:  # one rank started by hand: DeepSpeed reads these as torchrun would set them
        for key, value in (("MASTER_ADDR", "127.0.0.1"), ("RANK", "0"), ("LOCAL_RANK", "0")):
            os.environ.setdefault(key, value)
        os.environ.setdefault("WORLD_SIZE", "1")
        os.environ.setdefault("MASTER_PORT", str(free_port()))
    bf16 = cuda
    attn = "flash_attention_2" if cuda and importlib.util.find_spec("flash_attn") else SDPA_VARLEN
    register_varlen_sdpa()

    torch.manual_seed(args.seed)
    config = LlamaConfig(**SHAPES[args.shape], use_cache=False)
    model = LlamaForCausalLM(config)
    model.set_attn_implementation(attn)
    # fp32 weights either way: DeepSpeed's bf16 mode casts them and keeps fp32 master
    # copies; the plain Trainer runs bf16 autocast over them (each path's usual setup)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    total_params = sum(p.numel() for p in model.parameters())
    weights = matmul_params(model)

    rows = packed_rows(args.steps * args.micro_batch, args.seq_len, config.vocab_size, args.seed)
    if len(rows) < args.steps * args.micro_batch:
        raise SystemExit(f"only {len(rows)} packed rows for {args.steps} steps")
    times = StepTimes()
    for r in range(0, len(rows), args.micro_batch):
        step_rows = rows[r : r + args.micro_batch]
        lens = [n for row in step_rows for n in row["seq_lens"]]
        times.real_tokens.append(sum(lens))
        times.attention_pairs.append(sum(n * (n + 1) // 2 for n in lens))

    class StepTimer(TrainerCallback):
        started = 0.0

        def _sync(self) -> None:
            if cuda:
                torch.cuda.synchronize()

        def on_step_begin(self, *a: Any, **k: Any) -> None:
            self._sync()
            self.started = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            self._sync()
            times.seconds.append(time.perf_counter() - self.started)

    training_args = TrainingArguments(
        output_dir=str(args.out),
        max_steps=args.steps,
        per_device_train_batch_size=args.micro_batch,
        gradient_accumulation_steps=1,
        learning_rate=1e-5,
        lr_scheduler_type="constant",
        logging_steps=max(1, args.steps // 5),
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        bf16=bf16,
        use_cpu=not cuda,
        deepspeed=str(args.deepspeed) if use_ds else None,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        seed=args.seed,
        data_seed=args.seed,
        disable_tqdm=True,
    )
    collator = PackedCollator(
        max_length=args.seq_len,
        pad_token_id=0,
        flash_attn_kwargs=True,  # both read cu_seq_lens
    )
    collator.check_model(model)

    class InOrderTrainer(RecipeTrainer):
        """The step plan above assumes the Trainer takes the rows in order."""

        def _get_train_sampler(self, *a: Any, **k: Any) -> Any:
            return torch.utils.data.SequentialSampler(rows)

    trainer = InOrderTrainer(
        model=model,
        args=training_args,
        train_dataset=RowDataset(rows),
        data_collator=TokenCountingCollator(collator),
        callbacks=[StepTimer()],
    )
    trainer.train()
    if trainer.state.num_input_tokens_seen != sum(times.real_tokens):
        raise SystemExit(
            f"the Trainer saw {trainer.state.num_input_tokens_seen} real tokens, the step plan "
            f"{sum(times.real_tokens)}: the rows did not go in order"
        )

    engine = type(trainer.model_wrapped).__name__
    if use_ds and engine != "DeepSpeedEngine":
        raise SystemExit(f"asked for DeepSpeed, but the Trainer stepped a {engine}")
    timed = slice(args.warmup, None)
    seconds = sum(times.seconds[timed])
    if len(times.seconds) != args.steps or not seconds:
        raise SystemExit(f"timed {len(times.seconds)} of {args.steps} steps")
    tokens = sum(times.real_tokens[timed])
    pairs = sum(times.attention_pairs[timed])
    layers, d_model = config.num_hidden_layers, config.hidden_size
    flops = 3 * (2 * weights * tokens + 4 * d_model * layers * pairs)
    achieved = flops / seconds
    memory = torch.cuda.max_memory_allocated() / 2**30 if cuda else math.nan
    report = {
        "device": device_name,
        "shape": args.shape,
        "parameters": total_params,
        "matmul_parameters": weights,
        "precision": (
            ("bf16 weights, fp32 master (DeepSpeed)" if use_ds else "bf16 autocast")
            if bf16
            else "fp32"
        ),
        "attention": attn,
        "deepspeed": str(args.deepspeed) if use_ds else None,
        "engine": engine,
        "seq_len": args.seq_len,
        "micro_batch_rows": args.micro_batch,
        "gradient_checkpointing": args.gradient_checkpointing,
        "timed_steps": len(times.seconds[timed]),
        "seconds_per_step": seconds / len(times.seconds[timed]),
        "real_tokens_per_s": tokens / seconds,
        "padding": 1 - tokens / (len(times.seconds[timed]) * args.micro_batch * args.seq_len),
        "model_tflops": achieved / 1e12,
        "attention_share_of_flops": 4 * d_model * layers * pairs * 3 / flops,
        "peak_tflops": peak,
        "mfu": achieved / (peak * 1e12) if peak else None,
        "max_memory_gib": memory,
        "versions": {
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
            "deepspeed": __import__("deepspeed").__version__ if use_ds else None,
        },
        "step_seconds": times.seconds,
    }
    print(json.dumps({k: v for k, v in report.items() if k != "step_seconds"}, indent=2))
    mfu = f"{report['mfu']:.1%}" if report["mfu"] is not None else "n/a (no peak for this device)"
    print(
        f"{device_name}: {report['real_tokens_per_s']:,.0f} real tokens/s, "
        f"{report['model_tflops']:.1f} model TFLOP/s, MFU {mfu}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"results written to {args.json}")
    if torch.distributed.is_initialized():  # else the process aborts at exit (gloo threads)
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
