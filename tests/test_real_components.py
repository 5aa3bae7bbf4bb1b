"""The rule that a skipped real-component test fails where the run requires it."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).parent / "conftest.py").read_text(encoding="utf-8")

TESTS = """
import pytest
from tests.real_components import requires, skip_without

def test_needs_vllm():
    skip_without("vllm", "vLLM is not installed")

@requires("chromium", "chromium not found")
def test_needs_chromium():
    pass

def test_platform_skip():
    pytest.skip("no /proc on this system")

def test_passes():
    pass
"""

MODULE_SKIP = """
import pytest
from tests.real_components import reason
pytest.importorskip("no_such_module_here", reason=reason("triton", "no tritonclient"))

def test_never_collected():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_components=TESTS, test_module_skip=MODULE_SKIP)
    return pytester


def test_optional_by_default_every_skip_is_a_skip(suite: pytest.Pytester) -> None:
    result = suite.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=4)


def test_required_turns_component_skips_into_failures(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--real-components=required", "test_components.py")
    result.assert_outcomes(passed=1, skipped=1, failed=1, errors=1)  # skipif: at setup
    result.stdout.fnmatch_lines(["*real component: vllm*", "*--expected-skips vllm*"])


def test_a_module_skipped_for_a_component_is_a_collection_error(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--real-components=required", "test_module_skip.py")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*real component: triton*", "*--expected-skips triton*"])


def test_declared_components_may_skip(suite: pytest.Pytester) -> None:
    result = suite.runpytest(
        "--real-components=required", "--expected-skips", "vllm,chromium triton"
    )
    result.assert_outcomes(passed=1, skipped=4)


def test_unknown_component_is_a_usage_error(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--expected-skips", "vlm")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown component*vlm*"])
