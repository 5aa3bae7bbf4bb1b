"""Process-wide settings that keep clinical data on this machine.

The one list of them: no model/dataset hub access, no telemetry, no usage
pings. The CLI applies it to its own process first thing
(:func:`set_private_env`); code that starts another process (a merge worker, a
vLLM server, a Triton server) builds the child's environment with
:func:`private_env`. Values the user already set are left alone, except the
ones that would send data out, which are forced.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

FORCED = {
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "HF_DATASETS_DISABLE_TELEMETRY": "1",
    "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}
DEFAULTS = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


# Notices that libraries log at import, on every command that imports transformers, about
# things this project never uses: (logger, message prefix).
IMPORT_NOTICES = (
    # bitsandbytes' CPU backend, when the optional `kernels` package (a hub download of
    # prebuilt kernels) is missing; its own kernel runs instead
    ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward"),
    # torchao (the `compress` extra; transformers imports it when installed): its CUDA-only
    # kernels (mxfp8, cutlass sm90a) cannot load on a CPU build of torch
    ("torchao", "Failed to load "),
    # torchao registers Enums with torch's pytree, which torch 2.13 calls deprecated
    ("torch.utils._pytree", "<enum "),
)


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def private_env(base: Mapping[str, str], **extra: str) -> dict[str, str]:
    """A child process's environment: ``base``, offline and without telemetry, plus ``extra``.

    Args:
        base: the environment to start from (usually ``os.environ``).
        extra: further variables for this child; they win over everything.
    """
    env = {**DEFAULTS, **base, **FORCED}
    env.update(extra)
    return env


def set_private_env() -> None:
    """Force telemetry off and default every hub client to offline mode.

    Also silences the import notices of :data:`IMPORT_NOTICES` (bitsandbytes'
    optional ``kernels`` package, torchao's CUDA-only kernels), which say
    nothing about what this project runs.
    """
    os.environ.update(private_env(os.environ))
    for name, prefix in IMPORT_NOTICES:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessage) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(_DropMessage(prefix))
