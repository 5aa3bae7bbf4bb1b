"""Assets of the ``eval run`` tests, built once per test session with the project's commands.

* a 40-patient synthetic cohort (``data synth``) and its five task datasets (``data build``);
* ``tiny``: the tiny clinical Llama from ``model init --steps 5`` (a real model folder with a
  manifest; barely trained, so its answers are mostly blank lines);
* ``random``: a 2-layer Llama with random weights and the same tokenizer, saved as a
  safetensors folder. Its greedy outputs differ from prompt to prompt, which makes it the
  sharper model for checking that two runners give the same completions.

With pytest-xdist every worker asks for them; a file lock makes the first one build and the
others wait (the pattern of tests/train/fixtures.py, whose session-dir helper is reused).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

from tests.train.fixtures import session_dir

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "clinical-llm")
TASKS = "diagnosis,readmission,summary,radiology_impression,ecg_rhythm"
TIMEOUT_S = 600


@dataclass(frozen=True)
class EvalAssets:
    """Where the session's datasets and models are."""

    datasets: Path
    tiny: Path
    random: Path


def _run(argv: list[str], log: Path) -> None:
    with log.open("w") as out:
        proc = subprocess.run(
            argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, timeout=TIMEOUT_S
        )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({proc.returncode}):\n{log.read_text()[-4000:]}"
        )


def save_random_model(tokenizer_dir: Path, out: Path, *, seed: int = 0) -> Path:
    """A randomly initialised 2-layer Llama with ``tokenizer_dir``'s tokenizer, as safetensors."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    config = LlamaConfig(
        # head_dim 32: vLLM's CPU attention has kernels for 32 and up, not 16
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=128,
        vocab_size=len(tokenizer),
        max_position_embeddings=2048,
        # wider than the default 0.02: peaked logits, so greedy picks are not near-ties
        initializer_range=0.2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _build(root: Path) -> EvalAssets:
    assets = EvalAssets(root / "datasets", root / "tiny", root / "random")
    if (root / "done").exists():
        return assets
    cohort = root / "cohort"
    _run([CLI, "data", "synth", "--patients", "40", "--seed", "3", "--out", str(cohort)],
         root / "synth.log")  # fmt: skip
    _run([CLI, "data", "build", "--records", str(cohort / "records.jsonl"), "--tasks", TASKS,
          "--seed", "3", "--out", str(assets.datasets)], root / "build.log")  # fmt: skip
    _run([CLI, "model", "init", "--records", str(cohort / "records.jsonl"), "--out",
          str(assets.tiny), "--steps", "5", "--exclude-eval-patients-of", str(assets.datasets)],
         root / "model.log")  # fmt: skip
    save_random_model(assets.tiny, assets.random)
    (root / "done").write_text("ok\n")
    return assets


@pytest.fixture(scope="session")
def eval_assets(tmp_path_factory: pytest.TempPathFactory) -> EvalAssets:
    """Datasets of all five tasks, the tiny model and a random-weight twin (built once)."""
    shared = session_dir(tmp_path_factory)
    root = shared / "eval-run-assets"
    root.mkdir(exist_ok=True)
    with FileLock(str(shared / "eval-run-assets.lock")):
        return _build(root)
