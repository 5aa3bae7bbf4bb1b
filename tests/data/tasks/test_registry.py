"""The data tasks' registry instance: every registered task resolves and names itself."""

from __future__ import annotations

from llm.data.tasks import TASKS


def test_every_registered_task_resolves_and_names_itself() -> None:
    for name in TASKS.names():
        task = TASKS.get(name)()
        assert task.name == name
        assert task.kind in ("classification", "generation")
