"""Training throughput: real (non-pad) tokens/s of packed vs padded batches.

    .venv/bin/python scripts/bench_train.py                      # synthetic chats
    .venv/bin/python scripts/bench_train.py --dataset-dir out/datasets --task discharge_summary \\
        --tokenizer out/model/tokenizer

Runs a forward + backward + AdamW step loop on a tiny randomly initialised
Llama over the same tokenized examples, once as right-padded batches
(:class:`~llm.train.packing.PaddedCollator`, ``sdpa`` with a padding mask) and
once as packed rows (:class:`~llm.train.packing.PackedCollator`, padding-free,
``sdpa_varlen`` by default: ``--packed-attn sdpa`` times the block-diagonal
mask instead), and prints both
side by side with the packed/padded ratio. The two loops take turns step by
step, so background load on the machine hits both alike. Each packed step
gets about as many token slots as an average padded step, so the comparison
is at equal work per step.

Two more comparisons run the project's real training path:

    # (a) run_training (packing) vs a plain HF Trainer with padded batches
    .venv/bin/python scripts/bench_train.py --recipe recipes/tiny-lora-cpu.yaml \
        --set model.base=models/tiny-clinical --set data.dataset_dir=build/demo/datasets
    # (a) again, on synthetic chats with a clinical-note length spread instead
    .venv/bin/python scripts/bench_train.py --recipe recipes/tiny-lora-cpu.yaml --synthetic-data \
        --examples 512
    # (b) 2 processes under DeepSpeed ZeRO-2 vs 1 process, both through llm.train
    .venv/bin/python scripts/bench_train.py --recipe recipes/tiny-lora-cpu.yaml --launch ...

(a) trains the recipe's model on the recipe's data for ``--steps`` optimizer
steps, each arm in a fresh process, in ``--repeats`` alternating rounds: once
through :func:`llm.train.trainer.run_training` with ``data.packing=true``,
once through a plain ``transformers.Trainer`` fed right-padded batches
(``DataCollatorForSeq2Seq``, padding to the longest example of each batch),
same model, tokenized examples, micro batch and steps; both count real
(non-pad) tokens. ``--synthetic-data`` swaps the recipe's datasets for the
synthetic chats below (the demo's examples are all 500-730 tokens long, so
padding wastes only 7-10% of a batch there). (b) launches ``llm.train`` as
``accelerate launch --config_file recipes/accelerate/cpu-zero2.yaml`` and as
one plain process, and reads tokens/s from each run's manifest.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from llm.env import set_private_env
from llm.errors import BadInputError
from llm.train.attention import SDPA_VARLEN, register_varlen_sdpa
from llm.train.packing import (
    CU_SEQLENS_ATTENTION,
    PackedCollator,
    PaddedCollator,
    plan_packing,
)
from llm.train.tokenize import tokenize_dataset

_VOCABULARY = (
    "patient admitted with chest pain shortness of breath fever cough hypertension diabetes "
    "troponin negative ECG sinus rhythm started on aspirin heparin metoprolol lisinopril "
    "creatinine elevated WBC lactate blood cultures antibiotics ceftriaxone azithromycin "
    "pneumonia right lower lobe consolidation chest radiograph echocardiogram ejection "
    "fraction history of COPD CHF CKD stage three denies nausea vomiting abdominal pain "
    "vitals stable afebrile oxygen saturation nasal cannula discharged home follow up with "
    "primary care in two weeks plan continue monitor labs daily weight"
)
WORDS = _VOCABULARY.split()
SYSTEM = "You are a clinical assistant. Read the note and answer the question."


@dataclass
class ModeResult:
    """Throughput of one batching mode over the timed steps."""

    mode: str
    steps: int
    real_tokens: int
    label_tokens: int
    slots: int
    seconds: float  # wall clock
    cpu_seconds: float  # CPU time of this process: steadier than wall time on a busy machine

    @property
    def tokens_per_s(self) -> float:
        return self.real_tokens / self.seconds if self.seconds else math.nan

    @property
    def tokens_per_cpu_s(self) -> float:
        return self.real_tokens / self.cpu_seconds if self.cpu_seconds else math.nan

    @property
    def padding(self) -> float:
        return 1 - self.real_tokens / self.slots if self.slots else math.nan


def synthetic_chats(n: int, *, max_length: int, seed: int) -> list[dict[str, Any]]:
    """Chat rows with note lengths spread like clinical notes (log-normal, long tail).

    About one note in twenty runs past ``max_length`` and is truncated by the
    tokenizer step; answers are a few words (classification) or a summary.
    """
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = int(min(3 * max_length, max(15, rng.lognormvariate(math.log(max_length / 4), 0.7))))
        note = " ".join(rng.choice(WORDS) for _ in range(words))
        if rng.random() < 0.7:
            answer = rng.choice(["yes", "no", "pneumonia", "heart failure", "sepsis"])
        else:
            answer = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 80)))
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": note + "\nWhat is the primary diagnosis?"},
            {"role": "assistant", "content": answer},
        ]
        rows.append({"id": f"synthetic-{i}", "messages": messages})
    return rows


# Recipes accept registered task names only, so the chats are saved under one; the
# folder's manifest says what they are.
SYNTHETIC_TASK = "diagnosis"


def write_synthetic_task(folder: Path, rows: Sequence[dict[str, Any]]) -> list[str]:
    """Save ``rows`` as a one-task dataset folder (``data build``'s layout); returns overrides.

    The task folder takes a registered task's name (:data:`SYNTHETIC_TASK`);
    nothing reads its renderer, only the saved rows.

    The overrides point a recipe at it (``data.dataset_dir``, ``data.tasks``), so
    ``--recipe --synthetic-data`` runs both arms on the chats' length spread
    with the recipe's own model and tokenizer.
    """
    import datasets

    folder.mkdir(parents=True, exist_ok=True)
    datasets.DatasetDict({"train": datasets.Dataset.from_list(list(rows))}).save_to_disk(
        str(folder / SYNTHETIC_TASK)
    )
    manifest = {
        "kind": "clinical-llm task datasets",
        "source": "scripts/bench_train.py synthetic chats",
        "tasks": {SYNTHETIC_TASK: {"counts": {"train": len(rows)}}},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return [f"data.dataset_dir={folder}", f"data.tasks=[{SYNTHETIC_TASK}]"]


def synthetic_tokenizer(rows: Sequence[dict[str, Any]]) -> Any:
    """A byte-level BPE chat tokenizer trained on the synthetic rows."""
    from llm.models.tokenizer import train_bpe_tokenizer

    texts = [m["content"] for row in rows for m in row["messages"]]
    return train_bpe_tokenizer(texts, vocab_size=2048, model_max_length=4096)


def load_task_split(dataset_dir: Path, task: str | None, split: str) -> Any:
    """One split of a saved task ``DatasetDict`` (``DIR/<task>`` or ``DIR`` itself)."""
    import datasets

    folder = dataset_dir if (dataset_dir / "dataset_dict.json").exists() else None
    if folder is None:
        tasks = sorted(p.name for p in dataset_dir.iterdir() if (p / "dataset_dict.json").exists())
        if task not in tasks:
            raise BadInputError(
                f"{dataset_dir}: --task must be one of {', '.join(tasks) or '(none)'}"
            )
        folder = dataset_dir / task
    splits = datasets.load_from_disk(str(folder))
    if split not in splits:
        raise BadInputError(f"{folder}: no split {split!r} (has {', '.join(splits)})")
    return splits[split]


def tiny_llama(vocab_size: int, pad_token_id: int, args: argparse.Namespace, attn: str) -> Any:
    """A randomly initialised Llama for timing (cache off: packed batches need it off)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(args.seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=args.hidden_size,
        intermediate_size=args.hidden_size * 8 // 3,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=max(1, args.heads // 2),
        max_position_embeddings=args.max_length,
        pad_token_id=pad_token_id,
        use_cache=False,
    )
    model = LlamaForCausalLM(config)
    if attn == SDPA_VARLEN:
        register_varlen_sdpa()
    model.set_attn_implementation(attn)
    return model.to(args.device).train()


def padded_batches(examples: list[dict[str, Any]], batch_size: int, seed: int) -> list[list[int]]:
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def packed_batches(
    examples: list[dict[str, Any]], max_length: int, rows_per_step: int, seed: int
) -> list[list[int]]:
    rows = plan_packing([e["num_tokens"] for e in examples], max_length)
    random.Random(seed).shuffle(rows)
    steps = [rows[i : i + rows_per_step] for i in range(0, len(rows), rows_per_step)]
    return [[i for row in step for i in row] for step in steps]


class StepLoop:
    """One model + optimizer stepping through the batches of one mode."""

    def __init__(self, mode: str, collator: Any, batches: list[list[int]], model: Any, warmup: int):
        self.result = ModeResult(mode, 0, 0, 0, 0, 0.0, 0.0)
        self.collator = collator
        self.batches: Iterator[list[int]] = iter(batches)
        self.model = model
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        self.warmup = warmup
        self.done = False

    def step(self, examples: list[dict[str, Any]], device: str) -> None:
        indices = next(self.batches, None)
        if indices is None:
            self.done = True
            return
        batch = self.collator.collate([examples[i] for i in indices]).to(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        loss = self.model(**batch.model_inputs()).loss
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        if self.warmup > 0:
            self.warmup -= 1
            return
        r = self.result
        r.steps += 1
        r.seconds += elapsed
        r.cpu_seconds += cpu
        r.real_tokens += batch.num_real_tokens
        r.label_tokens += batch.num_label_tokens
        r.slots += batch.num_slots


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset-dir", type=Path, help="task dataset folder (data build output)")
    p.add_argument("--task", help="task inside --dataset-dir (when it holds several)")
    p.add_argument("--split", default="train", help="split to read from --dataset-dir")
    p.add_argument("--tokenizer", type=Path, help="tokenizer folder (needed with --dataset-dir)")
    p.add_argument("--examples", type=int, default=256, help="examples to use (synthetic count)")
    p.add_argument("--max-length", type=int, default=512, help="tokens per example / packed row")
    p.add_argument("--batch-size", type=int, default=8, help="examples per padded step")
    p.add_argument("--hidden-size", type=int, default=128, help="tiny Llama hidden size")
    p.add_argument("--layers", type=int, default=2, help="tiny Llama layers")
    p.add_argument("--heads", type=int, default=4, help="attention heads (kv heads = half)")
    p.add_argument(
        "--attn", default="sdpa", choices=["sdpa", "eager"], help="attention of the padded loop"
    )
    p.add_argument(
        "--packed-attn",
        default=SDPA_VARLEN,
        choices=[SDPA_VARLEN, "sdpa", "eager"],
        help="attention of the packed loop: sdpa_varlen runs each example apart, sdpa and "
        "eager use a block-diagonal mask",
    )
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per mode")
    p.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1 keeps CPU-time numbers clean on a shared machine)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of data order and weights")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument(
        "--recipe",
        type=Path,
        help="compare the real training path instead: run_training (packed) vs a plain HF "
        "Trainer (padded), on this recipe's model and data",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="recipe override key.sub=value (repeatable), with --recipe",
    )
    p.add_argument(
        "--synthetic-data",
        action="store_true",
        help="with --recipe: both arms train on --examples synthetic chats (note lengths spread "
        "like clinical notes, around a quarter of the recipe's data.max_length) instead of the "
        "recipe's datasets, with the recipe's model and tokenizer",
    )
    p.add_argument("--steps", type=int, default=10, help="optimizer steps per run, with --recipe")
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="with --recipe: alternating rounds of the arms (each arm a fresh process); the "
        "table shows each arm's median",
    )
    p.add_argument(
        "--launch",
        action="store_true",
        help="with --recipe: compare 2 processes under DeepSpeed ZeRO-2 with 1 process instead",
    )
    p.add_argument(
        "--accelerate-config",
        default="recipes/accelerate/cpu-zero2.yaml",
        help="accelerate config of the multi-process run, with --launch",
    )
    p.add_argument("--out", type=Path, default=Path("build/bench_train"), help="run folders")
    return p.parse_args()


def write_json(path: Path, report: dict[str, Any], console: Console) -> None:
    """Write ``report`` to ``path``, creating its folder (``--json build/x/results.json``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str))
    console.print(f"results written to {path}")


def main() -> None:
    set_private_env()
    args = parse_args()
    console = Console(width=140)
    if args.recipe is not None:
        from bench_train_recipe import bench_launch, bench_recipe

        if args.synthetic_data:
            from llm.train.recipe import load_recipe

            max_length = load_recipe(args.recipe, args.overrides).data.max_length
            rows = synthetic_chats(args.examples, max_length=max_length, seed=args.seed)
            args.overrides += write_synthetic_task(args.out / "synthetic-datasets", rows)
        report = bench_launch(args, console) if args.launch else bench_recipe(args, console)
        if args.json:
            write_json(args.json, report, console)
        return
    torch.set_num_threads(args.threads)
    if args.dataset_dir is not None:
        if args.tokenizer is None:
            raise SystemExit("--tokenizer is needed with --dataset-dir")
        from transformers import PreTrainedTokenizerFast

        tokenizer = PreTrainedTokenizerFast.from_pretrained(
            str(args.tokenizer), local_files_only=True
        )
        source = load_task_split(args.dataset_dir, args.task, args.split)
        source = source.select(range(min(args.examples, len(source))))
        label = f"{args.dataset_dir}:{args.task or ''}/{args.split}"
    else:
        import datasets

        rows = synthetic_chats(args.examples, max_length=args.max_length, seed=args.seed)
        tokenizer = synthetic_tokenizer(rows)
        source = datasets.Dataset.from_list(rows)
        label = "synthetic chats"
    tokenized, stats = tokenize_dataset(source, tokenizer, max_length=args.max_length)
    examples = [dict(r) for r in tokenized.select_columns(["input_ids", "labels", "num_tokens"])]
    if not examples:
        raise SystemExit(f"no usable examples: {stats.summary()}")

    pad_id = tokenizer.pad_token_id
    padded_plan = padded_batches(examples, args.batch_size, args.seed)
    avg_padded_slots = sum(
        len(b) * max(examples[i]["num_tokens"] for i in b) for b in padded_plan
    ) / len(padded_plan)
    rows_per_step = max(1, round(avg_padded_slots / args.max_length))
    packed_plan = packed_batches(examples, args.max_length, rows_per_step, args.seed)

    vocab = len(tokenizer)
    loops = [
        StepLoop(
            "padded",
            PaddedCollator(pad_token_id=pad_id),
            padded_plan,
            tiny_llama(vocab, pad_id, args, args.attn),
            args.warmup,
        ),
        StepLoop(
            "packed",
            PackedCollator(
                max_length=args.max_length,
                pad_token_id=pad_id,
                flash_attn_kwargs=args.packed_attn in CU_SEQLENS_ATTENTION,
            ),
            packed_plan,
            tiny_llama(vocab, pad_id, args, args.packed_attn),
            args.warmup,
        ),
    ]
    loops[1].collator.check_model(loops[1].model)
    while not all(loop.done for loop in loops):
        for loop in loops:
            if not loop.done:
                loop.step(examples, args.device)

    results = [loop.result for loop in loops]
    table = Table(
        title=f"train step throughput: {label}, {args.device}, attention padded "
        f"{args.attn} / packed {args.packed_attn}"
    )
    columns = (
        "mode",
        "steps",
        "real tokens",
        "trained tokens",
        "padding",
        "wall s",
        "real tok/s",
        "CPU s",
        "real tok/CPU s",
    )
    for col in columns:
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            r.mode,
            str(r.steps),
            str(r.real_tokens),
            str(r.label_tokens),
            f"{r.padding:.1%}",
            f"{r.seconds:.2f}",
            f"{r.tokens_per_s:,.0f}",
            f"{r.cpu_seconds:.2f}",
            f"{r.tokens_per_cpu_s:,.0f}",
        )
    console.print(f"tokenize: {stats.summary()}")
    console.print(table)
    ratio = results[1].tokens_per_s / results[0].tokens_per_s
    cpu_ratio = results[1].tokens_per_cpu_s / results[0].tokens_per_cpu_s
    console.print(
        f"packed / padded real tokens/s: {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU time "
        f"(padded: {args.batch_size} examples a step; packed: {rows_per_step} rows of "
        f"{args.max_length} a step)"
    )
    if args.json:
        report = {
            "dataset": label,
            "args": {k: str(v) for k, v in vars(args).items()},
            "tokenize": asdict(stats),
            "results": [
                {
                    **asdict(r),
                    "tokens_per_s": r.tokens_per_s,
                    "tokens_per_cpu_s": r.tokens_per_cpu_s,
                    "padding": r.padding,
                }
                for r in results
            ],
            "packed_over_padded": ratio,
            "packed_over_padded_cpu": cpu_ratio,
        }
        write_json(args.json, report, console)


if __name__ == "__main__":
    main()
