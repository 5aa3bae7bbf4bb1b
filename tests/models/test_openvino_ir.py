"""OpenVINO IR run with the OpenVINO runtime: compile settings, answer scores, greedy tokens.

The real tests export the eval tests' tiny model to IR with fp32 weights
(``tests/compress/openvino_fixtures.py``) and hold the IR to the torch model it came from:
with ``precision="f32"`` the same answers are chosen, every log-likelihood within 1e-3 of
torch's, and greedy decoding gives the same tokens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llm.errors import BadInputError
from llm.models.openvino_ir import compile_properties, is_openvino_ir
from tests.compress.openvino_fixtures import ensure_export_venv, eval_tiny_fp32_ir  # noqa: F401
from tests.eval.run_assets import EvalAssets, eval_assets  # noqa: F401
from tests.real_components import import_or_skip

PROMPTS = [
    [
        {"role": "system", "content": "Give the primary diagnosis."},
        {"role": "user", "content": "Fever, productive cough and right lower lobe consolidation."},
    ],
    [
        {"role": "system", "content": "Will the patient be readmitted within 30 days?"},
        {"role": "user", "content": "82-year-old, heart failure, third admission this year."},
    ],
]
CHOICES = [["pneumonia", "heart failure", "sepsis", "asthma"], ["yes", "no"]]


def test_compile_properties_for_f32_and_default() -> None:
    assert compile_properties("default") == {}
    assert compile_properties("default", threads=2) == {"INFERENCE_NUM_THREADS": 2}
    assert compile_properties("f32") == {
        "INFERENCE_PRECISION_HINT": "f32",
        "KV_CACHE_PRECISION": "f32",
        "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0,
    }
    with pytest.raises(BadInputError, match="unknown OpenVINO precision"):
        compile_properties("bf16")  # type: ignore[arg-type]


def test_is_openvino_ir_looks_for_the_model_xml(tmp_path: Path) -> None:
    assert not is_openvino_ir(tmp_path)
    (tmp_path / "openvino_model.xml").write_text("<net/>")
    assert is_openvino_ir(tmp_path)


def test_a_folder_without_ir_is_refused_with_the_export_command(tmp_path: Path) -> None:
    from llm.models.openvino_ir import OpenVINOCausalLM

    with pytest.raises(BadInputError, match="compress make MODEL --method openvino-int8"):
        OpenVINOCausalLM(tmp_path)


@pytest.mark.slow
def test_fp32_ir_scores_answers_and_decodes_as_torch(
    eval_tiny_fp32_ir: Path,  # noqa: F811
    eval_assets: EvalAssets,  # noqa: F811
) -> None:
    import_or_skip("openvino", "openvino")
    import torch

    from llm.models.answer_scoring import answer_log_likelihoods
    from llm.models.loading import load_causal_lm
    from llm.models.openvino_ir import OpenVINOCausalLM, ir_answer_log_likelihoods

    model: Any
    tokenizer: Any
    model, tokenizer = load_causal_lm(eval_assets.tiny)
    model.eval()
    ir = OpenVINOCausalLM(eval_tiny_fp32_ir, precision="f32")
    assert ir.runtime["inference_precision_hint"] == "f32"
    assert ir.runtime["kv_cache_precision"] == "f32"
    for prompt, choices in zip(PROMPTS, CHOICES, strict=True):
        expected = answer_log_likelihoods(model, tokenizer, prompt, choices, 512)
        got = ir_answer_log_likelihoods(ir, prompt, choices, 512)
        assert got == pytest.approx(expected, abs=1e-3)
        assert got.index(max(got)) == expected.index(max(expected))
        ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_dict=True)[
            "input_ids"
        ]
        with torch.no_grad():
            out = model.generate(
                torch.tensor([ids]),
                max_new_tokens=8,
                do_sample=False,
                eos_token_id=ir.stop_token_ids(),
                pad_token_id=tokenizer.pad_token_id,
            )
        torch_new = [t for t in out[0, len(ids) :].tolist() if t not in ir.stop_token_ids()]
        assert ir.generate_ids(ids, 8) == torch_new
    config = json.loads((eval_tiny_fp32_ir / "manifest.json").read_text())
    assert config["compression"]["method"] == "openvino-fp32"
