"""Export rules on small run folders made in-test: adapter folders, full-weight copies,
checkpoint choice, the output folder, the manifest, errors, the CLI and weights-only shards."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import typer
from safetensors.torch import load_file
from typer.testing import CliRunner

from llm.cli import export as export_cli
from llm.errors import BadInputError
from llm.export import export_run
from llm.export.merge_worker import worker_env
from llm.export.zero import FORCE_WEIGHTS_ONLY_ENV, weights_only_shards
from llm.manifest import file_sha256
from tests.export.helpers import make_base, make_full_run, make_lora_run, read_json
from tests.train.conftest import chat_tokenizer  # noqa: F401  (fixture)


@pytest.fixture
def base(tmp_path: Path, chat_tokenizer: Any) -> Path:  # noqa: F811
    return make_base(tmp_path, chat_tokenizer)


@pytest.fixture
def lora_run(tmp_path: Path, base: Path, chat_tokenizer: Any) -> Path:  # noqa: F811
    return make_lora_run(tmp_path, base, chat_tokenizer)


@pytest.fixture
def full_run(tmp_path: Path, base: Path, chat_tokenizer: Any) -> Path:  # noqa: F811
    return make_full_run(tmp_path, base, chat_tokenizer)


# ---------------------------------------------------------------- adapter export


def test_adapter_export_points_at_the_base_and_records_hashes(
    lora_run: Path, base: Path, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    result = export_run(lora_run, out)
    assert result.format == "adapter" and result.name == "lora-run" and result.dtype is None
    names = {p.name for p in out.iterdir()}
    assert {
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "manifest.json",
    } <= names
    assert not any(n.endswith((".bin", ".pt", ".pth")) for n in names)
    config = read_json(out / "adapter_config.json")
    assert config["base_model_name_or_path"] == str(base.resolve())
    assert config["inference_mode"] is True
    saved = load_file(str(lora_run / "final" / "adapter_model.safetensors"))
    exported = load_file(str(out / "adapter_model.safetensors"))
    assert saved.keys() == exported.keys()
    assert all(torch.equal(saved[k], exported[k]) for k in saved)

    manifest = read_json(out / "manifest.json")
    assert manifest["kind"] == "export" and manifest["format"] == "adapter"
    assert manifest["name"] == "lora-run"
    source = manifest["source"]
    assert source["run_manifest_sha256"] == file_sha256(lora_run / "manifest.json")
    assert source["checkpoint"] == "final" and source["global_step"] == 2
    assert manifest["base_model"]["path"] == str(base.resolve())
    assert manifest["base_model"]["manifest_sha256"] == file_sha256(base / "manifest.json")
    # the model card is named, not hashed: `eval run` rewrites its evaluation section
    assert manifest["card"] == "README.md"
    assert set(manifest["files"]) == names - {"manifest.json", "README.md"}
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == file_sha256(out / name)
        assert entry["bytes"] == (out / name).stat().st_size


def test_adapter_dtype_casts_the_adapter_weights(lora_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    result = export_run(lora_run, out, dtype="bf16", name="readmit-v1")
    weights = load_file(str(out / "adapter_model.safetensors"))
    assert {v.dtype for v in weights.values()} == {torch.bfloat16}
    assert result.name == "readmit-v1" and read_json(out / "manifest.json")["dtype"] == "bf16"


def test_checkpoints_are_chosen_by_name_or_latest(lora_run: Path, tmp_path: Path) -> None:
    latest = export_run(lora_run, tmp_path / "latest", checkpoint="latest")
    assert latest.source.checkpoint == "checkpoint-2"
    first = export_run(lora_run, tmp_path / "first", checkpoint="checkpoint-1")
    assert read_json(first.manifest_path)["source"]["global_step"] == 1
    saved = load_file(str(lora_run / "checkpoint-1" / "adapter_model.safetensors"))
    exported = load_file(str(tmp_path / "first" / "adapter_model.safetensors"))
    assert all(torch.equal(saved[k], exported[k]) for k in saved)
    with pytest.raises(BadInputError, match="available: checkpoint-1, checkpoint-2, final"):
        export_run(lora_run, tmp_path / "x", checkpoint="checkpoint-7")


# ---------------------------------------------------------------- full fine-tunes


def test_full_finetune_final_is_copied_with_tokenizer_and_manifest(
    full_run: Path, tmp_path: Path
) -> None:
    from llm.models.loading import load_causal_lm

    out = tmp_path / "export"
    result = export_run(full_run, out)
    assert result.format == "full" and result.dtype == "fp32"
    assert (out / "model.safetensors").read_bytes() == (
        full_run / "final" / "model.safetensors"
    ).read_bytes()
    assert (out / "chat_template.jinja").is_file() and (out / "generation_config.json").is_file()
    _model, tokenizer = load_causal_lm(out)
    assert tokenizer.chat_template is not None
    assert read_json(out / "manifest.json")["source"]["method"] == "full"


# ---------------------------------------------------------------- the output folder


def test_an_earlier_export_is_replaced_and_other_folders_are_refused(
    lora_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    export_run(lora_run, out, checkpoint="checkpoint-1")
    export_run(lora_run, out)  # replaces it whole
    assert read_json(out / "manifest.json")["source"]["checkpoint"] == "final"
    assert not [p for p in tmp_path.iterdir() if ".export-" in p.name]  # no staging left

    (out / "notes.txt").write_text("mine")
    with pytest.raises(BadInputError, match=r"does not list \(notes.txt\)"):
        export_run(lora_run, out)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "weights.safetensors").write_text("x")
    with pytest.raises(BadInputError, match="not an earlier export"):
        export_run(lora_run, foreign)
    with pytest.raises(BadInputError, match="not an earlier export"):
        export_run(lora_run, lora_run)  # the run folder itself (its manifest is a train one)
    assert (foreign / "weights.safetensors").read_text() == "x"


def test_a_failed_export_leaves_nothing_behind(
    lora_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llm.export import exporter

    def fail(*args: Any, **kwargs: Any) -> None:
        raise BadInputError("tokenizer refused")

    monkeypatch.setattr(exporter, "save_processing", fail)
    out = tmp_path / "export"
    with pytest.raises(BadInputError, match="tokenizer refused"):
        export_run(lora_run, out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".export-" in p.name]


# ---------------------------------------------------------------- bad input


def test_run_folders_without_manifest_or_models_are_refused(
    lora_run: Path, base: Path, tmp_path: Path
) -> None:
    with pytest.raises(BadInputError, match="run folder not found"):
        export_run(tmp_path / "nowhere", tmp_path / "o")
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(BadInputError, match=r"no manifest\.json"):
        export_run(bare, tmp_path / "o")
    (bare / "manifest.json").write_text(json.dumps({"kind": "eval-subgroups"}))
    with pytest.raises(BadInputError, match="kind: expected 'train'"):
        export_run(bare, tmp_path / "o")
    empty = tmp_path / "empty-run"
    shutil.copytree(lora_run, empty, ignore=shutil.ignore_patterns("final", "checkpoint-*"))
    with pytest.raises(BadInputError, match=r"no final/ and no checkpoint-N/"):
        export_run(empty, tmp_path / "o")
    (empty / "final").mkdir()
    with pytest.raises(BadInputError, match="holds no exportable model"):
        export_run(empty, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_merge_of_a_full_finetune_is_refused(full_run: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=r"--merge: .* is a full fine-tune"):
        export_run(full_run, tmp_path / "o", merge=True)


def test_a_missing_base_model_is_named(lora_run: Path, tmp_path: Path) -> None:
    manifest = read_json(lora_run / "manifest.json")
    manifest["model"]["base"] = str(tmp_path / "moved-base")
    (lora_run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BadInputError, match=r"model.base .*moved-base is not a model folder"):
        export_run(lora_run, tmp_path / "o")


def test_bad_name_and_dtype_are_refused(lora_run: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="--name 'a b'"):
        export_run(lora_run, tmp_path / "o", name="a b")
    with pytest.raises(BadInputError, match="--dtype int8"):
        export_run(lora_run, tmp_path / "o", dtype="int8")


def test_deepspeed_shards_need_the_explicit_flag(full_run: Path, tmp_path: Path) -> None:
    checkpoint = full_run / "checkpoint-4"
    (checkpoint / "global_step4").mkdir(parents=True)
    shutil.copyfile(full_run / "final" / "config.json", checkpoint / "config.json")
    (checkpoint / "latest").write_text("global_step4")
    (checkpoint / "global_step4" / "zero_pp_rank_0_mp_rank_00_model_states.pt").write_bytes(b"")
    with pytest.raises(BadInputError, match="--allow-deepspeed-shards"):
        export_run(full_run, tmp_path / "o", checkpoint="checkpoint-4")


# ---------------------------------------------------------------- weights-only shard loading


class _Payload:
    """An arbitrary class: unpickling it would run its module's code."""


def test_shard_loading_is_weights_only_even_when_asked_otherwise(tmp_path: Path) -> None:
    from deepspeed.runtime.zero.config import ZeroStageEnum

    good, bad = tmp_path / "good.pt", tmp_path / "bad.pt"
    torch.save({"w": torch.ones(2), "stage": ZeroStageEnum.weights}, good)
    torch.save({"w": torch.ones(2), "payload": _Payload()}, bad)
    before = os.environ.get(FORCE_WEIGHTS_ONLY_ENV)
    with weights_only_shards():
        # DeepSpeed's zero_to_fp32 passes weights_only=False; the forced setting wins
        state = torch.load(good, map_location="cpu", weights_only=False)
        assert state["stage"] == ZeroStageEnum.weights
    with pytest.raises(BadInputError, match="outside the allowlist"), weights_only_shards():
        torch.load(bad, map_location="cpu", weights_only=False)
    assert os.environ.get(FORCE_WEIGHTS_ONLY_ENV) == before


def test_worker_environment_drops_launcher_state(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "WORLD_SIZE": "2",
        "RANK": "1",
        "LOCAL_RANK": "1",
        "MASTER_PORT": "29500",
        "ACCELERATE_USE_DEEPSPEED": "true",
        "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3",
        "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1",
    }.items():
        monkeypatch.setenv(key, value)
    env = worker_env()
    assert not {"WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_PORT"} & env.keys()
    assert not [k for k in env if k.startswith("ACCELERATE_")]
    assert env["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] == "1" and env["HF_HUB_OFFLINE"] == "1"
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in env


# ---------------------------------------------------------------- CLI


def _app() -> typer.Typer:
    app = typer.Typer()
    export_cli.register(app)
    app.callback()(lambda: None)
    return app


def test_cli_exports_and_prints_one_summary_line(lora_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    result = CliRunner().invoke(
        _app(), ["export", str(lora_run), "--out", str(out), "--name", "readmit"]
    )
    assert result.exit_code == 0, result.output
    assert "exported final" in result.stdout and str(out) in result.stdout
    assert "as adapter 'readmit'" in result.stdout
    assert read_json(out / "manifest.json")["name"] == "readmit"


def test_cli_bad_input_exits_2_and_help_covers_every_option(full_run: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _app(), ["export", str(full_run), "--out", str(tmp_path / "o"), "--merge"]
    )
    assert isinstance(result.exception, BadInputError) and result.exception.exit_code == 2
    help_text = CliRunner().invoke(_app(), ["export", "--help"]).stdout
    for option in ("--out", "--merge", "--checkpoint", "--dtype", "--name", "--allow-deepspeed"):
        assert option in help_text
