"""llm.env: bitsandbytes' notice about `kernels` is silenced, other warnings are not."""

from __future__ import annotations

import logging

import pytest

from llm.env import KERNELS_NOTICE, set_private_env


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
