"""Peak memory of one model, loaded and generating, measured in a process of its own.

:func:`measure_peak_memory` runs ``python -m eval.compression.memory FOLDER`` and reads one
JSON line back (no pickle). The child imports only the runtime that serves the folder
(torch and transformers for a model folder, as the ``transformers`` backend and the local
runner load it; ``openvino-genai`` alone for an OpenVINO IR, as ``serve --backend openvino``
does), notes its peak resident set size (``runtime_rss_bytes``: the libraries, no model
yet), then loads the model and generates ``new_tokens`` tokens greedily from the speed
prompt (:data:`PROMPT`) and notes the peak again
(``peak_rss_bytes``). Both are the kernel's high-water mark of the child's address
space (``VmHWM`` in ``/proc/self/status``), so nothing between two samples is missed.
``peak - runtime`` is what the model itself took.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm.errors import BadInputError
from llm.models.openvino_ir import PRECISIONS, Precision, compile_properties, is_openvino_ir

MEMORY_TIMEOUT_S = 1800
# the one prompt of the speed and the memory measures; defined here, where no torch is
# imported (eval.compression.speed imports torch at its top)
PROMPT = (
    "Summarise the hospital course of a 64-year-old patient admitted with community-acquired "
    "pneumonia, treated with antibiotics and discharged on day five."
)


@dataclass(frozen=True)
class PeakMemory:
    """A model's peak resident memory, loading and generating, in its own process."""

    runtime_rss_bytes: int
    peak_rss_bytes: int

    @property
    def model_rss_bytes(self) -> int:
        """What loading and running the model added to the runtime's libraries."""
        return self.peak_rss_bytes - self.runtime_rss_bytes

    def as_json(self) -> dict[str, Any]:
        """The entry in ``report.json``."""
        return {
            "peak_rss_bytes": self.peak_rss_bytes,
            "runtime_rss_bytes": self.runtime_rss_bytes,
            "model_rss_bytes": self.model_rss_bytes,
        }


def _peak_rss_bytes() -> int:
    # VmHWM: the high-water mark of this process's own address space. Not ru_maxrss: Linux
    # carries the parent's peak into a child's ru_maxrss across fork and exec, so a child
    # of the report (torch and models loaded) would report at least the report's size.
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _run_torch(folder: Path, new_tokens: int) -> int:
    import torch

    from llm.models.loading import load_causal_lm

    runtime = _peak_rss_bytes()
    model: Any
    tokenizer: Any
    model, tokenizer = load_causal_lm(folder)
    ids: Any = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    with torch.inference_mode():
        model.eval().generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    return runtime


def _run_openvino(folder: Path, new_tokens: int, precision: Precision) -> int:
    import openvino_genai

    runtime = _peak_rss_bytes()
    pipeline = openvino_genai.LLMPipeline(str(folder), "CPU", **compile_properties(precision))
    config = pipeline.get_generation_config()
    config.max_new_tokens = new_tokens
    config.min_new_tokens = new_tokens
    config.do_sample = False
    # the chat template of the folder's OpenVINO tokenizer, as the serving backend renders it
    pipeline.generate(PROMPT, config)
    return runtime


def measure_peak_memory(
    folder: Path,
    *,
    new_tokens: int = 64,
    openvino_precision: Precision = "default",
    timeout_s: float = MEMORY_TIMEOUT_S,
) -> PeakMemory:
    """Load ``folder`` and generate in a fresh process; its peak memory (module docstring).

    Raises:
        BadInputError: the child failed (its last lines attached) or ran past ``timeout_s``.
    """
    command = [
        sys.executable,
        "-m",
        "eval.compression.memory",
        str(folder),
        "--new-tokens",
        str(new_tokens),
        "--openvino-precision",
        openvino_precision,
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BadInputError(f"{folder}: the memory probe ran past {timeout_s:.0f} s") from exc
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-10:])
        raise BadInputError(f"{folder}: the memory probe failed:\n{tail}")
    found = json.loads(lines[-1])
    return PeakMemory(
        runtime_rss_bytes=int(found["runtime_rss_bytes"]),
        peak_rss_bytes=int(found["peak_rss_bytes"]),
    )


def main(argv: list[str] | None = None) -> int:
    """The child: load one model, generate, print its peaks as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--openvino-precision", choices=PRECISIONS, default="default")
    args = parser.parse_args(argv)
    if is_openvino_ir(args.folder):
        runtime = _run_openvino(args.folder, args.new_tokens, args.openvino_precision)
    else:
        runtime = _run_torch(args.folder, args.new_tokens)
    print(json.dumps({"runtime_rss_bytes": runtime, "peak_rss_bytes": _peak_rss_bytes()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
