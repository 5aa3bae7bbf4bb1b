"""A pruned model after its recovery fine-tune, written as a compressed folder.

``clinical-llm compress recover`` fine-tunes a pruned folder with one of the project's
recipes (``method.keep_zeros``) and hands the exported result here. This module sets the
pruned zeros back (:func:`llm.models.sparsity.apply_zero_masks`: a full fine-tune kept them
already; a merged LoRA adds a dense delta there) and writes the folder as ``compress make``
writes its own, so ``compress report`` judges it beside the other variants. Its manifest
keeps the pruning and adds ``compression.recovery``: the run, its loss, and how much of the
fine-tune's change survived the mask.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from llm.compress.folder import (
    LIBRARIES,
    MANIFEST_KIND,
    CompressedModel,
    check_out,
    copy_side_files,
    folder_size,
    write_compressed_folder,
)
from llm.compress.methods import PRUNING_METHODS
from llm.errors import BadInputError
from llm.manifest import earlier_manifest, library_versions, now_utc
from llm.models.loading import check_model_folder, load_causal_lm
from llm.models.sparsity import apply_zero_masks, zero_masks

PRUNED = tuple(method.value for method in PRUNING_METHODS)  # as manifests record them
RECOVERED_SUFFIX = "-recovered"


def pruning_of(folder: str | Path) -> dict[str, Any]:
    """The ``compression`` entry of a pruned folder's manifest.

    Raises:
        BadInputError: ``folder`` is not a ``compress make`` output of a pruning method, or
            it was recovered already.
    """
    path = check_model_folder(folder)
    manifest = earlier_manifest(path)
    compression = (manifest or {}).get("compression") or {}
    if (manifest or {}).get("kind") != MANIFEST_KIND or (compression.get("method") not in PRUNED):
        raise BadInputError(
            f"{path}: not a pruned model folder (`clinical-llm compress make --method "
            f"{' | '.join(PRUNED)}` writes one); recovery fine-tunes pruned models"
        )
    if "recovery" in compression:
        raise BadInputError(f"{path}: already recovered; recover the pruned folder it came from")
    return dict(compression)


def write_recovered(
    pruned: str | Path, tuned: str | Path, out: str | Path, recovery: dict[str, Any]
) -> CompressedModel:
    """Write ``out``: the fine-tuned model ``tuned`` with ``pruned``'s zeros set back.

    Args:
        pruned: the pruned folder the fine-tune started from.
        tuned: the fine-tune as a plain model folder (a merged LoRA or a full fine-tune,
            as ``clinical-llm export`` writes it).
        out: folder to write; new, empty, or an earlier ``compress`` output (replaced).
        recovery: what the fine-tune was (recipe, run folder, steps, losses), recorded in
            the manifest under ``compression.recovery``.

    Returns:
        The folder and its manifest (named ``<pruned name>-recovered-<method>``, e.g.
        ``prune-unstructured-0.5-recovered-lora``); ``compression.recovery.mask`` says how
        many zeros were set back and the share of the fine-tune's change they kept.

    Raises:
        BadInputError: ``pruned`` is not a pruned folder; ``tuned`` cannot be loaded or is
            not the same architecture; ``out`` holds something else.
    """
    started = now_utc()
    pruning = pruning_of(pruned)
    pruned_dir = Path(pruned)
    tuned_dir = check_model_folder(tuned)
    out_dir = Path(out)
    check_out(out_dir)
    base_model, _ = load_causal_lm(pruned_dir)
    masks = zero_masks(base_model)
    modules = dict(base_model.named_modules())
    base = {name: modules[name].weight.detach().clone() for name in masks}
    dtype = base_model.dtype
    del base_model, modules
    model, _ = load_causal_lm(tuned_dir, dtype=dtype)
    try:
        mask = apply_zero_masks(model, masks, base)
    except ValueError as exc:
        raise BadInputError(f"{tuned_dir}: not a fine-tune of {pruned_dir}: {exc}") from exc
    libraries = library_versions(LIBRARIES)

    def fill(stage: Path) -> dict[str, Any]:
        stage.mkdir()
        model.save_pretrained(stage, safe_serialization=True)
        copy_side_files(tuned_dir, stage)
        return {
            "compression": {
                **pruning,
                "name": f"{pruning['name']}{RECOVERED_SUFFIX}-{recovery.get('method', 'run')}",
                "recovery": {**recovery, "mask": asdict(mask)},
            },
            "size": folder_size(stage),
            "libraries": libraries,
        }

    manifest = write_compressed_folder(pruned_dir, out_dir, started, fill)
    return CompressedModel(out=out_dir, manifest=manifest)
