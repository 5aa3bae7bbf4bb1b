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


# bitsandbytes' CPU backend logs this once per process when the optional `kernels`
# package (a hub download of prebuilt kernels) is missing; its own kernel runs instead.
KERNELS_NOTICE = ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward")


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


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

    Also silences bitsandbytes' notice about the optional ``kernels`` package,
    which this project never installs (it downloads kernels from a hub).
    """
    os.environ.update(private_env(os.environ))
    logger = logging.getLogger(KERNELS_NOTICE[0])
    if not any(isinstance(f, _DropMessage) for f in logger.filters):
        logger.addFilter(_DropMessage(KERNELS_NOTICE[1]))
