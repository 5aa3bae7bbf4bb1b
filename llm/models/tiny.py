"""The tiny Llama: standard architecture sizes and a brief causal-LM pretraining.

The shapes stay inside what every Llama runtime supports (transformers, vLLM
on CPU and GPU): head_dim 64, grouped-query attention, tied embeddings, no
biases. Pretraining is a plain torch loop (AdamW, linear warm-up then cosine
decay, gradient clipping) over packed blocks of note text: enough for the
model to be a real base model whose held-out perplexity has dropped, not a
random one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from llm.hardware import native_bf16
from llm.models.chat_template import PAD_TOKEN
from llm.models.tokenizer import stop_token_ids, token_id

ModelSize = Literal["tiny", "small"]


@dataclass(frozen=True)
class LlamaShape:
    """Architecture hyper-parameters of one model size."""

    vocab_size: int  # target size of the trained tokenizer
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    max_position_embeddings: int = 2048


SHAPES: dict[str, LlamaShape] = {
    "tiny": LlamaShape(
        vocab_size=4096,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        intermediate_size=688,
    ),
    "small": LlamaShape(
        vocab_size=8192,
        hidden_size=512,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=4,
        head_dim=64,
        intermediate_size=1376,
    ),
}


def llama_config(size: ModelSize, tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    """The Llama configuration of ``size`` for a trained tokenizer.

    Args:
        size: ``"tiny"`` or ``"small"`` (see :data:`SHAPES`).
        tokenizer: the model's tokenizer; its length is the vocabulary size
            (a small corpus may give fewer tokens than the target).

    Returns:
        The configuration, with bos/eos/pad ids set; eos is the list of stop
        ids (end of turn, end of document).

    Raises:
        ValueError: unknown size.
    """
    if size not in SHAPES:
        raise ValueError(f"unknown model size {size!r}; choose one of {sorted(SHAPES)}")
    shape = SHAPES[size]
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        head_dim=shape.head_dim,
        max_position_embeddings=shape.max_position_embeddings,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        # Untied, as in Llama-3.1-8B: a LoRA on lm_head then changes only the
        # output head, and merging it leaves the input embeddings as they were.
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=stop_token_ids(tokenizer),
        pad_token_id=token_id(tokenizer, PAD_TOKEN),
    )


def build_llama(config: LlamaConfig, *, seed: int) -> LlamaForCausalLM:
    """A freshly initialised Llama with its generation settings.

    Args:
        config: from :func:`llama_config`.
        seed: seeds the weight initialisation.

    Returns:
        The model (float32, on CPU), ``generation_config`` stopping at every
        eos id and padding with the pad id.
    """
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )
    return model


def count_parameters(model: torch.nn.Module) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True)
class PretrainSettings:
    """How long and how hard to pretrain."""

    steps: int
    batch_size: int = 8
    learning_rate: float = 2e-3
    warmup_fraction: float = 0.1
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0
    seed: int = 0
    # CPU threads for the loop (None: torch's default). One thread is the robust
    # choice on small shared CPUs: measured 3x faster than two on a busy 2-core box.
    threads: int | None = None
    # Matmuls in bf16 autocast (weights and optimizer stay fp32). None: where the
    # device computes bf16 natively (llm.hardware.native_bf16).
    bf16: bool | None = None


@dataclass
class PretrainResult:
    """What pretraining did, for the run manifest."""

    settings: PretrainSettings
    device: str
    precision: Literal["bf16", "fp32"]  # of the training steps; held-out losses are fp32
    initial_loss: float  # training loss of the first step (before any update)
    final_loss: float  # mean training loss over the last 10% of steps
    held_out_loss_before: float
    held_out_loss_after: float
    seconds: float
    loss_curve: list[tuple[int, float]] = field(default_factory=list)

    @property
    def held_out_perplexity_before(self) -> float:
        return math.exp(self.held_out_loss_before)

    @property
    def held_out_perplexity_after(self) -> float:
        return math.exp(self.held_out_loss_after)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary (the loss curve is sampled at about 20 points)."""
        return {
            "settings": asdict(self.settings),
            "device": self.device,
            "precision": self.precision,
            "initial_loss": round(self.initial_loss, 4),
            "final_loss": round(self.final_loss, 4),
            "held_out_loss_before": round(self.held_out_loss_before, 4),
            "held_out_loss_after": round(self.held_out_loss_after, 4),
            "held_out_perplexity_before": round(self.held_out_perplexity_before, 2),
            "held_out_perplexity_after": round(self.held_out_perplexity_after, 2),
            "seconds": round(self.seconds, 2),
            "loss_curve": [[s, round(v, 4)] for s, v in self.loss_curve],
        }


def lr_factor(step: int, *, steps: int, warmup_fraction: float, min_lr_ratio: float) -> float:
    """Learning-rate multiplier at ``step`` (0-based): linear warm-up, then cosine decay."""
    warmup = max(1, int(steps * warmup_fraction))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def held_out_loss(model: LlamaForCausalLM, chunks: list[torch.Tensor], device: str) -> float:
    """Mean next-token loss over every held-out token (chunks weighted by length)."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for chunk in chunks:
            ids = chunk.unsqueeze(0).to(device)
            loss = model(input_ids=ids, labels=ids).loss
            n = chunk.numel() - 1  # predicted positions
            total += loss.item() * n
            count += n
    model.train()
    return total / count


def _decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, object]]:
    # Norm gains and other vectors are not decayed (standard for Llama pretraining).
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def pretrain(
    model: LlamaForCausalLM,
    blocks: torch.Tensor,
    held_out: list[torch.Tensor],
    settings: PretrainSettings,
    *,
    on_step: Callable[[int, float], None] | None = None,
) -> PretrainResult:
    """Train ``model`` as a causal LM on packed blocks.

    Batches are drawn without replacement from a seeded permutation of the
    blocks (a new permutation each pass), so the same seed and data give the
    same weights.

    Args:
        model: the model to train, in place.
        blocks: ``(n_blocks, block_size)`` token ids.
        held_out: held-out chunks, evaluated before and after training.
        settings: steps, batch size, optimiser settings, seed.
        on_step: called after each step with (1-based step, loss).

    Returns:
        Losses and timing.

    Raises:
        ValueError: no blocks, no held-out chunks or ``steps < 1``.
    """
    if settings.steps < 1:
        raise ValueError(f"steps must be at least 1, got {settings.steps}")
    if blocks.shape[0] == 0 or not held_out:
        raise ValueError("pretraining needs at least one training block and one held-out chunk")
    previous_threads = torch.get_num_threads()
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    try:
        return _pretrain(model, blocks, held_out, settings, on_step)
    finally:
        torch.set_num_threads(previous_threads)


def _pretrain(
    model: LlamaForCausalLM,
    blocks: torch.Tensor,
    held_out: list[torch.Tensor],
    settings: PretrainSettings,
    on_step: Callable[[int, float], None] | None,
) -> PretrainResult:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    bf16 = native_bf16(device) if settings.bf16 is None else settings.bf16
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    # nn.Module.to directly: transformers' typed wrapper of .to confuses mypy
    torch.nn.Module.to(model, device)
    model.train()
    before = held_out_loss(model, held_out, device)
    optimizer = torch.optim.AdamW(
        _decay_groups(model, settings.weight_decay),
        lr=settings.learning_rate,
        betas=(0.9, 0.95),
        eps=1e-8,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: lr_factor(
            s,
            steps=settings.steps,
            warmup_fraction=settings.warmup_fraction,
            min_lr_ratio=settings.min_lr_ratio,
        ),
    )
    generator = torch.Generator().manual_seed(settings.seed)
    order = torch.randperm(blocks.shape[0], generator=generator)
    cursor = 0
    losses: list[float] = []
    for step in range(settings.steps):
        if cursor + settings.batch_size > order.numel():
            order = torch.randperm(blocks.shape[0], generator=generator)
            cursor = 0
        index = order[cursor : cursor + settings.batch_size]
        cursor += settings.batch_size
        batch = blocks[index].to(device)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if on_step is not None:
            on_step(step + 1, losses[-1])
    after = held_out_loss(model, held_out, device)
    torch.nn.Module.to(model, "cpu")
    tail = losses[-max(1, len(losses) // 10) :]
    every = max(1, len(losses) // 20)
    curve = [(i + 1, losses[i]) for i in range(0, len(losses), every)]
    if curve[-1][0] != len(losses):
        curve.append((len(losses), losses[-1]))
    return PretrainResult(
        settings=settings,
        device=device,
        precision="bf16" if bf16 else "fp32",
        initial_loss=losses[0],
        final_loss=sum(tail) / len(tail),
        held_out_loss_before=before,
        held_out_loss_after=after,
        seconds=time.perf_counter() - started,
        loss_curve=curve,
    )
