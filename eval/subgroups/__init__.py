"""The subgroup engine: predictions in, metrics per group with intervals, gaps and tests out.

* :mod:`~eval.subgroups.predictions` reads and validates a predictions file
  (or rows held in memory) into columns;
* :mod:`~eval.subgroups.intersections` is the ``a*b`` syntax (attribute and
  group names of intersections);
* :mod:`~eval.subgroups.atoms` collapses rows into atoms a bootstrap cannot
  tell apart; :mod:`~eval.subgroups.bootstrap` draws resamples as atom counts;
* :mod:`~eval.subgroups.frame` (:class:`~eval.subgroups.frame.SubgroupFrame`,
  shaped like fairlearn's MetricFrame) computes every metric overall and per
  group, the gaps between groups and their intervals;
* :mod:`~eval.subgroups.significance` tests each attribute's worst-versus-best gap;
* :mod:`~eval.subgroups.to_report` turns a frame into the typed report;
* :mod:`~eval.subgroups.analysis` is ``eval subgroups`` as one library call.
"""
