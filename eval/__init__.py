"""Evaluation harness: tasks, metrics, subgroup analysis, gates, reports. Built under issue 4.

Subgroup analysis (``clinical-llm eval subgroups``, docs/evaluation.md):

* :mod:`eval.predictions` reads and validates a predictions file;
* :mod:`eval.metrics` holds one numpy definition per metric
  (:mod:`eval.metrics.functional`) and a local ``evaluate`` module per metric;
* :mod:`eval.subgroups` (:class:`~eval.subgroups.SubgroupFrame`, shaped like
  fairlearn's MetricFrame), :mod:`eval.atoms` and :mod:`eval.bootstrap`
  compute metrics per group with bootstrap intervals from atom counts;
* :mod:`eval.significance`, :mod:`eval.gates`, :mod:`eval.report` and
  :mod:`eval.manifest` test gaps, check release gates and write the reports;
* :mod:`eval.analysis` runs the whole thing as one library call.
"""
