"""The intersection syntax, in one place: attribute ``a*b``, groups ``valueA*valueB``.

``--attributes sex,race_ethnicity,sex*race_ethnicity`` asks for the
intersection of ``sex`` and ``race_ethnicity``; its groups are named by joining
the parts' groups (``female*Black``). Because ``*`` joins names, a group value
may not contain it (the predictions reader refuses such a value).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

INTERSECTION = "*"
BAD_ATTRIBUTE = "{name!r} is not 'a' or 'a*b' with distinct names"


def attribute_parts(name: str) -> list[str]:
    """The attributes a name is made of: ``"a*b"`` -> ``["a", "b"]``, ``"a"`` -> ``["a"]``.

    Raises:
        ValueError: an empty part or a part named twice (:data:`BAD_ATTRIBUTE`).
    """
    parts = [part.strip() for part in name.split(INTERSECTION)]
    if any(not part for part in parts) or len(set(parts)) != len(parts):
        raise ValueError(BAD_ATTRIBUTE.format(name=name))
    return parts


def attribute_name(parts: Sequence[str]) -> str:
    """The name of the intersection of ``parts`` (``"a*b"``; one part is itself)."""
    return INTERSECTION.join(parts)


def group_parts(group: str) -> list[str]:
    """The parts' groups of an intersection group: ``"female*Black"`` -> ``["female", "Black"]``."""
    return group.split(INTERSECTION)


def joins_groups(value: str) -> bool:
    """Whether ``value`` holds the character that joins intersection groups."""
    return INTERSECTION in value


def intersection_groups(
    attributes: Mapping[str, Sequence[str]], groups_of: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Each example's group per attribute; an intersection joins its parts' groups.

    Args:
        attributes: attribute name -> its parts (from :func:`attribute_parts`).
        groups_of: each part's group per example.

    Returns:
        Attribute name -> group per example (object array).
    """
    return {
        name: groups_of[parts[0]]
        if len(parts) == 1
        else np.array(
            [attribute_name(row) for row in zip(*(groups_of[p] for p in parts), strict=True)],
            dtype=object,
        )
        for name, parts in attributes.items()
    }
