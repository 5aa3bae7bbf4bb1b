"""``compress make --method llmcompressor-*``: the spec, the calibration rows, real quantisations.

The real ones run llm-compressor's oneshot in ``build/llmcompressor-venv`` (built by the
first of them, as the OpenVINO tests build theirs; skipped, naming the component, where it
cannot be built) on a tiny Llama shaped for vLLM's CPU attention, and the gateway's vllm
backend serves what they wrote to the ``openai`` client.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from filelock import FileLock
from pydantic import ValidationError
from typer.testing import CliRunner

from llm.cli import compress as compress_cli
from llm.compress.llmcompressor import (
    LLMCompressorSpec,
    calibration_rows,
    oneshot_command,
    quantize_llmcompressor,
    write_calibration,
)
from llm.compress.llmcompressor_env import default_venv, missing_reason
from llm.errors import BadInputError
from tests.models.conftest import chat_tokenizer  # noqa: F401  (fixture)
from tests.real_components import reason, skip_without
from tests.train.fixtures import session_dir

REPO = Path(__file__).resolve().parents[2]

TEXT: dict[str, Any] = {
    "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
}
IMAGE: dict[str, Any] = {
    "messages": [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "q"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}]},
    ]
}


def _datasets(root: Path, rows: dict[str, list[dict[str, Any]]]) -> Path:
    for task, task_rows in rows.items():
        (root / task).mkdir(parents=True)
        lines = [json.dumps({**row, "task": task, "n": i}) for i, row in enumerate(task_rows)]
        (root / task / "train.jsonl").write_text("\n".join(lines) + "\n")
        (root / task / "test.jsonl").write_text(json.dumps(TEXT) + "\n")
    return root


def test_spec_names_schemes_and_bounds() -> None:
    assert LLMCompressorSpec(method="llmcompressor-w4a16").name == "llmcompressor-w4a16-g64"
    assert LLMCompressorSpec(method="llmcompressor-w8a8").name == "llmcompressor-w8a8"
    assert LLMCompressorSpec(method="llmcompressor-w8a8").scheme == "w8a8"
    with pytest.raises(ValidationError):
        LLMCompressorSpec.model_validate({"method": "llmcompressor-w2a16"})
    with pytest.raises(ValidationError):
        LLMCompressorSpec(method="llmcompressor-w8a8", calibration_samples=0)


def test_calibration_takes_train_rows_in_turn_from_each_task_and_skips_images(
    tmp_path: Path,
) -> None:
    datasets = _datasets(tmp_path, {"a": [TEXT, IMAGE, TEXT, TEXT], "b": [IMAGE, TEXT]})
    rows = calibration_rows(datasets, 4)
    assert [where for where, _ in rows] == [
        "a/train.jsonl:1",
        "b/train.jsonl:2",
        "a/train.jsonl:3",
        "a/train.jsonl:4",
    ]
    # one task folder on its own works too
    assert len(calibration_rows(datasets / "a", 3)) == 3
    with pytest.raises(BadInputError, match="4 text-only train rows, fewer than"):
        calibration_rows(datasets, 5)


def test_calibration_never_reads_other_splits(tmp_path: Path) -> None:
    (tmp_path / "task").mkdir()
    (tmp_path / "task" / "test.jsonl").write_text(json.dumps(TEXT) + "\n")
    with pytest.raises(BadInputError, match=r"no train\.jsonl"):
        calibration_rows(tmp_path, 1)


def test_calibration_file_holds_chat_tokens_cut_to_the_length(
    tmp_path: Path, source_model: Path
) -> None:
    long: dict[str, Any] = {
        "messages": [{"role": "user", "content": "word " * 400}, TEXT["messages"][1]]
    }
    datasets = _datasets(tmp_path / "data", {"a": [TEXT, long]})
    spec = LLMCompressorSpec(method="llmcompressor-w8a8", calibration_samples=2, max_seq_length=32)
    out = tmp_path / "calibration.jsonl"
    record = write_calibration(source_model, datasets, spec, out)
    lengths = [len(json.loads(line)["input_ids"]) for line in out.read_text().splitlines()]
    assert record["split"] == "train" and record["samples"] == 2
    assert record["tokens"] == sum(lengths) and max(lengths) == 32


def test_oneshot_command_passes_the_scheme_and_grouping(tmp_path: Path) -> None:
    spec = LLMCompressorSpec(method="llmcompressor-w4a16", group_size=32)
    command = oneshot_command(
        tmp_path / "python", tmp_path / "src", tmp_path / "out", tmp_path / "c.jsonl", spec
    )
    assert command[1] == "-I" and command[2].endswith("llmcompressor_oneshot.py")
    assert command[command.index("--scheme") + 1] == "w4a16"
    assert command[command.index("--group-size") + 1] == "32"


def test_a_missing_venv_is_named_with_the_command_that_builds_it(
    tmp_path: Path, source_model: Path
) -> None:
    spec = LLMCompressorSpec(method="llmcompressor-w8a8")
    with pytest.raises(BadInputError, match=r"scripts/llmcompressor_env\.py"):
        quantize_llmcompressor(
            source_model, tmp_path / "out", spec, datasets=tmp_path, venv=tmp_path / "no-venv"
        )


def _app() -> typer.Typer:
    app = typer.Typer()
    compress_cli.register(app)

    @app.callback()
    def _root() -> None:
        """Root, so that ``compress`` stays a sub-command."""

    return app


@pytest.mark.parametrize(
    ("method", "extra", "message"),
    [
        ("llmcompressor-w8a8", [], "give --calibration-data"),
        ("int8-dynamic", ["--calibration-data", "x"], "--calibration-data does not apply"),
        ("llmcompressor-w4a16", ["--sparsity", "0.5"], "--sparsity does not apply"),
    ],
)
def test_make_checks_the_calibration_options(
    tmp_path: Path, method: str, extra: list[str], message: str
) -> None:
    args = ["compress", "make", str(tmp_path), "--method", method, "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(_app(), [*args, *extra])
    assert result.exit_code != 0
    assert message in str(result.exception)


@pytest.fixture(scope="module")
def vllm_shaped_model(tmp_path_factory: pytest.TempPathFactory, chat_tokenizer: Any) -> Path:  # noqa: F811
    """A random 2-layer Llama with head_dim 64 (vLLM's CPU attention refuses 16)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        intermediate_size=256,
        vocab_size=len(chat_tokenizer),
        max_position_embeddings=512,
    )
    folder = tmp_path_factory.mktemp("llmcompressor-source") / "base"
    LlamaForCausalLM(config).float().eval().save_pretrained(folder)
    chat_tokenizer.save_pretrained(folder)
    return folder


_QUANTIZED: dict[str, tuple[Path, dict[str, Any]]] = {}


def ensure_llmcompressor_venv_or_skip(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Build or reuse build/llmcompressor-venv (as the OpenVINO tests build theirs); skip,
    naming the component, where it cannot be built (no package index)."""
    if missing_reason(default_venv()) is None:
        return
    with FileLock(str(session_dir(tmp_path_factory) / "llmcompressor-venv.lock")):
        try:
            subprocess.run(
                [sys.executable, str(REPO / "scripts" / "llmcompressor_env.py")],
                check=True,
                timeout=1800,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            skip_without("llmcompressor", f"cannot build the llm-compressor venv: {exc}")


def _quantized(
    tmp_path_factory: pytest.TempPathFactory, source: Path, method: str
) -> tuple[Path, dict[str, Any]]:
    """``source`` quantised by ``method`` (once per module: the oneshot takes ~10 s)."""
    ensure_llmcompressor_venv_or_skip(tmp_path_factory)
    if method not in _QUANTIZED:
        root = tmp_path_factory.mktemp(method)
        datasets = _datasets(root / "data", {"a": [TEXT] * 4, "b": [TEXT] * 4})
        spec = LLMCompressorSpec.model_validate(
            {"method": method, "group_size": 32, "calibration_samples": 8, "max_seq_length": 64}
        )
        result = quantize_llmcompressor(source, root / "out", spec, datasets=datasets)
        _QUANTIZED[method] = (result.out, result.manifest)
    return _QUANTIZED[method]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "weights_format"),
    [("llmcompressor-w8a8", "int-quantized"), ("llmcompressor-w4a16", "pack-quantized")],
)
def test_oneshot_writes_compressed_tensors_with_a_manifest(
    tmp_path_factory: pytest.TempPathFactory,
    vllm_shaped_model: Path,
    method: str,
    weights_format: str,
) -> None:
    out, manifest = _quantized(tmp_path_factory, vllm_shaped_model, method)
    config = json.loads((out / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "compressed-tensors"
    assert config["format"] == weights_format and config["ignore"] == ["lm_head"]
    assert manifest["kind"] == "model-compress" and manifest["format"] == "compressed-tensors"
    calibration = manifest["calibration"]
    assert calibration["split"] == "train" and calibration["samples"] == 8
    assert (out / "tokenizer.json").is_file() and (out / "tokenizer_config.json").is_file()
    assert not list(out.parent.glob(".*partial*"))


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.parametrize("method", ["llmcompressor-w8a8", "llmcompressor-w4a16"])
def test_the_gateway_serves_the_folder_through_vllm_to_the_openai_client(
    tmp_path_factory: pytest.TempPathFactory, vllm_shaped_model: Path, method: str
) -> None:
    # issue: "compressed-tensors output through vllm": the gateway's vllm backend on vLLM's
    # CPU build loads the folder with its int8 (W8A8) or int4 (W4A16) kernels and serves it
    pytest.importorskip("vllm", reason=reason("vllm", "vLLM is not installed"))
    openai = pytest.importorskip("openai", reason=reason("openai", "no openai client"))
    from serving.app import create_app
    from serving.auth import KeyRing
    from serving.backends.base import BackendSettings
    from serving.backends.vllm_backend import VLLMBackend
    from serving.config import ServeConfig
    from serving.server import BackgroundServer

    out, _ = _quantized(tmp_path_factory, vllm_shaped_model, method)
    work = tmp_path_factory.mktemp(f"{method}-serve")
    options = {"work_dir": str(work), "max_model_len": 256}  # dtype auto: bf16 where the CPU has it
    backend = VLLMBackend(BackendSettings(method, str(out), {}, options))
    config = ServeConfig(
        backend="vllm",
        model_name=method,
        model_path=str(out),
        backend_options=options,
        audit_log=work / "audit.jsonl",
        audit_key_file=work / "audit-hmac.key",
        port=0,
    )
    server = BackgroundServer(create_app(backend, config, KeyRing([])), start_timeout_s=600)
    server.start()
    try:
        assert backend.engine.model_config.quantization == "compressed-tensors"
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list().data] == [method]
        messages: Any = [{"role": "user", "content": "hello"}]
        whole = client.chat.completions.create(
            model=method, messages=messages, max_tokens=8, temperature=0
        )
        assert whole.usage is not None and whole.usage.completion_tokens >= 1
        stream = client.chat.completions.create(
            model=method, messages=messages, max_tokens=8, temperature=0, stream=True
        )
        streamed = "".join(c.delta.content or "" for event in stream for c in event.choices)
        assert streamed == whole.choices[0].message.content  # same greedy answer, in pieces
    finally:
        server.stop()
