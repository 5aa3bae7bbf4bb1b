"""Labels are compared as canonical strings."""

from __future__ import annotations

import pytest

from eval.metrics.labels import canonical_label


def test_canonical_labels_make_numbers_and_strings_agree() -> None:
    assert canonical_label(1) == canonical_label(1.0) == canonical_label(" 1 ") == "1"
    assert canonical_label(True) == "true" and canonical_label(0.25) == "0.25"
    with pytest.raises(ValueError, match="got array"):
        canonical_label([1])
