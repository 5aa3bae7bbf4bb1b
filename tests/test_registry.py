from __future__ import annotations

import pytest

from llm.data.tasks import TASKS
from llm.data.tasks.notes import DiagnosisTask
from llm.errors import BadInputError
from llm.registry import Registry


def test_lazy_entry_is_imported_on_first_get() -> None:
    registry: Registry[type] = Registry("task", {"diagnosis": "llm.data.tasks.notes:DiagnosisTask"})
    assert registry.get("diagnosis") is DiagnosisTask
    assert registry.get("diagnosis") is DiagnosisTask  # resolved once, then cached


def test_plain_objects_and_dict_entries() -> None:
    registry: Registry[int] = Registry("metric", {"one": 1})
    registry.register("two", 2)
    assert registry.names() == ["one", "two"]
    assert registry.get("two") == 2
    assert "one" in registry and "three" not in registry
    assert len(registry) == 2


def test_duplicate_name_is_rejected() -> None:
    registry: Registry[int] = Registry("metric", {"one": 1})
    with pytest.raises(ValueError, match="metric 'one' is already registered"):
        registry.register("one", 11)


def test_malformed_lazy_reference_is_rejected() -> None:
    with pytest.raises(ValueError, match="module:Name"):
        Registry("task", {"x": "llm.data.tasks.notes.DiagnosisTask"})


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(
        BadInputError, match=r"unknown task 'diagnosys'; did you mean 'diagnosis'\?"
    ):
        TASKS.get("diagnosys")


def test_unknown_name_without_close_match_lists_known_names() -> None:
    with pytest.raises(BadInputError) as info:
        TASKS.check("zzz")
    assert "did you mean" not in str(info.value)
    assert "known: diagnosis, ecg_rhythm" in str(info.value)


def test_broken_lazy_reference_raises_import_error() -> None:
    registry: Registry[type] = Registry("task", {"x": "llm.data.tasks.notes:NoSuchTask"})
    with pytest.raises(ImportError, match="NoSuchTask"):
        registry.get("x")
