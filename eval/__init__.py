"""Evaluation harness: tasks, metrics, subgroup analysis, gates, reports. Built under issue 4."""
