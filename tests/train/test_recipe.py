"""Recipe schema, loading and overrides: defaults < YAML < --set, every error at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from llm.errors import BadInputError
from llm.train.recipe import (
    Recipe,
    RecipeError,
    load_recipe,
    resolve_dtype,
)

REPO = Path(__file__).resolve().parents[2]


def base_recipe() -> dict[str, Any]:
    """A small valid recipe (paths relative to the test's base_dir)."""
    return {
        "model": {"config": "model/config.json"},
        "data": {"dataset_dir": "datasets", "tasks": ["diagnosis", "readmission"]},
        "method": {"kind": "lora", "lora": {"r": 8, "alpha": 16}},
        "training": {"output_dir": "runs/x", "max_steps": 10},
    }


def write(tmp_path: Path, data: dict[str, Any], text: str | None = None) -> Path:
    (tmp_path / "model").mkdir(exist_ok=True)
    (tmp_path / "model" / "config.json").write_text('{"model_type": "llama"}')
    path = tmp_path / "recipe.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(data, sort_keys=False))
    return path


def load(tmp_path: Path, data: dict[str, Any], overrides: list[str] | None = None) -> Recipe:
    return load_recipe(write(tmp_path, data), overrides or [], base_dir=tmp_path)


def problems_of(exc: RecipeError) -> dict[str, str]:
    return {p.path: p.message for p in exc.problems}


# ---------------------------------------------------------------- defaults < YAML < CLI


def test_schema_defaults_fill_what_the_yaml_leaves_out(tmp_path: Path) -> None:
    recipe = load(tmp_path, base_recipe())
    assert recipe.training.seed == 42
    assert recipe.data.packing is False
    assert recipe.data.assistant_only_loss is True
    assert recipe.model.attn_implementation == "sdpa"
    assert recipe.tracking.backends == ("tensorboard",)
    assert recipe.world_size == 1


def test_yaml_overrides_defaults_and_set_overrides_yaml(tmp_path: Path) -> None:
    data = base_recipe()
    data["data"]["packing"] = True
    data["training"]["learning_rate"] = 1e-3
    recipe = load(
        tmp_path,
        data,
        ["data.packing=false", "training.max_steps=3", "training.seed=7", "training.seed=8"],
    )
    assert recipe.data.packing is False  # false overrides a true from the file
    assert recipe.training.max_steps == 3
    assert recipe.training.learning_rate == 1e-3  # YAML value kept where no --set
    assert recipe.training.seed == 8  # a later --set wins


def test_set_parses_yaml_values_and_creates_missing_sections(tmp_path: Path) -> None:
    data = base_recipe()
    del data["method"]["lora"]
    data["method"]["kind"] = "full"
    recipe = load(
        tmp_path,
        data,
        [
            "method.kind=lora",
            "method.lora.r=4",
            "data.tasks=[summary]",
            "tracking.backend=[tensorboard, mlflow]",
        ],
    )
    assert recipe.method.lora is not None and recipe.method.lora.r == 4
    assert recipe.data.tasks == ["summary"]
    assert recipe.tracking.backends == ("tensorboard", "mlflow")


def test_set_null_clears_a_value(tmp_path: Path) -> None:
    data = base_recipe()
    data["data"]["eval_split"] = "validation"
    assert load(tmp_path, data, ["data.eval_split=null"]).data.eval_split is None


# ---------------------------------------------------------------- errors


def test_every_problem_is_reported_at_once_with_field_paths_and_lines(tmp_path: Path) -> None:
    text = """\
model:
  config: model/config.json
  dtype: float64
data:
  dataset_dir: datasets
  tasks: [diagnosis]
method:
  kind: lora
  lora: {r: 0, alpha: 16}
training:
  output_dir: runs/x
  max_steps: 10
  num_epochs: 1
"""
    path = write(tmp_path, {}, text)
    with pytest.raises(RecipeError) as info:
        load_recipe(path, base_dir=tmp_path)
    found = problems_of(info.value)
    assert set(found) == {"model.dtype", "method.lora.r", "training.max_steps"}
    assert "both set" in found["training.max_steps"]
    message = str(info.value)
    assert message.startswith(f"3 problems in recipe {path}")
    assert f"{path}:3: model.dtype" in message
    assert f"{path}:9: method.lora.r" in message
    assert f"{path}:12: training.max_steps" in message


def test_unknown_key_suggests_the_closest_field(tmp_path: Path) -> None:
    data = base_recipe()
    data["training"]["max_step"] = 5
    data["trainig"] = {}
    with pytest.raises(RecipeError) as info:
        load(tmp_path, data)
    found = problems_of(info.value)
    assert "did you mean 'max_steps'?" in found["training.max_step"]
    assert "did you mean 'training'" in found["trainig"]


def test_unknown_key_from_set_is_located_at_the_override(tmp_path: Path) -> None:
    with pytest.raises(RecipeError) as info:
        load(tmp_path, base_recipe(), ["training.learning_rat=1e-4"])
    assert info.value.locations == ["--set training.learning_rat=1e-4"]
    assert "did you mean 'learning_rate'?" in info.value.problems[0].message


def test_missing_required_field_quotes_its_description(tmp_path: Path) -> None:
    data = base_recipe()
    del data["training"]["output_dir"]
    with pytest.raises(RecipeError) as info:
        load(tmp_path, data)
    assert problems_of(info.value)["training.output_dir"].startswith("required: Run folder")


def test_unknown_task_suggests_a_name(tmp_path: Path) -> None:
    data = base_recipe()
    data["data"]["tasks"] = ["diagnosis", "readmision"]
    with pytest.raises(RecipeError, match="did you mean 'readmission'"):
        load(tmp_path, data)


def test_cross_field_rules_still_run_when_another_section_has_a_typo(tmp_path: Path) -> None:
    data = base_recipe()
    data["model"]["dtyp"] = "bf16"  # a field error in one section ...
    data["training"]["num_epochs"] = 2  # ... does not hide a rule broken in another
    with pytest.raises(RecipeError) as info:
        load(tmp_path, data)
    assert set(problems_of(info.value)) == {"model.dtyp", "training.max_steps"}


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    if value is _DELETE:
        node.pop(last, None)
    else:
        node[last] = value


_DELETE = object()

CROSS_FIELD_CASES = [
    ({"training.max_steps": _DELETE}, "training.max_steps", "set training.max_steps or"),
    ({"method.kind": "qlora", "method.lora": _DELETE}, "method.lora", "clinical-llm[qlora]"),
    ({"method.lora": _DELETE}, "method.lora", "needs adapter settings"),
    ({"method.kind": "full"}, "method.lora", "remove method.lora"),
    ({"method.lora.target_modules": []}, "method.lora.target_modules", "at least one"),
    ({"method.quantization": {"quant_type": "nf4"}}, "method.quantization", "qlora"),
    ({"model.config": _DELETE}, "model", "model.base"),
    ({"model.config": "nowhere.json"}, "model.config", "file not found"),
    ({"data.tasks": ["radiology_impression"]}, "data.tasks", "model.multimodal: true"),
    ({"model.multimodal": True, "data.packing": True}, "data.packing", "multimodal"),
    (
        {"model.attn_implementation": "flash_attention_2", "model.dtype": "fp32"},
        "model.attn_implementation",
        "bf16 or fp16",
    ),
    (
        {"model.attn_implementation": "sdpa_varlen", "data.packing": False},
        "model.attn_implementation",
        "set data.packing: true",
    ),
    (
        {
            "training.early_stopping_patience": 2,
            "training.eval_every_steps": 3,
            "training.save_every_steps": 4,
        },
        "training.save_every_steps",
        "multiple of eval_every_steps",
    ),
    ({"training.early_stopping_patience": 2}, "training.eval_every_steps", "needs"),
    (
        {"training.eval_every_steps": 5, "data.eval_split": None},
        "data.eval_split",
        "set it to validation",
    ),
    ({"tracking.backend": ["mlflow", "none"]}, "tracking.backend", "cannot be combined"),
    ({"deepspeed": "nowhere.json"}, "deepspeed", "file not found"),
]


@pytest.mark.parametrize(("changes", "path", "fragment"), CROSS_FIELD_CASES)
def test_cross_field_rule(
    tmp_path: Path, changes: dict[str, Any], path: str, fragment: str
) -> None:
    data = base_recipe()
    for dotted, value in changes.items():
        _set(data, dotted, value)
    with pytest.raises(RecipeError) as info:
        load(tmp_path, data)
    found = problems_of(info.value)
    assert path in found, found
    assert fragment in found[path]


def test_qlora_with_zero3_is_refused(tmp_path: Path) -> None:
    data = base_recipe()
    data["method"]["kind"] = "qlora"
    data["deepspeed"] = str(REPO / "recipes/deepspeed/zero3.json")
    with pytest.raises(RecipeError) as info:
        load(tmp_path, data)
    assert "zero2.json" in problems_of(info.value)["method.kind"]


def test_deepspeed_optimizer_block_is_refused(tmp_path: Path) -> None:
    ds = tmp_path / "ds.json"
    ds.write_text('{"optimizer": {"type": "AdamW"}, "zero_optimization": {"stage": 2}}')
    data = base_recipe()
    data["deepspeed"] = "ds.json"
    with pytest.raises(RecipeError) as info:
        load(tmp_path, data)
    assert "optimizer" in problems_of(info.value)["deepspeed"]


def test_accelerate_config_must_launch_the_recipes_deepspeed_file(tmp_path: Path) -> None:
    data = base_recipe()
    data["deepspeed"] = str(REPO / "recipes/deepspeed/zero3.json")
    data["launch"] = {"accelerate_config": str(REPO / "recipes/accelerate/cpu-zero2.yaml")}
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, data), base_dir=REPO)
    assert "make them the same file" in problems_of(info.value)["deepspeed"]


def test_accelerate_config_that_would_start_one_process_is_refused(tmp_path: Path) -> None:
    acc = tmp_path / "acc.yaml"
    acc.write_text("distributed_type: 'NO'\nnum_processes: 2\n")
    data = base_recipe()
    data["launch"] = {"accelerate_config": "acc.yaml"}
    with pytest.raises(RecipeError) as info:
        load(tmp_path, data)
    assert "would start ONE" in problems_of(info.value)["launch.accelerate_config"]


def test_cpu_launch_refuses_gpu_only_settings(tmp_path: Path) -> None:
    data = base_recipe()
    data["model"]["dtype"] = "fp16"
    data["deepspeed"] = str(REPO / "recipes/deepspeed/zero2.json")
    data["launch"] = {"accelerate_config": str(REPO / "recipes/accelerate/cpu-zero2.yaml")}
    with pytest.raises(RecipeError) as info:
        load(tmp_path, data)
    assert "fp16 needs a GPU" in problems_of(info.value)["model.dtype"]


def test_direct_model_validate_runs_the_cross_field_rules_too(tmp_path: Path) -> None:
    data = base_recipe()
    data["model"]["config"] = str(write(tmp_path, {}).parent / "model/config.json")
    data["training"]["num_epochs"] = 1
    with pytest.raises(ValidationError, match="both set"):
        Recipe.model_validate(data)


# ---------------------------------------------------------------- paths and derived values


def test_relative_paths_resolve_against_the_base_dir(tmp_path: Path) -> None:
    recipe = load(tmp_path, base_recipe())
    assert recipe.data.dataset_dir == tmp_path / "datasets"
    assert recipe.training.output_dir == tmp_path / "runs/x"
    assert recipe.model.config == tmp_path / "model/config.json"


def test_relative_paths_default_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe(write(tmp_path, base_recipe()))
    assert recipe.data.dataset_dir == tmp_path / "datasets"


def test_mlflow_defaults_to_a_file_store_in_the_run_folder(tmp_path: Path) -> None:
    recipe = load(tmp_path, base_recipe())
    assert recipe.mlflow_tracking_uri == (tmp_path / "runs/x/mlruns").as_uri()
    remote = load(tmp_path, base_recipe(), ["tracking.mlflow_tracking_uri=http://mlflow:5000"])
    assert remote.mlflow_tracking_uri == "http://mlflow:5000"


def test_recipe_file_errors(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="recipe not found"):
        load_recipe(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  base: [unclosed\n")
    with pytest.raises(BadInputError, match=r"bad.yaml:\d+: not valid YAML"):
        load_recipe(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(BadInputError, match="YAML mapping"):
        load_recipe(listing)


@pytest.mark.parametrize(
    ("dtype", "config", "expected"),
    [
        ("bf16", {"torch_dtype": "float32"}, "bf16"),
        ("auto", {"torch_dtype": "bfloat16"}, "bf16"),
        ("auto", {"dtype": "float16"}, "fp16"),
        ("auto", {"text_config": {"torch_dtype": "float16"}}, "fp16"),
        ("auto", {}, "fp32"),
    ],
)
def test_resolve_dtype(dtype: str, config: dict[str, Any], expected: str) -> None:
    assert resolve_dtype(dtype, config) == expected


def test_every_field_has_a_description() -> None:
    from pydantic import BaseModel

    def walk(model: type[BaseModel]) -> list[str]:
        missing = []
        for name, info in model.model_fields.items():
            if not info.description:
                missing.append(f"{model.__name__}.{name}")
            annotation = info.annotation
            for candidate in (annotation, *getattr(annotation, "__args__", ())):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    missing += walk(candidate)
        return missing

    assert walk(Recipe) == []
