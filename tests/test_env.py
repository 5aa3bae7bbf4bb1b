"""llm.env: bitsandbytes' notice about `kernels` is silenced, other warnings are not."""

from __future__ import annotations

import logging

import pytest

from llm.env import KERNELS_NOTICE, private_env, set_private_env


def test_the_kernels_notice_is_dropped_and_other_warnings_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    set_private_env()
    set_private_env()  # idempotent: one filter
    logger = logging.getLogger(KERNELS_NOTICE[0])
    assert len(logger.filters) == 1
    with caplog.at_level(logging.WARNING, logger=KERNELS_NOTICE[0]):
        logger.warning("Failed to load CPU gemm_4bit_forward from kernels-community: %s", "x")
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
