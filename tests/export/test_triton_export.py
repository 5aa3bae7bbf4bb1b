"""``export --triton``: repository layout, config.pbtxt as Triton parses it, refusals, the CLI,
and the exported model code's decoding (without a server; tests/serving/backends/
test_triton_backend.py loads the same repository in a real Triton server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import typer
from typer.testing import CliRunner

from llm.cli import export as export_cli
from llm.errors import BadInputError
from llm.export.triton import export_triton
from llm.export.triton_model import Decoding, GenerationInputError, TextGenerator
from llm.manifest import file_sha256
from tests.export.helpers import make_base
from tests.real_components import import_or_skip
from tests.train.conftest import chat_tokenizer  # noqa: F401  (fixture)

MESSAGES = [{"role": "user", "content": "71 year old woman with COPD. Readmitted?"}]


@pytest.fixture
def base(tmp_path: Path, chat_tokenizer: Any) -> Path:  # noqa: F811
    return make_base(tmp_path, chat_tokenizer)


def test_repository_layout_manifest_and_config(base: Path, tmp_path: Path) -> None:
    text_format = import_or_skip("google.protobuf.text_format", "triton")
    model_config_pb2 = import_or_skip("tritonclient.grpc.model_config_pb2", "triton")
    out = tmp_path / "repo"
    result = export_triton(base, out, name="tiny")
    model = out / "tiny"
    assert (model / "1" / "model.py").read_text() == (
        Path(__file__).parents[2] / "llm" / "export" / "triton_model.py"
    ).read_text()
    weights = model / "1" / "hf_model"
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= {
        p.name for p in weights.iterdir()
    }
    config = text_format.Parse((model / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert config.name == "tiny" and config.backend == "python" and config.max_batch_size == 0
    assert config.model_transaction_policy.decoupled
    assert [i.name for i in config.input if not i.optional] == ["max_tokens"]
    assert [o.name for o in config.output] == [
        "text",
        "finish_reason",
        "token_count",
        "prompt_tokens",
    ]
    assert config.parameters["max_model_len"].string_value == "2048" == str(result.max_model_len)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "export" and manifest["format"] == "triton"
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == files - {"manifest.json"}
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == file_sha256(out / name)


def test_re_export_replaces_an_earlier_repository_and_refuses_foreign_folders(
    base: Path, tmp_path: Path
) -> None:
    out = tmp_path / "repo"
    export_triton(base, out, name="tiny", decoupled=False)
    export_triton(base, out, name="tiny2")
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "tiny2"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    with pytest.raises(BadInputError, match="not an earlier export"):
        export_triton(base, foreign)


def test_adapter_folders_vision_models_and_bad_names_are_refused(
    base: Path, tmp_path: Path
) -> None:
    with pytest.raises(BadInputError, match="--name"):
        export_triton(base, tmp_path / "a", name="bad name")
    with pytest.raises(BadInputError, match="neither a training run"):
        export_triton(tmp_path, tmp_path / "b")
    (base / "adapter_config.json").write_text("{}")
    with pytest.raises(BadInputError, match="an adapter folder"):
        export_triton(base, tmp_path / "c")
    (base / "adapter_config.json").unlink()
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**config, "vision_config": {}}))
    with pytest.raises(BadInputError, match="vision-language"):
        export_triton(base, tmp_path / "d")
    assert not (tmp_path / "d").exists()  # nothing half-written


def test_cli_export_triton_writes_the_repository(base: Path, tmp_path: Path) -> None:
    app = typer.Typer()
    export_cli.register(app)
    app.callback()(lambda: None)
    out = tmp_path / "repo"
    result = CliRunner().invoke(app, ["export", str(base), "--triton", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "base" / "config.pbtxt").is_file()
    assert "Triton model 'base'" in result.output


# ---------------------------------------------------------------- the model code itself


@pytest.fixture
def generator(base: Path) -> TextGenerator:
    return TextGenerator(base)


def test_greedy_decoding_equals_model_generate(generator: TextGenerator) -> None:
    ids = generator.prompt_ids(None, MESSAGES)
    deltas = list(generator.generate(ids, Decoding(max_tokens=20, temperature=0.0)))
    with torch.no_grad():
        expected = generator.model.generate(
            torch.tensor([ids]), max_new_tokens=20, do_sample=False, use_cache=True
        )[0, len(ids) :].tolist()
    text = generator.tokenizer.decode(expected, skip_special_tokens=True)
    assert "".join(d.text for d in deltas) == text
    assert sum(d.token_count for d in deltas) == len(expected) == 20
    assert [d.finish_reason for d in deltas][-1] == "length"
    assert all(d.finish_reason == "" for d in deltas[:-1])


def test_a_tiny_top_p_samples_the_top_token(generator: TextGenerator) -> None:
    ids = generator.prompt_ids("Labs: WBC", None)
    greedy = "".join(d.text for d in generator.generate(ids, Decoding(10, temperature=0.0)))
    # what the gateway's triton backend sends for top_p=5e-324 (float32 would make it 0),
    # and 0 itself should it ever get past the input check: only the top token is kept
    for top_p in (1.1754944e-38, 0.0):
        decoding = Decoding(10, temperature=1.0, top_p=top_p, seed=3)
        assert "".join(d.text for d in generator.generate(ids, decoding)) == greedy


def test_stop_strings_are_held_back_and_cut(generator: TextGenerator) -> None:
    ids = generator.prompt_ids("Labs: WBC", None)
    full = "".join(d.text for d in generator.generate(ids, Decoding(20, temperature=0.0)))
    stop = full[6:9]
    assert stop.strip() and full.index(stop) >= 1
    deltas = list(generator.generate(ids, Decoding(20, temperature=0.0, stop=(stop,))))
    assert "".join(d.text for d in deltas) == full[: full.index(stop)]
    assert deltas[-1].finish_reason == "stop"


def test_seeded_sampling_reproduces_and_limits_are_checked(generator: TextGenerator) -> None:
    ids = generator.prompt_ids("Labs: WBC", None)

    def sample(seed: int) -> str:
        decoding = Decoding(12, temperature=1.0, top_p=0.9, seed=seed)
        return "".join(d.text for d in generator.generate(ids, decoding))

    assert sample(3) == sample(3)
    with pytest.raises(GenerationInputError, match="exceeds the model's context of 2048"):
        list(generator.generate(ids, Decoding(max_tokens=2048)))
    with pytest.raises(GenerationInputError, match="exactly one"):
        generator.prompt_ids("x", MESSAGES)
