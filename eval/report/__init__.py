"""The subgroup report: its typed model and every rendering of it.

* :mod:`~eval.report.model`: :class:`~eval.report.model.SubgroupReport` and
  its parts; ``report.json`` is its serialisation (:func:`~eval.report.model.read_report`);
* :mod:`~eval.report.markdown` (``report.md``), :mod:`~eval.report.html`
  (``report.html`` from ``templates/report.html.j2``) and
  :mod:`~eval.report.plots` (its forest plots);
* :mod:`~eval.report.compare` (two reports compared: ``eval compare``) and
  :mod:`~eval.report.compare_markdown` (``compare.md`` and the CLI's table cells);
* :mod:`~eval.report.write`: the files of a report folder and of a comparison.

Nothing here imports the engine (:mod:`eval.subgroups`): a report read from
disk renders without it.
"""
