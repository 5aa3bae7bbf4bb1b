"""The YAML front matter of a model card: the Hugging Face metadata fields the card uses.

Hugging Face reads a model card's metadata from the YAML block between the
first two ``---`` lines of ``README.md`` (the Hub's model card spec,
``huggingface_hub.ModelCardData``). The card written by :mod:`llm.export.card`
uses these fields, each checked here before anything is written:

* ``license``: a Hub license identifier (``apache-2.0``, ``mit``, ...) or ``other``;
* ``base_model``: the model it was tuned from (a string; a Hub id when known);
* ``library_name``: ``peft`` for an adapter, ``transformers`` for a model;
* ``pipeline_tag``: ``text-generation`` (``image-text-to-text`` for a VLM);
* ``tags``: a list of strings;
* ``datasets``: a list of dataset ids (empty here: training data stays private);
* ``model-index``: a list with one ``{name, results}`` entry; each result has
  ``task.type``, ``dataset.type``/``dataset.name`` and ``metrics`` of
  ``{type, value}`` (``name``, ``config``, ``split`` optional), as the Hub's
  evaluation-results parser needs.
"""

from __future__ import annotations

import math
import re
from typing import Any

from llm.errors import BadInputError

# The Hub's license identifiers (https://huggingface.co/docs/hub/repositories-licenses):
# lower-case SPDX-like ids; "other" when none fits.
LICENSE_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
PIPELINE_TAGS = frozenset({"text-generation", "image-text-to-text"})
LIBRARIES = frozenset({"peft", "transformers"})
FIELDS = ("license", "base_model", "library_name", "pipeline_tag", "tags", "datasets")
MODEL_INDEX = "model-index"

ERR_NOT_MAPPING = "the front matter must be a YAML mapping"
ERR_LICENSE = "license: expected a Hub license id (lower case, e.g. apache-2.0) or 'other'"
ERR_BASE_MODEL = "base_model: expected a non-empty string"
ERR_LIBRARY = "library_name: expected one of " + ", ".join(sorted(LIBRARIES))
ERR_PIPELINE = "pipeline_tag: expected one of " + ", ".join(sorted(PIPELINE_TAGS))
ERR_STRINGS = "{field}: expected a list of non-empty strings"
ERR_INDEX = "model-index: expected a list with one {{name, results}} entry"
ERR_RESULT = "model-index results[{i}]: {what}"
ERR_UNKNOWN = "unknown field(s) {fields}: the card writes only " + ", ".join((*FIELDS, MODEL_INDEX))


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _result_problems(i: int, result: Any) -> list[str]:
    if not isinstance(result, dict):
        return [ERR_RESULT.format(i=i, what="expected a mapping")]
    problems: list[str] = []
    task, dataset, metrics = result.get("task"), result.get("dataset"), result.get("metrics")
    if not isinstance(task, dict) or not isinstance(task.get("type"), str):
        problems.append(ERR_RESULT.format(i=i, what="task.type: expected a string"))
    if not isinstance(dataset, dict) or not all(
        isinstance(dataset.get(k), str) and dataset.get(k) for k in ("type", "name")
    ):
        problems.append(ERR_RESULT.format(i=i, what="dataset.type and dataset.name: expected"))
    if not isinstance(metrics, list) or not metrics:
        problems.append(ERR_RESULT.format(i=i, what="metrics: expected a non-empty list"))
        return problems
    for j, metric in enumerate(metrics):
        value = metric.get("value") if isinstance(metric, dict) else None
        if not isinstance(metric, dict) or not isinstance(metric.get("type"), str):
            problems.append(ERR_RESULT.format(i=i, what=f"metrics[{j}].type: expected a string"))
        elif not isinstance(value, int | float) or isinstance(value, bool):
            problems.append(ERR_RESULT.format(i=i, what=f"metrics[{j}].value: expected a number"))
        elif not math.isfinite(value):
            problems.append(ERR_RESULT.format(i=i, what=f"metrics[{j}].value: not finite"))
    return problems


def metadata_problems(meta: Any) -> list[str]:
    """Every problem with a card's front matter (empty when it is valid).

    Args:
        meta: the front matter as ``yaml.safe_load`` returns it.

    Returns:
        One message per problem, each naming the field.
    """
    if not isinstance(meta, dict):
        return [ERR_NOT_MAPPING]
    problems: list[str] = []
    unknown = sorted(set(meta) - {*FIELDS, MODEL_INDEX})
    if unknown:
        problems.append(ERR_UNKNOWN.format(fields=", ".join(map(str, unknown))))
    license_id = meta.get("license")
    if not isinstance(license_id, str) or not LICENSE_RE.match(license_id):
        problems.append(ERR_LICENSE)
    if not isinstance(meta.get("base_model"), str) or not meta["base_model"].strip():
        problems.append(ERR_BASE_MODEL)
    if meta.get("library_name") not in LIBRARIES:
        problems.append(ERR_LIBRARY)
    if meta.get("pipeline_tag") not in PIPELINE_TAGS:
        problems.append(ERR_PIPELINE)
    for field in ("tags", "datasets"):
        if not _strings(meta.get(field)):
            problems.append(ERR_STRINGS.format(field=field))
    if MODEL_INDEX in meta:
        index = meta[MODEL_INDEX]
        entry = index[0] if isinstance(index, list) and len(index) == 1 else None
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("name"), str)
            or not isinstance(entry.get("results"), list)
        ):
            problems.append(ERR_INDEX)
        else:
            for i, result in enumerate(entry["results"]):
                problems += _result_problems(i, result)
    return problems


def check_metadata(meta: Any, *, where: str) -> None:
    """Raise when the front matter is not valid card metadata.

    Raises:
        BadInputError: naming ``where`` and every problem.
    """
    problems = metadata_problems(meta)
    if problems:
        raise BadInputError(f"{where}: model card metadata: " + "; ".join(problems))
