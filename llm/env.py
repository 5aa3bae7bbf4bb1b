"""Process-wide settings that keep clinical data on this machine.

Called first thing by the CLI: no model/dataset hub access, no telemetry, no
usage pings. Values the user already set are left alone, except the ones that
would send data out, which are forced.
"""

from __future__ import annotations

import os

FORCED = {
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "HF_DATASETS_DISABLE_TELEMETRY": "1",
    "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false",
}
DEFAULTS = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def set_private_env() -> None:
    """Force telemetry off and default every hub client to offline mode."""
    os.environ.update(FORCED)
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
