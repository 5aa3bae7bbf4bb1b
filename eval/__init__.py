"""Evaluation harness: tasks on a model, subgroup metrics, fairness gaps, gates, reports.

Map of the package (docs/evaluation.md, docs/tasks.md):

* :mod:`eval.metrics`: one numpy definition per metric
  (:mod:`eval.metrics.functional`), label canonicalisation
  (:mod:`eval.metrics.labels`) and a local ``evaluate`` module per metric;
  :mod:`eval.registry` maps metric names to definitions;
* :mod:`eval.subgroups`: the subgroup engine: predictions reader, ``a*b``
  intersections, atoms and bootstrap, :class:`~eval.subgroups.frame.SubgroupFrame`,
  gap significance, the typed report of a frame, and ``eval subgroups`` as a
  library call (:func:`~eval.subgroups.analysis.analyze_subgroups`);
* :mod:`eval.report`: the typed report (:class:`~eval.report.model.SubgroupReport`,
  ``report.json``), its Markdown, HTML and plots, and ``eval compare``;
* :mod:`eval.gates`: release gates (YAML) checked against a report;
* :mod:`eval.manifest`: the manifest of an eval output folder;
* :mod:`eval.tasks`, :mod:`eval.runners` and :mod:`eval.run`: ``eval run``,
  a suite of versioned tasks on a model folder or endpoint, each scored by
  the subgroup engine; :mod:`eval.suites` holds the suite files.

Dependencies point one way: ``run`` -> ``subgroups`` -> ``gates`` ->
``report`` -> ``metrics``/``registry``.
"""
