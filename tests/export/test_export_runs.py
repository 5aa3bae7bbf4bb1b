"""Exports of real training runs: LoRA (2-process ZeRO-2, shared with the training tests),
2-process ZeRO-3 full and LoRA runs, and the tiny vision-language model.

Each check loads what export wrote the way a server would: merged and full
models in a fresh interpreter where peft cannot be imported, adapters on
their base with peft; merged logits must equal base + adapter logits.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from llm.errors import BadInputError
from llm.export import export_run
from llm.models.loading import load_causal_lm
from tests.export.helpers import (
    REPO,
    base_plus_adapter,
    greedy_ids,
    load_in_fresh_process,
    read_json,
    text_logits,
    vl_lora_run,
    zero3_full_run,
    zero3_lora_run,
)
from tests.train.fixtures import (
    TrainingAssets,
    training_assets,  # noqa: F401  (fixture)
    training_env,
    zero2_lora_run,  # noqa: F401  (fixture)
)

pytestmark = pytest.mark.slow

TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


def _differs_from_base(exported: Path, base: Path) -> list[str]:
    tuned = load_file(str(exported / "model.safetensors"))
    original = load_file(str(base / "model.safetensors"))
    assert tuned.keys() == original.keys()
    assert all(tuned[k].shape == original[k].shape for k in original)  # whole, not partitions
    return [k for k in original if not torch.equal(tuned[k].float(), original[k].float())]


# ---------------------------------------------------------------- LoRA (ZeRO-2 run)


def test_lora_adapter_export_loads_on_its_base_in_a_fresh_process(
    zero2_lora_run: Path,  # noqa: F811
    training_assets: TrainingAssets,  # noqa: F811
    tmp_path: Path,
) -> None:
    out = tmp_path / "adapter"
    result = export_run(zero2_lora_run, out, name="tiny-lora")
    assert result.format == "adapter"
    config = read_json(out / "adapter_config.json")
    assert config["base_model_name_or_path"] == str(training_assets.model.resolve())
    manifest = read_json(out / "manifest.json")
    assert manifest["base_model"]["manifest_sha256"] is not None
    assert manifest["source"]["global_step"] == 4

    model, tokenizer = base_plus_adapter(training_assets.model, zero2_lora_run / "final")
    fresh = load_in_fresh_process(out, "adapter")
    assert fresh["ids"] == greedy_ids(model, tokenizer)


def test_lora_merge_equals_base_plus_adapter_even_beside_a_zero3_config(
    zero2_lora_run: Path,  # noqa: F811
    training_assets: TrainingAssets,  # noqa: F811
    tmp_path: Path,
) -> None:
    from transformers.integrations import HfDeepSpeedConfig
    from transformers.integrations.deepspeed import (
        is_deepspeed_zero3_enabled,
        unset_hf_deepspeed_config,
    )

    # What a process that just trained under ZeRO-3 holds: a registered ZeRO-3 config that
    # would make any from_pretrained here load partitioned. The merge runs in its own process.
    registered = HfDeepSpeedConfig(
        {"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": 1}
    )
    out = tmp_path / "merged"
    try:
        assert is_deepspeed_zero3_enabled()
        result = export_run(zero2_lora_run, out, merge=True, checkpoint="latest")
    finally:
        unset_hf_deepspeed_config()
        del registered
    assert result.format == "merged" and result.source.checkpoint == "checkpoint-4"
    assert not (out / "adapter_config.json").exists()
    assert len(_differs_from_base(out, training_assets.model)) > 0

    reference, tokenizer = base_plus_adapter(training_assets.model, zero2_lora_run / "checkpoint-4")
    merged, merged_tokenizer = load_causal_lm(out)
    assert merged_tokenizer.chat_template == tokenizer.chat_template
    expected = text_logits(reference, tokenizer)
    torch.testing.assert_close(text_logits(merged, tokenizer), expected, **TOLERANCE)
    base, _ = load_causal_lm(training_assets.model, dtype=torch.float32)
    assert not torch.allclose(text_logits(base, tokenizer), expected, **TOLERANCE)

    fresh = load_in_fresh_process(out, "model")  # peft made unimportable there
    assert fresh["ids"] == greedy_ids(reference, tokenizer)


# ---------------------------------------------------------------- ZeRO-3, two processes


def test_zero3_full_run_exports_final_and_consolidates_checkpoint_shards(
    training_assets: TrainingAssets,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
) -> None:
    run = zero3_full_run(training_assets, tmp_path_factory)
    assert read_json(run / "manifest.json")["world_size"] == 2

    final = export_run(run, tmp_path / "final")
    assert final.format == "full"
    changed = _differs_from_base(tmp_path / "final", training_assets.model)
    assert len(changed) > 10, "most weights should have moved"
    reference, tokenizer = load_causal_lm(run / "final")
    fresh = load_in_fresh_process(tmp_path / "final", "model")
    assert fresh["ids"] == greedy_ids(reference, tokenizer)

    # checkpoint-2 as a ZeRO-3 run without stage3_gather_16bit_weights_on_model_save saves
    # it: DeepSpeed's shards only. Consolidated, they must equal what DeepSpeed gathered.
    shards_run = tmp_path / "shards-run"
    shards_run.mkdir()
    (shards_run / "manifest.json").write_bytes((run / "manifest.json").read_bytes())
    subprocess.run(["cp", "-r", str(run / "checkpoint-2"), str(shards_run)], check=True)
    gathered = load_file(str(shards_run / "checkpoint-2" / "model.safetensors"))
    (shards_run / "checkpoint-2" / "model.safetensors").unlink()
    with pytest.raises(BadInputError, match="--allow-deepspeed-shards"):
        export_run(shards_run, tmp_path / "shards", checkpoint="latest")
    result = export_run(
        shards_run, tmp_path / "shards", checkpoint="latest", allow_deepspeed_shards=True
    )
    manifest = read_json(result.manifest_path)
    assert manifest["source"]["consolidated_from_deepspeed_shards"] is True
    assert manifest["weights"]["tied"] == []  # the tiny Llama's lm_head is untied
    consolidated = load_file(str(tmp_path / "shards" / "model.safetensors"))
    assert consolidated.keys() == gathered.keys()
    assert all(torch.equal(consolidated[k], gathered[k]) for k in gathered)
    model, _ = load_causal_lm(tmp_path / "shards")
    assert torch.equal(model.lm_head.weight, consolidated["lm_head.weight"])
    assert torch.equal(model.model.embed_tokens.weight, consolidated["model.embed_tokens.weight"])


def test_zero3_lora_run_merges_through_the_cli_in_another_process(
    training_assets: TrainingAssets,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
) -> None:
    run = zero3_lora_run(training_assets, tmp_path_factory)
    assert read_json(run / "manifest.json")["world_size"] == 2
    out = tmp_path / "merged"
    # the export command through its own Typer app (the lead wires it into `clinical-llm`)
    cli = (
        "import sys, typer\n"
        "from llm.cli import export\n"
        "app = typer.Typer()\n"
        "export.register(app)\n"
        "app.callback()(lambda: None)\n"
        "app(sys.argv[1:])\n"
    )
    argv = [sys.executable, "-c", cli, "export", str(run), "--out", str(out), "--merge"]
    proc = subprocess.run(
        [*argv, "--name", "tiny-z3", "--dtype", "fp32"],
        cwd=REPO,
        env=training_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "as merged 'tiny-z3'" in proc.stdout and str(out) in proc.stdout
    assert len(_differs_from_base(out, training_assets.model)) > 0
    reference, tokenizer = base_plus_adapter(training_assets.model, run / "final")
    merged, _ = load_causal_lm(out)
    torch.testing.assert_close(
        text_logits(merged, tokenizer), text_logits(reference, tokenizer), **TOLERANCE
    )


# ---------------------------------------------------------------- vision-language (LLaVA)


def _image_inputs(processor: Any, assets: TrainingAssets) -> Any:
    from PIL import Image

    image_path = next((assets.datasets / "assets").rglob("*.png"))
    messages = [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": "Findings?"}],
        }
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return processor(
        text=[text], images=[Image.open(image_path).convert("RGB")], return_tensors="pt"
    )


def test_multimodal_adapter_and_merge_keep_the_processor(
    training_assets: TrainingAssets,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
) -> None:
    from peft import PeftModel
    from transformers import AutoProcessor

    from llm.models.loading import load_vision_language_model

    run = vl_lora_run(training_assets, tmp_path_factory)
    adapter = export_run(run, tmp_path / "adapter")
    assert adapter.format == "adapter"
    for name in ("processor_config.json", "chat_template.jinja", "tokenizer.json"):
        assert (tmp_path / "adapter" / name).is_file(), name
    weights = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    assert any("multi_modal_projector" in k for k in weights)

    merged_dir = tmp_path / "merged"
    export_run(run, merged_dir, merge=True)
    assert (merged_dir / "processor_config.json").is_file()
    processor = AutoProcessor.from_pretrained(merged_dir, local_files_only=True)
    inputs = _image_inputs(processor, training_assets)

    base, _ = load_vision_language_model(training_assets.vlm, dtype=torch.float32)
    reference = PeftModel.from_pretrained(base, str(run / "final")).eval()
    merged, _ = load_vision_language_model(merged_dir, dtype=torch.float32)
    with torch.no_grad():
        expected = reference(**inputs).logits
        torch.testing.assert_close(merged.eval()(**inputs).logits, expected, **TOLERANCE)
    projector = load_file(str(merged_dir / "model.safetensors"))
    original = load_file(str(training_assets.vlm / "model.safetensors"))
    moved = [k for k in original if "projector" in k and not torch.equal(projector[k], original[k])]
    assert moved, "the trained projector (modules_to_save) should be in the merged model"
