"""``--set`` overrides: malformed ones and ones that reach inside a list are bad input."""

from __future__ import annotations

import pytest

from llm.errors import BadInputError
from llm.overrides import apply_overrides, parse_override


@pytest.mark.parametrize("raw", ["training.max_steps", "=3", "training..seed=1"])
def test_malformed_override_is_bad_input(raw: str) -> None:
    with pytest.raises(BadInputError, match=r"expected key\.sub=value"):
        parse_override(raw)


def test_override_inside_a_list_says_to_set_the_whole_value() -> None:
    with pytest.raises(BadInputError, match=r"set the whole value"):
        apply_overrides({"data": {"tasks": ["a"]}}, ["data.tasks.x=1"])
