"""Every recipe under recipes/ validates, opens with the command that runs it, and dry-runs."""

from __future__ import annotations

import builtins
import shlex
from pathlib import Path
from typing import Any

import pytest

from llm.cli.train import main
from llm.train.recipe import load_recipe

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "recipes").glob("*.yaml"))
REAL_MODELS = [p for p in RECIPES if not p.name.startswith("tiny-")]


@pytest.fixture(autouse=True)
def _from_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # recipes are run from the repository root: their relative paths resolve there
    monkeypatch.chdir(REPO)


def test_the_promised_recipes_ship() -> None:
    names = {p.name for p in RECIPES}
    assert {
        "tiny-lora-cpu.yaml",
        "tiny-lora-zero3-cpu.yaml",
        "tiny-full-zero3-cpu.yaml",
        "tiny-vl-cpu.yaml",
        "llama-3.1-8b-lora-zero2.yaml",
        "llama-3.1-8b-full-zero3.yaml",
        "qwen2.5-7b-qlora.yaml",
        "meditron-7b-lora.yaml",
        "llava-1.5-7b-vl-lora.yaml",
    } <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_validates(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.description


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_opens_with_the_command_that_runs_it(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ")
    words = shlex.split(first[2:])
    assert f"recipes/{path.name}" in words
    recipe = load_recipe(path)
    if recipe.launch.accelerate_config is None:
        assert words[:2] == ["clinical-llm", "train"]
    else:
        # the command launches with the very accelerate config the recipe declares
        start = words.index("accelerate")
        assert words[start : start + 2] == ["accelerate", "launch"]
        config = words[words.index("--config_file") + 1]
        assert REPO / config == recipe.launch.accelerate_config
        assert words[words.index("-m") + 1] == "llm.train"
        if recipe.world_size > 1 and "cpu" in config:
            assert any(w.startswith("TORCH_EXTENSIONS_DIR=") for w in words[:start])


@pytest.mark.parametrize("path", REAL_MODELS, ids=lambda p: p.name)
def test_real_model_recipes_ship_the_architecture_config(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.model.config is not None and recipe.model.config.is_file()
    assert recipe.model.config.parent.parent == REPO / "recipes/model_configs"


def test_cli_reports_every_recipe_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            str(REPO / "recipes/tiny-lora-cpu.yaml"),
            "--set",
            "training.num_epochs=2",
            "--set",
            "method.lora.rank=4",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "2 problems in recipe" in err
    assert "--set method.lora.rank=4: method.lora.rank: unknown key" in err
    assert "training.max_steps: max_steps and num_epochs are both set" in err


def test_cli_without_the_train_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_import = builtins.__import__

    def without_torch(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "llm.train.trainer":
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_torch)
    code = main([str(REPO / "recipes/tiny-lora-cpu.yaml")])
    assert code == 2
    err = capsys.readouterr().err
    assert "training needs the train extra (torch is not installed)" in err
    assert "pip install 'clinical-llm[train]'" in err


@pytest.mark.slow
def test_cli_dry_run_of_the_8b_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["recipes/llama-3.1-8b-lora-zero2.yaml", "--dry-run", "--set", "data.max_length=2048"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "8,030,261,248" in out
    assert "4 × 4 × 8 × 2048 = 262,144" in out
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("dry run of recipes/llama-3.1-8b-lora-zero2.yaml: 8.03 B parameters")
    assert "41,943,040 trainable" in summary


def test_readme_documents_every_recipe_field() -> None:
    from pydantic import BaseModel

    from llm.train.recipe import Recipe

    def fields(model: type[BaseModel], prefix: str = "") -> dict[str, str]:
        found = {}
        for name, info in model.model_fields.items():
            found[prefix + name] = info.description or ""
            for candidate in (info.annotation, *getattr(info.annotation, "__args__", ())):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    found |= fields(candidate, f"{prefix}{name}.")
        return found

    readme = (REPO / "recipes/README.md").read_text()
    rows = {line.split(" | ")[0]: line for line in readme.splitlines() if line.startswith("| `")}
    documented = fields(Recipe)
    missing = [p for p in documented if f"| `{p}`" not in rows]
    assert missing == []
    # each row carries the schema's own description (a table cell escapes "|")
    stale = [p for p, d in documented.items() if d.replace("|", "\\|") not in rows[f"| `{p}`"]]
    assert stale == []
    for path in RECIPES:
        assert f"`{path.name}`" in readme
