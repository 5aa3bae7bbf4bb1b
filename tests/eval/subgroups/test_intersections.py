"""The ``a*b`` syntax: attribute names, group names, and the groups of an intersection."""

from __future__ import annotations

import numpy as np
import pytest

from eval.subgroups.intersections import (
    attribute_name,
    attribute_parts,
    group_parts,
    intersection_groups,
    joins_groups,
)


def test_names_split_and_join() -> None:
    assert attribute_parts("sex") == ["sex"]
    assert attribute_parts(" sex * race_ethnicity") == ["sex", "race_ethnicity"]
    assert attribute_name(["sex", "race_ethnicity"]) == "sex*race_ethnicity"
    assert group_parts("female*Black") == ["female", "Black"] and group_parts("x") == ["x"]
    assert joins_groups("a*b") and not joins_groups("ab")


@pytest.mark.parametrize("name", ["sex*", "*sex", "sex*sex", "a**b"])
def test_bad_attribute_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="is not 'a' or 'a\\*b'"):
        attribute_parts(name)


def test_an_intersection_joins_its_parts_groups_row_by_row() -> None:
    groups = {"sex": np.array(["F", "M"], dtype=object), "race": np.array(["A", "B"], dtype=object)}
    out = intersection_groups({"sex": ["sex"], "sex*race": ["sex", "race"]}, groups)
    assert out["sex"] is groups["sex"]
    assert out["sex*race"].tolist() == ["F*A", "M*B"]
