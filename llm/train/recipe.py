"""The training recipe: a typed, validated description of one fine-tuning run.

A recipe is a YAML file under ``recipes/`` (see ``recipes/README.md``). It is
read by :func:`load_recipe`, which layers

    schema defaults  <  the YAML file  <  ``--set key.sub=value`` overrides

and reports every problem at once. Every field carries a description: that
text is the reference in ``recipes/README.md`` and in ``clinical-llm train
--help``.

Relative paths in a recipe resolve against the working directory at load time
(recipes are run from the repository root, like every command in this
project) and are stored absolute, so nothing later depends on the CWD.

Cross-field rules live in :mod:`llm.train.recipe_checks`; a ``Recipe`` built
directly with ``Recipe.model_validate`` runs them too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from llm.errors import BadInputError
from llm.overrides import apply_overrides
from llm.train.distributed import read_accelerate_config
from llm.train.recipe_checks import (
    Problem,
    RecipeError,
    locate,
    merge_same_path,
    problem_from_pydantic,
    run_checks,
    yaml_key_lines,
)

Dtype = Literal["auto", "bf16", "fp16", "fp32"]
AttnImplementation = Literal["sdpa", "sdpa_varlen", "eager", "flash_attention_2"]
MethodKind = Literal["full", "lora", "qlora"]
LrScheduler = Literal[
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"
]
TrackingBackend = Literal["tensorboard", "mlflow", "none"]

DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Make a recipe path absolute against the load-time base folder (the CWD by default)."""
    if value.is_absolute():
        return value
    base = (info.context or {}).get("base_dir") or Path.cwd()
    return Path(base) / value


RecipePath = Annotated[Path, AfterValidator(_resolve_path)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class ModelSection(_Section):
    """Which network to fine-tune and how to load it."""

    base: RecipePath | None = Field(
        None,
        description="Local checkpoint folder to fine-tune (config.json, *.safetensors, "
        "tokenizer files), e.g. models/tiny-clinical from `clinical-llm model init`, or a "
        "downloaded Llama folder. Never a hub id: nothing is downloaded at run time. "
        "Required for training.",
    )
    config: RecipePath | None = Field(
        None,
        description="Architecture config.json used by `--dry-run` when the weights are not "
        "on this machine (recipes/model_configs/<name>/config.json). When set, the dry run "
        "reads it instead of <base>/config.json; training always uses base.",
    )
    dtype: Dtype = Field(
        "auto",
        description="Precision of weights and compute. auto: on a GPU, bf16 or fp16 when the "
        "checkpoint's config says so, else fp32; on CPU, bf16 where the CPU has native bf16 "
        "(AVX512-BF16 or AMX), else fp32. bf16 is the choice on modern GPUs and such CPUs; "
        "fp16 needs a GPU (loss scaling).",
    )
    attn_implementation: AttnImplementation = Field(
        "sdpa",
        description="Attention kernel. sdpa (torch scaled_dot_product_attention) works "
        "everywhere; sdpa_varlen is sdpa run on each packed example apart instead of through "
        "a block-diagonal mask (needs data.packing; faster than sdpa's mask on CPU, see "
        "docs/training.md); flash_attention_2 needs a CUDA GPU, the flash-attn package "
        "and bf16/fp16; eager is the reference implementation (slow, most memory).",
    )
    multimodal: bool = Field(
        False,
        description="The model reads images (a vision-language model). Needed by the "
        "multimodal tasks radiology_impression and ecg_rhythm.",
    )


class DataSection(_Section):
    """Which task datasets to train on and how to turn them into batches."""

    dataset_dir: RecipePath = Field(
        ...,
        description="Output folder of `clinical-llm data build`: manifest.json plus one "
        "DatasetDict (train/validation/test) per task.",
    )
    tasks: list[str] = Field(
        ...,
        min_length=1,
        description="Task datasets to mix for training, by name (folders under "
        "dataset_dir), e.g. [diagnosis, readmission].",
    )
    max_length: int = Field(
        2048,
        ge=16,
        description="Longest tokenised example (or packed sequence) in tokens; longer "
        "examples are truncated and counted in the run log.",
    )
    packing: bool = Field(
        False,
        description="Pack several examples into one max_length sequence without padding. "
        "Examples stay apart through position ids that restart at 0 (no attention across "
        "examples): flash_attention_2 and sdpa_varlen read them natively; with sdpa/eager, "
        "transformers builds a block-diagonal mask from them. Not for multimodal models.",
    )
    assistant_only_loss: bool = Field(
        True,
        description="Train only on the assistant's tokens (the answer and its <|eot_id|>), "
        "not on the system prompt or the clinical note.",
    )
    train_split: str = Field("train", description="Split of every task dataset to train on.")
    eval_split: str | None = Field(
        "validation",
        description="Split used for evaluation during training (loss every eval_every_steps); "
        "null: no evaluation.",
    )
    max_train_examples: int | None = Field(
        None,
        ge=1,
        description="Use at most this many training examples over all tasks (after a "
        "seeded shuffle), for smoke runs; null: all.",
    )

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: list[str]) -> list[str]:
        from llm.data.tasks import TASKS

        dupes = sorted({t for t in tasks if tasks.count(t) > 1})
        if dupes:
            raise ValueError(f"task(s) listed twice: {', '.join(dupes)}")
        for name in tasks:
            if name not in TASKS:
                close = TASKS.suggest(name)
                hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                raise ValueError(f"unknown task {name!r}{hint} (known: {', '.join(TASKS.names())})")
        return tasks


class LoraSettings(_Section):
    """Low-rank adapter settings (peft ``LoraConfig``)."""

    r: int = Field(16, gt=0, description="Rank of the adapter matrices A (r×in) and B (out×r).")
    alpha: int = Field(
        32, gt=0, description="LoRA scaling numerator: the update is scaled by alpha / r."
    )
    dropout: float = Field(
        0.05, ge=0.0, lt=1.0, description="Dropout on the adapter's input during training."
    )
    target_modules: list[str] | str = Field(
        default_factory=lambda: list(DEFAULT_LORA_TARGETS),
        description="Linear modules that get adapters: a list of names matched as suffixes "
        "(q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj), or one regular "
        "expression matched against full module names (peft's rule), e.g. to adapt only a "
        "vision-language model's language_model.",
    )
    modules_to_save: list[str] = Field(
        default_factory=list,
        description="Modules trained in full and saved beside the adapter (e.g. "
        "multi_modal_projector for a vision-language model).",
    )


class QuantizationSettings(_Section):
    """How QLoRA stores the frozen base weights (bitsandbytes 4-bit)."""

    quant_type: Literal["nf4", "fp4"] = Field(
        "nf4", description="4-bit data type of the frozen weights; nf4 is the QLoRA paper's."
    )
    double_quant: bool = Field(
        True, description="Quantise the quantisation constants too (saves ~0.4 bit/param)."
    )


class MethodSection(_Section):
    """What is trained: every weight, or low-rank adapters on a frozen base."""

    kind: MethodKind = Field(
        ...,
        description="full: train every weight. lora: train adapters on a frozen base. "
        "qlora: lora on a 4-bit nf4 base (needs bitsandbytes: pip install "
        "'clinical-llm[qlora]'; runs on CUDA GPUs and, from bitsandbytes 0.49, on CPU).",
    )
    lora: LoraSettings | None = Field(
        None, description="Adapter settings; required for lora and qlora, absent for full."
    )
    quantization: QuantizationSettings | None = Field(
        None, description="4-bit settings for qlora (defaults apply when left out)."
    )
    keep_zeros: bool = Field(
        False,
        description="Keep the base's zero weights at zero: the recovery fine-tune of a pruned "
        "model (`clinical-llm compress recover`). full: their gradients are masked, so they "
        "stay exactly 0 (not under DeepSpeed ZeRO-3, where weights are partitioned). "
        "lora/qlora: the base is frozen anyway; `compress recover` zeroes them again in the "
        "merged model.",
    )


class TrainingSection(_Section):
    """Optimisation, schedule, checkpoints and where outputs go."""

    output_dir: RecipePath = Field(
        ...,
        description="Run folder: checkpoints, final adapter/model, manifest.json, logs.",
    )
    max_steps: int | None = Field(
        None, gt=0, description="Optimizer steps to run. Set this or num_epochs, not both."
    )
    num_epochs: float | None = Field(
        None, gt=0, description="Passes over the training data. Set this or max_steps."
    )
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate of torch AdamW.")
    lr_scheduler: LrScheduler = Field(
        "cosine", description="Learning-rate schedule after warmup (transformers' names)."
    )
    warmup_ratio: float = Field(
        0.03, ge=0.0, lt=1.0, description="Fraction of the steps spent warming up linearly."
    )
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW decoupled weight decay.")
    max_grad_norm: float = Field(
        1.0,
        ge=0.0,
        description="Clip gradients to this global norm (DeepSpeed gradient_clipping); 0: off.",
    )
    micro_batch_size: int = Field(
        1, ge=1, description="Examples per process per forward pass (per-device batch)."
    )
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Micro batches accumulated before each optimizer step."
    )
    seed: int = Field(42, description="Seed of data shuffling, adapter init and dropout.")
    eval_every_steps: int | None = Field(
        None,
        ge=1,
        description="Evaluate on data.eval_split every N optimizer steps; null: only at the end.",
    )
    save_every_steps: int | None = Field(
        None,
        ge=1,
        description="Save a checkpoint every N optimizer steps; null: only at the end.",
    )
    save_total_limit: int | None = Field(
        2, ge=1, description="Keep at most this many checkpoints (the best one is kept)."
    )
    logging_steps: int = Field(10, ge=1, description="Log loss and learning rate every N steps.")
    early_stopping_patience: int | None = Field(
        None,
        ge=1,
        description="Stop after this many evaluations without a lower eval loss, and end "
        "with the best checkpoint; null: never stop early.",
    )
    gradient_checkpointing: bool = Field(
        True,
        description="Recompute activations in the backward pass: far less memory, ~30% "
        "more compute.",
    )
    sparse_logits: bool = Field(
        True,
        description="Run the output head only at positions whose next token has a label "
        "(the answer tokens under assistant-only loss) and take the loss there: the same "
        "loss and gradients, without the logits of every prompt token (for a 128k "
        "vocabulary that is 2 GB of float32 logits per 4,096-token row). Needs a model "
        "whose forward takes logits_to_keep (every transformers causal LM and LLaVA); "
        "false: the model's own loss on full logits.",
    )
    cpu_threads: int | None = Field(
        None,
        ge=1,
        description="torch intra-op threads per process when training on CPU (ignored on "
        "GPU); null: the machine's cores shared out among the processes on it (2 cores, "
        "1 process: 2 threads, 1.7x faster than one; 2 processes: 1 each, so they never "
        "oversubscribe). Set 1 on a machine busy with other work, where spinning OpenMP "
        "threads were measured 2-3x slower.",
    )


class LaunchSection(_Section):
    """How the run is started, so that it can be checked before it starts."""

    accelerate_config: RecipePath | None = Field(
        None,
        description="accelerate config this recipe is launched with (recipes/accelerate/"
        "*.yaml). Its num_processes is the world size the guard expects and the dry run "
        "estimates for; its DeepSpeed file must be the recipe's. null: one process.",
    )


class TrackingSection(_Section):
    """Where metrics go. Everything stays on this machine unless a URI says otherwise."""

    backend: TrackingBackend | list[TrackingBackend] = Field(
        "tensorboard",
        description="tensorboard, mlflow, none, or a list such as [tensorboard, mlflow].",
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI; null: a local file store, file:<output_dir>/mlruns.",
    )
    experiment_name: str = Field("clinical-llm", description="MLflow experiment name.")
    run_name: str | None = Field(
        None, description="Run name in TensorBoard/MLflow; null: the output folder's name."
    )

    @property
    def backends(self) -> tuple[str, ...]:
        """The backends as a tuple, without ``none``."""
        chosen = [self.backend] if isinstance(self.backend, str) else list(self.backend)
        return tuple(b for b in chosen if b != "none")


class Recipe(_Section):
    """One fine-tuning run. See recipes/README.md for a field-by-field reference."""

    description: str = Field("", description="One line: what this recipe trains and why.")
    model: ModelSection = Field(..., description="The network to fine-tune.")
    data: DataSection = Field(..., description="The task datasets and batching.")
    method: MethodSection = Field(..., description="Full fine-tuning, LoRA or QLoRA.")
    training: TrainingSection = Field(..., description="Optimisation, schedule, checkpoints.")
    deepspeed: RecipePath | None = Field(
        None,
        description="DeepSpeed JSON (recipes/deepspeed/zero2.json, zero3.json, "
        "zero3-offload.json) or null for plain data parallel / one process.",
    )
    launch: LaunchSection = Field(
        default_factory=LaunchSection, description="How the run is launched."
    )
    tracking: TrackingSection = Field(
        default_factory=TrackingSection, description="Experiment tracking."
    )

    @model_validator(mode="after")
    def _cross_field_checks(self, info: ValidationInfo) -> Recipe:
        # load_recipe runs the checks itself to report them with file lines; direct
        # construction gets them here so no unchecked Recipe exists.
        if (info.context or {}).get("skip_cross_checks"):
            return self
        problems = run_checks({name: getattr(self, name) for name in type(self).model_fields})
        if problems:
            raise ValueError("; ".join(f"{p.path}: {p.message}" for p in problems))
        return self

    @property
    def world_size(self) -> int:
        """Processes the launch config asks for (1 without one)."""
        if self.launch.accelerate_config is None:
            return 1
        return read_accelerate_config(self.launch.accelerate_config).num_processes

    @property
    def mlflow_tracking_uri(self) -> str:
        """The MLflow URI: the recipe's, or a file store in the run folder."""
        if self.tracking.mlflow_tracking_uri:
            return self.tracking.mlflow_tracking_uri
        return (self.training.output_dir / "mlruns").resolve().as_uri()

    def to_config_dict(self) -> dict[str, Any]:
        """The resolved recipe as plain JSON types (for the run manifest)."""
        return self.model_dump(mode="json")


def resolve_dtype(dtype: str, model_config: dict[str, Any]) -> str:
    """The precision a run uses: ``dtype`` unless it is ``auto``.

    ``auto`` takes the checkpoint config's ``torch_dtype`` (transformers 5 also
    writes it as ``dtype``, and multimodal configs keep it in ``text_config``):
    bfloat16 -> bf16, float16 -> fp16, anything else or nothing -> fp32.
    """
    if dtype != "auto":
        return dtype
    text = model_config.get("text_config") or {}
    stored = (
        model_config.get("torch_dtype")
        or model_config.get("dtype")
        or text.get("torch_dtype")
        or text.get("dtype")
    )
    return {"bfloat16": "bf16", "float16": "fp16"}.get(str(stored), "fp32")


# ---------------------------------------------------------------- loading


_INVALID = object()


def _overlaps(path: str, reported: list[str]) -> bool:
    """Whether ``path`` is, contains or lies inside one of the ``reported`` paths."""
    return any(
        a == b or a.startswith(b + ".") or a.startswith(b + "[")
        for r in reported
        for a, b in ((path, r), (r, path))
    )


def _validate_section(
    name: str, data: dict[str, Any], errors: list[ErrorDetails], context: dict[str, Any]
) -> Any:
    """One top-level field validated on its own, so its cross-field rules can still run.

    A section whose own keys failed is retried without those keys (their defaults
    apply); returns ``_INVALID`` when even that fails.
    """
    info = Recipe.model_fields[name]
    if name not in data:
        return info.get_default(call_default_factory=True)
    annotation: Any = info.annotation
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    value = data[name]
    own = [e["loc"] for e in errors if e["loc"] and e["loc"][0] == name]
    if own:
        if not isinstance(value, dict) or any(len(loc) < 2 for loc in own):
            return _INVALID
        bad_keys = {loc[1] for loc in own}
        value = {k: v for k, v in value.items() if k not in bad_keys}
    try:
        return adapter.validate_python(value, context=context)
    except ValidationError:
        return _INVALID


def validate_recipe(
    data: dict[str, Any],
    *,
    source: str = "<recipe>",
    base_dir: Path | None = None,
    key_lines: dict[tuple[str | int, ...], int] | None = None,
    overrides: dict[tuple[str, ...], str] | None = None,
) -> Recipe:
    """Validate a recipe mapping, reporting every problem at once.

    Field errors (types, ranges, unknown keys with "did you mean") come from
    the schema; cross-field rules (:mod:`llm.train.recipe_checks`) run on
    every section that validated, so one typo does not hide other errors.

    Args:
        data: the merged mapping (YAML + overrides).
        source: file name used in messages.
        base_dir: folder relative paths resolve against (default: the CWD).
        key_lines: YAML line of each key path, for messages.
        overrides: ``--set`` key paths with their raw text, for messages.

    Returns:
        The validated recipe.

    Raises:
        RecipeError: one or more problems; each names its field path and location.
    """
    context = {"base_dir": base_dir or Path.cwd(), "skip_cross_checks": True}
    problems: list[Problem] = []
    sections: dict[str, Any] = {}
    recipe: Recipe | None = None
    try:
        recipe = Recipe.model_validate(data, context=context)
        sections = {name: getattr(recipe, name) for name in Recipe.model_fields}
    except ValidationError as exc:
        errors = exc.errors()
        problems = merge_same_path([problem_from_pydantic(e, Recipe) for e in errors])
        for name in Recipe.model_fields:
            section = _validate_section(name, data, errors, context)
            if section is not _INVALID:
                sections[name] = section
    # a field the schema already rejected gets no second, derived complaint
    reported = [p.path for p in problems]
    problems += [p for p in run_checks(sections) if not _overlaps(p.path, reported)]
    if problems:
        where = [locate(p.path, source, key_lines or {}, overrides or {}) for p in problems]
        raise RecipeError(source, problems, where)
    assert recipe is not None  # no problems means the schema validated
    return recipe


def load_recipe(
    path: str | Path, overrides: Sequence[str] = (), *, base_dir: Path | None = None
) -> Recipe:
    """Read a recipe: schema defaults < the YAML file < ``--set key.sub=value`` overrides.

    Args:
        path: the recipe YAML.
        overrides: ``key.sub=value`` strings, applied in order (a later one wins);
            values parse as YAML scalars, so ``false`` overrides ``true``.
        base_dir: folder relative paths resolve against; default the CWD (recipes
            are run from the repository root).

    Returns:
        The validated recipe, paths absolute.

    Raises:
        BadInputError: the file is missing or not a YAML mapping, or an override is
            malformed. RecipeError (a BadInputError) lists every schema problem.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError(f"{path}: recipe not found") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise BadInputError(f"{path}:{line}: not valid YAML: {exc.problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: a recipe must be a YAML mapping of sections")
    merged, touched = apply_overrides(data, overrides)
    return validate_recipe(
        merged,
        source=str(path),
        base_dir=base_dir,
        key_lines=yaml_key_lines(text),
        overrides=touched,
    )
