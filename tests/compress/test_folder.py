"""``compress_model``: every method writes a folder that loads back, with its manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from llm.compress.folder import MANIFEST_KIND, compress_model
from llm.compress.methods import CompressionSpec
from llm.errors import BadInputError
from llm.manifest import file_sha256
from llm.models.loading import load_causal_lm

IDS = torch.tensor([[5, 17, 42, 99, 123, 7, 64, 250]])


def _logits(folder: Path) -> torch.Tensor:
    model, _ = load_causal_lm(folder)
    with torch.no_grad():
        return model(IDS).logits


@pytest.mark.parametrize(
    ("method", "subclass"),
    [("int8-dynamic", "Int8Tensor"), ("int4-weight-only", "IntxUnpackedToInt8Tensor")],
)
def test_quantised_folder_loads_back_from_safetensors_without_pickle(
    source_model: Path, tmp_path: Path, method: str, subclass: str
) -> None:
    spec = CompressionSpec(method=method)
    result = compress_model(source_model, tmp_path / "out", spec)
    out = result.out
    assert sorted(p.name for p in out.glob("*.safetensors")) == ["model.safetensors"]
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pt"))
    with safe_open(str(out / "model.safetensors"), "pt") as fh:
        metadata = fh.metadata()
    # torchao's tensor subclasses are described in JSON metadata, not pickled
    assert subclass in metadata["model.layers.0.mlp.up_proj.weight"]
    config = json.loads((out / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "torchao"
    model, tokenizer = load_causal_lm(out)
    assert type(model.model.layers[0].mlp.up_proj.weight).__name__ == subclass
    assert type(model.lm_head.weight) is torch.nn.Parameter  # the head is left alone
    assert tokenizer.chat_template
    # close to the source model's outputs, but not the same numbers
    source, quantised = _logits(source_model), _logits(out)
    assert not torch.equal(source, quantised)
    assert torch.corrcoef(torch.stack([source.flatten(), quantised.flatten()]))[0, 1] > 0.9
    assert result.size_bytes < 0.8 * (source_model / "model.safetensors").stat().st_size


def test_pruned_folder_is_dense_safetensors_with_the_zeros(
    source_model: Path, tmp_path: Path
) -> None:
    spec = CompressionSpec(method="prune-unstructured", sparsity=0.5)
    result = compress_model(source_model, tmp_path / "out", spec)
    model, _ = load_causal_lm(result.out)
    weight = model.model.layers[1].self_attn.q_proj.weight
    assert (weight == 0).float().mean().item() == pytest.approx(0.5, abs=0.01)
    assert result.manifest["compression"]["pruning"]["zero_share"] == pytest.approx(0.5, abs=1e-3)


def test_manifest_names_method_source_hashes_sizes_and_libraries(
    source_model: Path, tmp_path: Path
) -> None:
    spec = CompressionSpec(method="prune-2:4")
    result = compress_model(source_model, tmp_path / "out", spec)
    manifest = json.loads((result.out / "manifest.json").read_text())
    assert manifest["kind"] == MANIFEST_KIND
    assert manifest["compression"]["method"] == "prune-2:4"
    source_files = manifest["source"]["files"]
    assert source_files["model.safetensors"] == file_sha256(source_model / "model.safetensors")
    assert manifest["files"]["model.safetensors"] == file_sha256(result.out / "model.safetensors")
    assert manifest["size"]["weights_bytes"] == (result.out / "model.safetensors").stat().st_size
    assert manifest["libraries"]["torchao"] == "0.18.0"
    assert manifest["libraries"]["torch"]


def test_refuses_to_overwrite_what_compress_did_not_write(
    source_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(BadInputError, match="not an earlier `compress` output"):
        compress_model(source_model, out, CompressionSpec(method="prune-2:4"))
    assert (out / "notes.txt").read_text() == "keep me"


def test_refuses_an_already_quantised_source(source_model: Path, tmp_path: Path) -> None:
    first = compress_model(
        source_model,
        tmp_path / "int8",
        CompressionSpec(method="int8-dynamic"),
    )
    with pytest.raises(BadInputError, match="already quantised"):
        compress_model(first.out, tmp_path / "again", CompressionSpec(method="prune-2:4"))


def test_group_size_that_does_not_divide_a_layer_is_refused_before_loading(
    source_model: Path, tmp_path: Path
) -> None:
    spec = CompressionSpec(method="int4-weight-only", group_size=48)
    with pytest.raises(BadInputError, match="--group-size 48 does not divide"):
        compress_model(source_model, tmp_path / "out", spec)
    assert not (tmp_path / "out").exists()
