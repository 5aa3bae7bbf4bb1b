"""Helpers of the export tests: small run folders made in-test, runs made by training, and
loading an export in a fresh interpreter.

The small runs (:func:`make_lora_run`, :func:`make_full_run`) hold real peft
adapters and real safetensors models around a tiny random Llama, with a run
manifest carrying the fields export reads; they keep the rule checks fast.
The runs of real training (2-process ZeRO-3, the vision-language model) are
made once per session through the real launcher, like tests/train/fixtures.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from filelock import FileLock

from tests.train.conftest import tiny_llama
from tests.train.fixtures import (
    TrainingAssets,
    asset_overrides,
    check_launch,
    launch,
    session_dir,
)

REPO = Path(__file__).resolve().parents[2]
ZERO3 = "recipes/accelerate/cpu-zero3.yaml"
MESSAGES = [
    {"role": "system", "content": "You are a clinical assistant. Answer with yes or no."},
    {"role": "user", "content": "71 year old woman with COPD, cough and fever. Readmitted?"},
]
NEW_TOKENS = 6
TEXTS = ["CHIEF COMPLAINT: cough and fever for three days.", "Labs: WBC 14.2 K/uL, lactate 2.1"]


# ---------------------------------------------------------------- small runs made in-test


def make_base(root: Path, tokenizer: Any) -> Path:
    """A tiny random Llama with the chat tokenizer and a manifest, saved as a base folder."""
    base = root / "base"
    model = tiny_llama(len(tokenizer), "sdpa")
    model.save_pretrained(str(base))
    tokenizer.save_pretrained(str(base))
    (base / "manifest.json").write_text(json.dumps({"kind": "base_model"}))
    return base


def write_run_manifest(run: Path, base: Path, method: str, global_step: int = 2) -> Path:
    """The fields of a training run manifest that export reads."""
    run.mkdir(parents=True, exist_ok=True)
    manifest = {
        "kind": "train",
        "model": {"base": str(base), "method": method, "multimodal": False},
        "results": {"global_step": global_step},
    }
    path = run / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2))
    return path


def make_lora_run(root: Path, base: Path, tokenizer: Any) -> Path:
    """A run folder with LoRA adapters in checkpoint-1, checkpoint-2 and final (B non-zero)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    run = root / "lora-run"
    model = AutoModelForCausalLM.from_pretrained(str(base), local_files_only=True)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"
    )
    tuned = get_peft_model(model, config)
    for seed, folder in ((1, "checkpoint-1"), (2, "checkpoint-2"), (2, "final")):
        torch.manual_seed(seed)
        with torch.no_grad():
            for name, p in tuned.named_parameters():
                if "lora_B" in name:
                    p.copy_(torch.randn_like(p) * 0.05)
        tuned.save_pretrained(str(run / folder))
        tokenizer.save_pretrained(str(run / folder))
    write_run_manifest(run, base, "lora")
    return run


def make_full_run(root: Path, base: Path, tokenizer: Any) -> Path:
    """A run folder whose final/ is the base with every weight nudged (a full fine-tune)."""
    from transformers import AutoModelForCausalLM

    run = root / "full-run"
    model = AutoModelForCausalLM.from_pretrained(str(base), local_files_only=True)
    torch.manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    model.save_pretrained(str(run / "final"))
    tokenizer.save_pretrained(str(run / "final"))
    write_run_manifest(run, base, "full")
    return run


# ---------------------------------------------------------------- runs of real training


def _shared_run(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    accelerate_config: str | None,
    recipe: str,
    overrides: list[str],
) -> Path:
    shared = session_dir(tmp_path_factory)
    out = shared / name
    with FileLock(str(shared / f"{name}.lock")):
        if not (out / "manifest.json").is_file():
            log = shared / f"{name}.log"
            check_launch(launch(accelerate_config, recipe, overrides, log), log)
    return out


def zero3_full_run(assets: TrainingAssets, factory: pytest.TempPathFactory) -> Path:
    """2-process ZeRO-3 full fine-tune, 2 steps, with checkpoint-2 (gathered + shards)."""
    out = session_dir(factory) / "export-zero3-full"
    overrides = [
        *asset_overrides(assets, out),
        "training.max_steps=2",
        "training.save_every_steps=2",
        "training.learning_rate=0.001",
        "data.max_train_examples=8",
        "data.eval_split=null",
        "tracking.backend=none",
    ]
    return _shared_run(factory, out.name, ZERO3, "recipes/tiny-full-zero3-cpu.yaml", overrides)


def zero3_lora_run(assets: TrainingAssets, factory: pytest.TempPathFactory) -> Path:
    """2-process ZeRO-3 LoRA run, 2 steps."""
    out = session_dir(factory) / "export-zero3-lora"
    overrides = [
        *asset_overrides(assets, out),
        "training.max_steps=2",
        "data.max_train_examples=8",
        "data.eval_split=null",
        "tracking.backend=none",
    ]
    return _shared_run(factory, out.name, ZERO3, "recipes/tiny-lora-zero3-cpu.yaml", overrides)


def vl_lora_run(assets: TrainingAssets, factory: pytest.TempPathFactory) -> Path:
    """One-process LoRA run of the tiny vision-language model (projector trained in full)."""
    out = session_dir(factory) / "export-vl-lora"
    overrides = [
        *asset_overrides(assets, out, multimodal=True),
        "training.max_steps=1",
        # no warm-up: with one step a warm-up would leave the learning rate at 0
        "training.warmup_ratio=0",
        "data.max_train_examples=4",
        "data.eval_split=null",
        "tracking.backend=none",
    ]
    return _shared_run(factory, out.name, None, "recipes/tiny-vl-cpu.yaml", overrides)


# ---------------------------------------------------------------- loading and comparing

# Loads an export in a new interpreter and decodes greedily from the chat template.
# For merged and full exports peft is made unimportable: they must load without it.
FRESH_LOAD = r"""
import json, sys
folder, mode = sys.argv[1], sys.argv[2]
if mode != "adapter":
    sys.modules["peft"] = None
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from llm.models.loading import load_causal_lm
if mode == "adapter":
    from peft import PeftModel
    base = json.load(open(folder + "/adapter_config.json"))["base_model_name_or_path"]
    model, _ = load_causal_lm(base, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
else:
    plain = AutoModelForCausalLM.from_pretrained(
        folder, local_files_only=True, use_safetensors=True
    )
    model, tokenizer = load_causal_lm(folder)
messages = json.loads(sys.argv[3])
inputs = tokenizer.apply_chat_template(
    messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
)
model.eval()
with torch.no_grad():
    ids = model.generate(**inputs, max_new_tokens=int(sys.argv[4]), do_sample=False)
print(json.dumps({"ids": ids[0, inputs["input_ids"].shape[1]:].tolist(),
                  "dtype": str(next(model.parameters()).dtype)}))
"""


def load_in_fresh_process(folder: Path, mode: str) -> dict[str, Any]:
    """Load ``folder`` (mode ``adapter``, or ``model`` without peft) in a new interpreter;
    return its greedy continuation of :data:`MESSAGES` and its dtype."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            FRESH_LOAD,
            str(folder),
            mode,
            json.dumps(MESSAGES),
            str(NEW_TOKENS),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        pytest.fail(f"loading {folder} in a fresh process failed:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def greedy_ids(model: Any, tokenizer: Any) -> list[int]:
    """The greedy continuation of :data:`MESSAGES` (what :func:`load_in_fresh_process` does)."""
    inputs = tokenizer.apply_chat_template(
        MESSAGES, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    model.eval()
    with torch.no_grad():
        ids = model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False)
    return [int(i) for i in ids[0, inputs["input_ids"].shape[1] :]]


def text_logits(model: Any, tokenizer: Any) -> torch.Tensor:
    """Logits of :data:`TEXTS` (padded batch)."""
    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


def base_plus_adapter(base: Path, adapter: Path) -> tuple[Any, Any]:
    """The base in fp32 with the adapter applied (peft), and the base's tokenizer."""
    from peft import PeftModel

    from llm.models.loading import load_causal_lm

    model, tokenizer = load_causal_lm(base, dtype=torch.float32)
    return PeftModel.from_pretrained(model, str(adapter)).eval(), tokenizer


def read_json(path: Path) -> Any:
    """A JSON file."""
    return json.loads(path.read_text())
