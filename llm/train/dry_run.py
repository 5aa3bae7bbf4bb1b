"""``--dry-run``: what a recipe would train and what memory it would need, without weights.

The model is built from its config.json on the ``meta`` device (no weights
read, no memory used), LoRA is applied with peft on that meta model, and the
parameter counts feed DeepSpeed's own model-state estimators
(``estimate_zero2_model_states_mem_needs`` /
``estimate_zero3_model_states_mem_needs``, the functions behind the
``*_all_cold`` printers) for the recipe's world size and ZeRO stage.

DeepSpeed's estimators assume every parameter is trained (mixed precision:
16-bit weights, fp32 master weights, gradients and Adam states). For LoRA the
run's figure is DeepSpeed's estimate for the trainable parameters plus the
frozen base weights (replicated under ZeRO-0/1/2, partitioned under ZeRO-3).
Activation memory is a rough closed-form estimate, labelled as such.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm.errors import BadInputError
from llm.hardware import cpu_auto_precision
from llm.train.distributed import offloads, read_accelerate_config, read_json_config, zero_stage
from llm.train.recipe import Recipe, resolve_dtype

if TYPE_CHECKING:
    import torch
    from rich.table import Table

log = logging.getLogger(__name__)

GIB = 2**30
# bytes per frozen base weight, by storage precision (nf4 packs two weights per byte)
FROZEN_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp32": 4.0, "nf4": 0.5}
# architecture keys compared between model.config and <base>/config.json
SHAPE_KEYS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
)


@dataclass(frozen=True)
class MemoryEstimate:
    """Model-state memory (parameters, gradients, optimizer states) of one setting.

    Args:
        label: what the figure describes.
        per_gpu_bytes: on each GPU.
        per_node_cpu_bytes: CPU RAM on each node (DeepSpeed's figure; offload lives here).
    """

    label: str
    per_gpu_bytes: int
    per_node_cpu_bytes: int


@dataclass(frozen=True)
class DryRunReport:
    """Everything ``--dry-run`` measured about a recipe. Sizes in bytes, counts in units.

    ``base_params`` counts the architecture alone; ``total_params`` the model as
    trained (adapters and ``modules_to_save`` copies included).
    """

    model_config: Path
    architecture: str
    method: str
    precision: str
    base_params: int
    total_params: int
    trainable_params: int
    largest_layer_params: int
    adapted_modules: int
    world_size: int
    num_nodes: int
    zero_stage: int | None
    offload_optimizer: bool
    offload_param: bool
    model_states: list[MemoryEstimate]
    activation_bytes_per_gpu: int
    activation_formula: str
    tokens_per_step: int
    micro_batch_size: int
    gradient_accumulation_steps: int
    max_length: int
    notes: list[str] = field(default_factory=list)

    @property
    def gpus_per_node(self) -> int:
        """Processes per node."""
        return max(1, self.world_size // self.num_nodes)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON types."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["model_config"] = str(self.model_config)
        out["model_states"] = [vars(m) for m in self.model_states]
        return out


def _config_file(recipe: Recipe) -> Path:
    if recipe.model.config is not None:
        return recipe.model.config
    assert recipe.model.base is not None  # the recipe checks guarantee one of them
    file = recipe.model.base / "config.json"
    if not file.is_file():
        raise BadInputError(
            f"model.base: {file} not found; set model.config to an architecture config.json "
            "to dry-run without the checkpoint"
        )
    return file


def _shape_notes(recipe: Recipe, used: dict[str, Any]) -> list[str]:
    """Differences between model.config and the checkpoint's own config, when both exist."""
    if recipe.model.config is None or recipe.model.base is None:
        return []
    base_file = recipe.model.base / "config.json"
    if not base_file.is_file():
        return []
    base = json.loads(base_file.read_text(encoding="utf-8"))
    diffs = [
        f"{k} {used.get(k)} vs {base.get(k)}" for k in SHAPE_KEYS if used.get(k) != base.get(k)
    ]
    if not diffs:
        return []
    return [f"model.config differs from {base_file}: " + ", ".join(diffs)]


def _text_config(raw: dict[str, Any]) -> dict[str, Any]:
    """The language model's part of a config (multimodal configs nest it)."""
    text = raw.get("text_config")
    return text if isinstance(text, dict) else raw


def build_meta_model(config_file: Path, *, multimodal: bool) -> torch.nn.Module:
    """The architecture of ``config_file`` on the meta device: shapes only, no memory.

    Raises:
        BadInputError: unknown model type, or an architecture transformers cannot
            build as a causal LM (or image-text-to-text model when ``multimodal``).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    from llm.models.loading import read_config

    config = read_config(config_file)
    auto = AutoModelForImageTextToText if multimodal else AutoModelForCausalLM
    try:
        with torch.device("meta"):
            return auto.from_config(config, trust_remote_code=False)
    except ValueError as exc:
        kind = "vision-language" if multimodal else "causal LM"
        raise BadInputError(f"{config_file}: not a {kind} architecture: {exc}") from None


def apply_lora(model: torch.nn.Module, recipe: Recipe) -> tuple[torch.nn.Module, int]:
    """Wrap ``model`` with the recipe's LoRA adapters (on the meta device when it is meta).

    Returns:
        The peft model and how many modules got adapters.

    Raises:
        BadInputError: ``method.lora.target_modules`` matches no module of the model.
    """
    import torch
    from peft import get_peft_model

    from llm.train.model_setup import lora_config

    config = lora_config(recipe)  # the real run's adapters, so the counts agree
    device = next(model.parameters()).device
    try:
        # adapters made on the model's device: on meta they cost neither memory nor init time
        with torch.device(device):
            peft_model = get_peft_model(model, config)
    except ValueError as exc:
        raise BadInputError(f"method.lora.target_modules: {exc}") from None
    from peft.tuners.lora import LoraLayer

    adapted = sum(isinstance(m, LoraLayer) for m in peft_model.modules())
    return peft_model, adapted


def model_state_estimates(
    *,
    total_params: int,
    trainable_params: int,
    largest_layer_params: int,
    stage: int | None,
    offload_optimizer: bool,
    offload_param: bool,
    gpus_per_node: int,
    num_nodes: int,
    frozen_bytes_per_param: float,
) -> list[MemoryEstimate]:
    """DeepSpeed's model-state estimates for this run.

    The first entry is DeepSpeed's estimator called with every parameter (its
    assumption: full fine-tuning). When fewer parameters are trained, a second
    entry is this run's figure: the estimator for the trainable parameters plus
    the frozen weights (each GPU holds them all under ZeRO-0/1/2; ZeRO-3 splits
    them over the world, or keeps them on CPU with param offload).
    """
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    def estimate(params: int, largest: int) -> tuple[int, int]:
        if stage == 3:
            cpu, gpu, _ = estimate_zero3_model_states_mem_needs(
                total_params=params,
                largest_layer_params=largest,
                num_gpus_per_node=gpus_per_node,
                num_nodes=num_nodes,
                cpu_offload=offload_optimizer,
                cpu_offload_params=offload_param,
                zero_init=True,
            )
            return int(cpu), int(gpu)
        # ZeRO-1 is estimated as ZeRO-2; no ZeRO as one GPU holding everything
        per_node, nodes = (gpus_per_node, num_nodes) if stage else (1, 1)
        cpu, gpu = estimate_zero2_model_states_mem_needs(
            total_params=params,
            num_gpus_per_node=per_node,
            num_nodes=nodes,
            cpu_offload=offload_optimizer,
        )
        return int(cpu), int(gpu)

    setting = f"ZeRO-{stage}" if stage else "no ZeRO"
    if offload_optimizer or offload_param:
        setting += f" (offload optimizer={offload_optimizer}, params={offload_param})"
    world = gpus_per_node * num_nodes
    cpu, gpu = estimate(total_params, largest_layer_params)
    rows = [MemoryEstimate(f"{setting}, every parameter trained (DeepSpeed)", gpu, cpu)]
    if trainable_params < total_params:
        frozen = int((total_params - trainable_params) * frozen_bytes_per_param)
        t_cpu, t_gpu = estimate(trainable_params, min(largest_layer_params, trainable_params))
        if stage == 3 and offload_param:
            t_cpu += frozen // num_nodes
        elif stage == 3:
            t_gpu += frozen // world
        else:
            t_gpu += frozen
        rows.append(
            MemoryEstimate(
                f"{setting}, this run: DeepSpeed for the {trainable_params:,} trainable "
                "+ frozen base weights",
                t_gpu,
                t_cpu,
            )
        )
    return rows


def activation_estimate(
    text_config: dict[str, Any],
    *,
    micro_batch_size: int,
    max_length: int,
    gradient_checkpointing: bool,
    attn_implementation: str,
) -> tuple[int, str]:
    """A rough activation-memory figure per GPU, and the formula that gave it.

    Per layer, 16-bit activations take ~34·s·b·h bytes, plus 5·a·s²·b when the
    attention matrix is materialised (eager) (Korthikanti et al. 2022,
    "Reducing Activation Recomputation in Large Transformer Models"). Gradient
    checkpointing keeps only each layer's 2·s·b·h input and recomputes one layer
    at a time. The fp32 logits and their gradient add 8·s·b·V.
    """
    h = int(text_config.get("hidden_size", 0))
    layers = int(text_config.get("num_hidden_layers", 0))
    heads = int(text_config.get("num_attention_heads", 0))
    vocab = int(text_config.get("vocab_size", 0))
    s, b = max_length, micro_batch_size
    per_layer = 34 * s * b * h + (5 * heads * s * s * b if attn_implementation == "eager" else 0)
    attention = " + 5·a·s²·b" if attn_implementation == "eager" else ""
    logits = 8 * s * b * vocab
    if gradient_checkpointing:
        total = layers * 2 * s * b * h + per_layer + logits
        formula = f"L·2·s·b·h + (34·s·b·h{attention}) + 8·s·b·V (gradient checkpointing)"
    else:
        total = layers * per_layer + logits
        formula = f"L·(34·s·b·h{attention}) + 8·s·b·V"
    return total, formula


def short_count(n: int) -> str:
    """``8.03 B``, ``30.3 M``, ``4.2 k``: a parameter count at a glance."""
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return str(n)


def dry_run(recipe: Recipe) -> DryRunReport:
    """Build the recipe's model on the meta device and estimate what training it needs.

    Args:
        recipe: a validated recipe (``model.config``, or ``model.base`` holding config.json).

    Returns:
        The report: parameter counts, DeepSpeed model-state estimates for the
        launch config's world size and ZeRO stage, a rough activation figure, and
        tokens per optimizer step.

    Raises:
        BadInputError: no readable config.json, an architecture transformers cannot
            build, or LoRA target modules that match nothing.
    """
    config_file = _config_file(recipe)
    raw = json.loads(config_file.read_text(encoding="utf-8"))
    notes = _shape_notes(recipe, _text_config(raw))
    model = build_meta_model(config_file, multimodal=recipe.model.multimodal)
    base_params = total = sum(p.numel() for p in model.parameters())
    # the largest single module's own parameters: DeepSpeed's "largest layer" for ZeRO-3
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    architecture = type(model).__name__
    adapted = 0
    if recipe.method.kind == "full":
        trainable = total
    else:
        model, adapted = apply_lora(model, recipe)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())

    world, nodes = 1, 1
    on_cpu = False
    if recipe.launch.accelerate_config is not None:
        launch = read_accelerate_config(recipe.launch.accelerate_config)
        world, nodes = launch.num_processes, launch.num_machines
        on_cpu = launch.use_cpu
    stage: int | None = None
    off_opt = off_param = False
    if recipe.deepspeed is not None:
        ds_config = read_json_config(recipe.deepspeed)
        stage = zero_stage(ds_config)
        off_opt, off_param = offloads(ds_config)

    precision = resolve_dtype(recipe.model.dtype, raw)
    if on_cpu and recipe.model.dtype == "auto":
        # a CPU launch config: auto picks by this machine's CPU, as training will
        precision = cpu_auto_precision()
        notes.append(
            f"model.dtype auto on a CPU launch: {precision} on this machine (bf16 where the CPU "
            "has AVX512-BF16 or AMX)"
        )
    frozen_kind = "nf4" if recipe.method.kind == "qlora" else precision
    states = model_state_estimates(
        total_params=total,
        trainable_params=trainable,
        largest_layer_params=largest,
        stage=stage,
        offload_optimizer=off_opt,
        offload_param=off_param,
        gpus_per_node=max(1, world // nodes),
        num_nodes=nodes,
        frozen_bytes_per_param=FROZEN_BYTES[frozen_kind],
    )
    training = recipe.training
    activations, formula = activation_estimate(
        _text_config(raw),
        micro_batch_size=training.micro_batch_size,
        max_length=recipe.data.max_length,
        gradient_checkpointing=training.gradient_checkpointing,
        attn_implementation=recipe.model.attn_implementation,
    )
    if recipe.method.kind == "qlora":
        notes.append(
            "qlora: counted unquantised; frozen weights sized as nf4 (0.5 byte/param). "
            "Training needs bitsandbytes (pip install 'clinical-llm[qlora]'), on a CUDA "
            "GPU or, from bitsandbytes 0.49, on CPU."
        )
    if precision == "fp32":
        notes.append("DeepSpeed's estimators assume 16-bit weights; fp32 training needs more.")
    if recipe.model.multimodal:
        notes.append("activation estimate covers the language model only, not the vision tower.")
    return DryRunReport(
        model_config=config_file,
        architecture=architecture,
        method=recipe.method.kind,
        precision=precision,
        base_params=base_params,
        total_params=total,
        trainable_params=trainable,
        largest_layer_params=largest,
        adapted_modules=adapted,
        world_size=world,
        num_nodes=nodes,
        zero_stage=stage,
        offload_optimizer=off_opt,
        offload_param=off_param,
        model_states=states,
        activation_bytes_per_gpu=activations,
        activation_formula=formula,
        tokens_per_step=(training.micro_batch_size * training.gradient_accumulation_steps * world)
        * recipe.data.max_length,
        micro_batch_size=training.micro_batch_size,
        gradient_accumulation_steps=training.gradient_accumulation_steps,
        max_length=recipe.data.max_length,
        notes=notes,
    )


def _gib(n: int) -> str:
    return f"{n / GIB:,.2f} GiB"


def render_report(report: DryRunReport) -> Table:
    """The report as a rich table (one row per figure)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"dry run: {report.architecture} ({report.method})", show_lines=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    share = 100 * report.trainable_params / max(1, report.total_params)
    zero = "none" if report.zero_stage is None else f"ZeRO-{report.zero_stage}"
    rows = [
        ("model config", str(report.model_config)),
        ("precision", report.precision),
        ("base parameters", f"{report.base_params:,} ({short_count(report.base_params)})"),
    ]
    if report.method != "full":
        rows.append(("parameters with adapters", f"{report.total_params:,}"))
    rows += [
        ("trainable parameters", f"{report.trainable_params:,} ({share:.3f}%)"),
        ("largest layer parameters", f"{report.largest_layer_params:,}"),
    ]
    if report.method != "full":
        rows.append(("LoRA-adapted modules", str(report.adapted_modules)))
    rows += [
        (
            "world size",
            f"{report.world_size} ({report.num_nodes} node(s) × {report.gpus_per_node})",
        ),
        ("DeepSpeed", zero),
    ]
    for est in report.model_states:
        rows.append((f"model states per GPU: {est.label}", _gib(est.per_gpu_bytes)))
        rows.append((f"CPU RAM per node: {est.label}", _gib(est.per_node_cpu_bytes)))
    rows += [
        (
            f"activations per GPU (ROUGH estimate: {report.activation_formula})",
            _gib(report.activation_bytes_per_gpu),
        ),
        (
            "tokens per optimizer step (micro × accum × world × max_length)",
            f"{report.micro_batch_size} × {report.gradient_accumulation_steps} × "
            f"{report.world_size} × {report.max_length} = {report.tokens_per_step:,}",
        ),
    ]
    for what, value in rows:
        table.add_row(what, value)
    for note in report.notes:
        table.add_row("note", escape(note))  # notes hold literal brackets
    return table
