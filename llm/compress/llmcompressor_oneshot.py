"""llm-compressor's one-shot quantisation, run *inside* the llm-compressor venv.

Usage (what :mod:`llm.compress.llmcompressor` runs, with that venv's interpreter)::

    build/llmcompressor-venv/bin/python llm/compress/llmcompressor_oneshot.py \\
        --model SRC --out DIR --scheme w8a8|w4a16 --calibration calibration.jsonl

This file imports nothing from the project: the venv holds llm-compressor and its own
transformers, not the project's packages. The calibration file is JSON lines of
``{"input_ids": [...]}``, tokenised by the caller with the project's chat template (train
split only). Schemes, both GPTQ (one Hessian per linear layer from the calibration tokens):

* ``w8a8``: SmoothQuant (activation outliers moved into the weights), then int8 weights with
  one symmetric scale per output channel, and int8 activations quantised per token at run
  time (llm-compressor's ``W8A8`` preset);
* ``w4a16``: int4 weights, symmetric, one scale per ``group_size`` inputs; activations stay
  in the model's dtype.

The output head (``lm_head``, tied to the embeddings in small models) is left alone. The
folder is written in compressed-tensors format (``save_compressed=True``), which vLLM reads.
The last stdout line is a JSON object with what was done.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

KEPT_MODULES = ["lm_head"]


def _recipe(scheme: str, group_size: int, smoothing_strength: float) -> list[Any]:
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from llmcompressor.modifiers.quantization import GPTQModifier
    from llmcompressor.modifiers.transform.smoothquant import SmoothQuantModifier

    if scheme == "w8a8":
        return [
            SmoothQuantModifier(smoothing_strength=smoothing_strength),
            GPTQModifier(targets="Linear", scheme="W8A8", ignore=KEPT_MODULES),
        ]
    weights = QuantizationArgs(
        num_bits=4, type="int", symmetric=True, strategy="group", group_size=group_size
    )
    group = QuantizationScheme(targets=["Linear"], weights=weights)
    return [GPTQModifier(config_groups={"group_0": group}, ignore=KEPT_MODULES)]


def _calibration(path: Path) -> Any:
    from datasets import Dataset

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    ids = [row["input_ids"] for row in rows]
    return Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(i) for i in ids]})


def main() -> int:
    """Quantise ``--model`` into ``--out``; print a JSON summary as the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scheme", choices=("w8a8", "w4a16"), required=True)
    parser.add_argument("--calibration", type=Path, required=True)
    parser.add_argument("--max-seq-length", type=int, default=512)
    parser.add_argument("--group-size", type=int, default=64)
    parser.add_argument("--smoothing-strength", type=float, default=0.8)
    args = parser.parse_args()

    import llmcompressor
    import torch
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM

    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        args.model,
        dtype="auto",
        local_files_only=True,
        use_safetensors=True,
        trust_remote_code=False,
    )
    dataset = _calibration(args.calibration)
    loaded = time.perf_counter()
    oneshot(
        model=model,
        dataset=dataset,
        recipe=_recipe(args.scheme, args.group_size, args.smoothing_strength),
        max_seq_length=args.max_seq_length,
        num_calibration_samples=len(dataset),
        shuffle_calibration_samples=False,
    )
    calibrated = time.perf_counter()
    model.save_pretrained(args.out, save_compressed=True)
    summary = {
        "scheme": args.scheme,
        "calibration_samples": len(dataset),
        "calibration_tokens": sum(len(i) for i in dataset["input_ids"]),
        "seconds": {
            "load": round(loaded - started, 2),
            "oneshot": round(calibrated - loaded, 2),
            "save": round(time.perf_counter() - calibrated, 2),
        },
        "torch_threads": torch.get_num_threads(),
        "llmcompressor": llmcompressor.__version__,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
