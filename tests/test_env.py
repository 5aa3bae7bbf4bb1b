"""llm.env: libraries' import notices (bitsandbytes, torchao) are dropped, other warnings kept."""

from __future__ import annotations

import logging

import pytest

from llm.env import IMPORT_NOTICES, private_env, set_private_env


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "bitsandbytes.backends.cpu.ops",
            "Failed to load CPU gemm_4bit_forward from kernels-community: %s",
        ),
        ("torchao", "Failed to load %s: Could not load this library"),
        ("torch.utils._pytree", "%s is an Enum subclass and is now natively supported"),
    ],
)
def test_import_notices_are_dropped_and_other_warnings_kept(
    caplog: pytest.LogCaptureFixture, name: str, message: str
) -> None:
    set_private_env()
    set_private_env()  # idempotent: one filter per notice
    logger = logging.getLogger(name)
    assert len(logger.filters) == sum(1 for n, _ in IMPORT_NOTICES if n == name) == 1
    arg = "<enum 'KernelPreference'>" if name.startswith("torch.") else "x.so"
    with caplog.at_level(logging.WARNING, logger=name):
        logger.warning(message, arg)
        logger.warning("something else went wrong")
    assert [r.getMessage() for r in caplog.records] == ["something else went wrong"]


def test_a_child_environment_is_offline_private_and_keeps_the_users_choices() -> None:
    base = {"PATH": "/bin", "HF_HUB_OFFLINE": "0", "DO_NOT_TRACK": "0"}
    env = private_env(base, PYTHONUNBUFFERED="1")
    assert env["PATH"] == "/bin"
    assert env["HF_HUB_OFFLINE"] == "0"  # a default: the user's value stands
    assert env["TRANSFORMERS_OFFLINE"] == "1"  # a default the user did not set
    assert env["DO_NOT_TRACK"] == "1"  # would send data out: forced
    assert env["VLLM_NO_USAGE_STATS"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert base == {"PATH": "/bin", "HF_HUB_OFFLINE": "0", "DO_NOT_TRACK": "0"}  # untouched
