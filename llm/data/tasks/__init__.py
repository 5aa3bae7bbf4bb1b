"""Task renderers: patient records to chat examples (see docs/tasks.md).

:data:`TASKS` maps task names to renderer classes, imported on first use::

    from llm.data.tasks import TASKS
    task = TASKS.get("diagnosis")()
    example_or_skip = task.render(record, ctx)

Add a task by writing a class that follows :class:`~llm.data.tasks.base.Task`
(one module per task or family) and registering ``"module:ClassName"`` here.
"""

from __future__ import annotations

from llm.data.tasks.base import Example, RenderContext, Skip, Task
from llm.registry import Registry

TASKS: Registry[type[Task]] = Registry(
    "task",
    {
        "diagnosis": "llm.data.tasks.notes:DiagnosisTask",
        "readmission": "llm.data.tasks.notes:ReadmissionTask",
        "summary": "llm.data.tasks.notes:SummaryTask",
        "radiology_impression": "llm.data.tasks.multimodal:RadiologyImpressionTask",
        "ecg_rhythm": "llm.data.tasks.multimodal:EcgRhythmTask",
    },
)

__all__ = ["TASKS", "Example", "RenderContext", "Skip", "Task"]
