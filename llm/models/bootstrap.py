"""``model init``: tokenizer, tiny Llama and brief pretraining, written as one model folder.

The folder is a standard Hugging Face checkpoint (``config.json``,
``generation_config.json``, ``model.safetensors``, ``tokenizer.json``,
``tokenizer_config.json``, ``chat_template.jinja``) plus ``manifest.json``,
so the same loading code serves it and a real Llama-3 checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm import __version__
from llm.data.build import (
    DEFAULT_SPLIT,
    DEFAULT_SPLIT_SEED,
    assign_patient_splits,
    read_patient_splits,
)
from llm.errors import BadInputError
from llm.models.corpus import (
    NoteCorpus,
    chunk_stream,
    document_stream,
    pack_blocks,
    split_patients,
)
from llm.models.manifest import (
    file_sha256,
    git_commit,
    hardware,
    library_versions,
    now_iso,
    prepare_model_folder,
    write_manifest,
)
from llm.models.tiny import (
    SHAPES,
    ModelSize,
    PretrainSettings,
    build_llama,
    count_parameters,
    llama_config,
    pretrain,
)
from llm.models.tokenizer import train_bpe_tokenizer

# Default pretraining steps per size. Tiny: 500 steps of 4 x 512 tokens (about
# 3.5 epochs of a 400-patient demo corpus), measured at 0.67-0.74 s/step on a
# quiet 2-core CPU in fp32 (about 6 min; 117 s in bf16 on a CPU with native
# bf16): held-out perplexity 4,486 -> 2.7 (60 steps of 256 tokens left it at
# 211, too weak for the fine-tune to build on; see docs/models.md).
DEFAULT_STEPS: dict[str, int] = {"tiny": 500, "small": 200}
BASE_MODEL_KIND = "base_model"
DEFAULT_BLOCK_SIZE = 512
DEFAULT_BATCH_SIZE = 4


@dataclass(frozen=True)
class InitOptions:
    """Everything ``model init`` was asked to do (recorded in the manifest)."""

    size: ModelSize = "tiny"
    seed: int = 0
    steps: int | None = None  # None: DEFAULT_STEPS[size]
    block_size: int = DEFAULT_BLOCK_SIZE
    batch_size: int = DEFAULT_BATCH_SIZE
    learning_rate: float = 3e-3
    threads: int | None = None  # None: torch's default, every core
    bf16: bool | None = None  # None: where the device has native bf16
    # A ``data build`` folder: its validation and test patients are left out of pretraining.
    # None: the patients that `data build`'s default split of the same records puts there.
    exclude_eval_patients_of: Path | None = None
    # Pretrain on every patient, evaluation patients included (only for a model that is
    # never evaluated on tasks built from these records).
    include_eval_patients: bool = False

    def resolved_steps(self) -> int:
        """The step count to run: the one given, or the size's default."""
        return self.steps if self.steps is not None else DEFAULT_STEPS[self.size]


def eval_patients_policy(corpus: NoteCorpus, options: InitOptions) -> str:
    """Drop the evaluation patients from ``corpus`` as ``options`` say; describe what was done.

    By default the validation and test patients of ``data build``'s default
    split of the same records (:data:`llm.data.build.DEFAULT_SPLIT`, seed 0) are
    left out; ``exclude_eval_patients_of`` names the build whose split to use
    instead; ``include_eval_patients`` keeps everyone.

    Returns:
        One line for the manifest and the console.

    Raises:
        BadInputError: both a build folder and ``include_eval_patients`` are given.
    """
    if options.include_eval_patients:
        if options.exclude_eval_patients_of is not None:
            raise BadInputError(
                "--include-eval-patients and --exclude-eval-patients-of contradict each other"
            )
        return "included: every patient, evaluation patients too"
    if options.exclude_eval_patients_of is not None:
        splits = read_patient_splits(options.exclude_eval_patients_of)
        dropped = corpus.exclude(splits["validation"] | splits["test"])
        return f"left out {dropped} validation/test patients of {options.exclude_eval_patients_of}"
    split = assign_patient_splits(corpus.diagnosis_of, DEFAULT_SPLIT, DEFAULT_SPLIT_SEED)
    dropped = corpus.exclude({pid for pid, name in split.items() if name != "train"})
    return (
        f"left out {dropped} validation/test patients of the default `data build` split "
        f"({','.join(f'{p:g}' for p in DEFAULT_SPLIT)}, seed {DEFAULT_SPLIT_SEED}) of these "
        "records"
    )


def init_base_model(
    corpus: NoteCorpus,
    out: Path,
    options: InitOptions,
    *,
    on_step: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Train the tokenizer, build and pretrain the Llama, save both with a manifest.

    Args:
        corpus: note texts read from the records file; with
            ``options.exclude_eval_patients_of`` the evaluation patients are
            dropped from it first.
        out: model folder to write (created; existing model files are replaced).
        options: size, seed, steps and batch shape.
        on_step: progress callback, called with (step, training loss).

    Returns:
        The manifest written to ``out/manifest.json``.

    Raises:
        BadInputError: the corpus is too small for the requested block size, or
            the dataset folder to exclude patients of has no patient splits.
    """
    started = now_iso()
    shape = SHAPES[options.size]
    eval_patients = eval_patients_policy(corpus, options)
    if options.block_size > shape.max_position_embeddings:
        raise BadInputError(
            f"--block-size {options.block_size} exceeds the model's context of "
            f"{shape.max_position_embeddings} tokens"
        )
    split = split_patients(corpus, seed=options.seed)
    train_texts = [t for pid in split.train for t in corpus.documents[pid]]
    tokenizer = train_bpe_tokenizer(
        train_texts, vocab_size=shape.vocab_size, model_max_length=shape.max_position_embeddings
    )
    train_stream = document_stream(corpus, split.train, tokenizer)
    held_stream = document_stream(corpus, split.held_out, tokenizer)
    blocks = pack_blocks(train_stream, options.block_size)
    held_out = chunk_stream(held_stream, options.block_size)
    if blocks.shape[0] == 0:
        raise BadInputError(
            f"{corpus.path}: the training notes give {len(train_stream)} tokens, fewer than one "
            f"block of {options.block_size}; use more records or a smaller --block-size"
        )
    settings = PretrainSettings(
        steps=options.resolved_steps(),
        batch_size=min(options.batch_size, blocks.shape[0]),
        learning_rate=options.learning_rate,
        seed=options.seed,
        threads=options.threads,
        bf16=options.bf16,
    )
    config = llama_config(options.size, tokenizer)
    model = build_llama(config, seed=options.seed)
    result = pretrain(model, blocks, held_out, settings, on_step=on_step)

    prepare_model_folder(out, BASE_MODEL_KIND)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    manifest: dict[str, Any] = {
        "kind": BASE_MODEL_KIND,
        "package_version": __version__,
        "git_commit": git_commit(),
        "args": {
            "records": str(corpus.path),
            "out": str(out),
            "size": options.size,
            "seed": options.seed,
            "steps": settings.steps,
            "block_size": options.block_size,
            "batch_size": settings.batch_size,
            "learning_rate": options.learning_rate,
            "threads": options.threads,
            "exclude_eval_patients_of": (
                str(options.exclude_eval_patients_of)
                if options.exclude_eval_patients_of is not None
                else None
            ),
            "include_eval_patients": options.include_eval_patients,
        },
        "eval_patients": eval_patients,
        "records_sha256": file_sha256(corpus.path),
        "counts": {
            "read": corpus.stats.read,
            "used": corpus.stats.used,
            "rejected": corpus.stats.rejected,
            "patients_with_notes": len(corpus.documents),
            "patients_without_notes": corpus.patients_without_notes,
            "excluded_eval_patients": corpus.excluded_patients,
            "train_patients": len(split.train),
            "held_out_patients": len(split.held_out),
            "notes": corpus.n_notes,
            "note_chars": corpus.n_chars,
            "train_tokens": len(train_stream),
            "train_blocks": int(blocks.shape[0]),
            "train_tokens_in_tail": len(train_stream) - blocks.numel(),
            "held_out_tokens": len(held_stream),
        },
        "model": {
            "architecture": "LlamaForCausalLM",
            "size": options.size,
            "parameters": count_parameters(model),
            "vocab_size": len(tokenizer),
            "vocab_size_target": shape.vocab_size,
            "context": shape.max_position_embeddings,
        },
        "seed": options.seed,
        "pretraining": result.to_dict(),
        "libraries": library_versions(),
        "hardware": hardware(),
        "started": started,
        "finished": now_iso(),
    }
    write_manifest(out, manifest)
    return manifest
