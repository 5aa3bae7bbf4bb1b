"""Generation backends, imported lazily by name so unused engines cost nothing at start-up."""

from __future__ import annotations

import importlib

from serving.backends.base import Backend, BackendSettings

# name -> "module:Class"; the module is imported only when that backend is chosen.
BACKENDS: dict[str, str] = {
    "transformers": "serving.backends.transformers.backend:TransformersBackend",
    "vllm": "serving.backends.vllm_backend:VLLMBackend",
    "openai": "serving.backends.openai_backend:OpenAIUpstreamBackend",
    "triton": "serving.backends.triton_backend:TritonBackend",
    "openvino": "serving.backends.openvino_backend:OpenVINOBackend",
}


def create_backend(name: str, settings: BackendSettings) -> Backend:
    """Instantiate the backend called ``name`` (one of :data:`BACKENDS`).

    Raises:
        ValueError: ``name`` is not a known backend.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    module_name, _, class_name = BACKENDS[name].partition(":")
    backend_cls: type[Backend] = getattr(importlib.import_module(module_name), class_name)
    return backend_cls(settings)
