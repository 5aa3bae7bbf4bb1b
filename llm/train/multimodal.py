"""Vision-language training inputs: image slots per image, and pixel values per row.

The model and its processor load through
:func:`llm.models.loading.load_vision_language_model` (local files only,
safetensors only, no checkpoint code). Images are read from the task dataset
folder (``images`` holds paths relative to it) and turned into
``pixel_values`` by the checkpoint's own image processor; the text side
expands each ``<image>`` into ``config.image_seq_length`` slots at
tokenization.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llm.errors import BadInputError


def image_seq_length(model: Any) -> int:
    """Embedding slots one image takes in the language model (LLaVA's ``image_seq_length``).

    Raises:
        BadInputError: the model config does not say.
    """
    value = getattr(model.config, "image_seq_length", None)
    if not isinstance(value, int) or value < 1:
        raise BadInputError(
            f"{type(model).__name__}: config.image_seq_length is missing; the trainer needs it "
            "to reserve image slots in the token sequence"
        )
    return value


class PixelValues:
    """A ``datasets.map``-able step adding ``pixel_values`` for each row's ``images``.

    Args:
        processor: the model's processor (its ``image_processor`` is used).
        dataset_dir: folder the ``images`` paths are relative to.
    """

    def __init__(self, processor: Any, dataset_dir: Path) -> None:
        self.image_processor = processor.image_processor
        self.dataset_dir = dataset_dir

    def _pixels(self, paths: list[str], task: str, row_id: str) -> Any:
        from PIL import Image

        images = []
        for rel in paths:
            file = self.dataset_dir / rel
            try:
                with Image.open(file) as image:
                    images.append(image.convert("RGB"))
            except (OSError, ValueError) as exc:
                raise BadInputError(
                    f"{task} row {row_id}: images: cannot read {file}: {exc}"
                ) from None
        return self.image_processor(images=images, return_tensors="np")["pixel_values"]

    def __call__(self, dataset: Any, task: str) -> Any:
        """``dataset`` with a ``pixel_values`` column (``(n_images, 3, H, W)`` per row).

        Raises:
            BadInputError: a row has no ``images`` column or an image cannot be read.
        """
        if "images" not in dataset.column_names:
            raise BadInputError(f"{task}: no 'images' column; is this a multimodal task?")

        def add(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
            ids = batch.get("id") or [str(i) for i in range(len(batch["images"]))]
            return {
                "pixel_values": [
                    self._pixels(list(paths), task, row_id)
                    for paths, row_id in zip(batch["images"], ids, strict=True)
                ]
            }

        return dataset.map(add, batched=True, batch_size=32, desc=f"images {task}")
