"""Export a trained model for serving: adapter folders, merged models, consolidated weights.

``clinical-llm export RUN_DIR --out DIR [--merge]`` (docs/export.md). Modules:

* :mod:`llm.export.source`: the run folder, the saved model to export, its base;
* :mod:`llm.export.exporter`: :func:`export_run`, the three outputs and the manifest;
* :mod:`llm.export.folder`: the output folder, written in staging and moved into place;
* :mod:`llm.export.merge_worker`: the separate process every weight-loading job runs in;
* :mod:`llm.export.merge`: merging adapters, converting dtypes (inside the worker);
* :mod:`llm.export.zero`: consolidating DeepSpeed ZeRO shards (inside the worker).
"""

from llm.export.exporter import ExportResult, export_run

__all__ = ["ExportResult", "export_run"]
