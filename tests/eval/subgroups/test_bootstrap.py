"""Bootstrap intervals: count resampling equals row resampling, seeded, and sane."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from eval.metrics.functional import MetricInputs
from eval.registry import resolve_metrics
from eval.subgroups.bootstrap import chunk_size, percentile_ci, resample_counts
from eval.subgroups.frame import OVERALL, SubgroupFrame


def _inputs(n: int, seed: int, p_correct: float = 0.8) -> tuple[MetricInputs, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.choice(["yes", "no"], n).astype(object)
    pred = np.where(rng.random(n) < p_correct, ref, np.where(ref == "yes", "no", "yes"))
    scores = np.round(np.clip((pred == "yes") * 0.4 + rng.random(n) * 0.6, 0, 1), 2)
    group = rng.choice(["a", "b", "c"], n).astype(object)
    return MetricInputs(pred.astype(object), ref, scores, "yes"), group


def _frame(inputs: MetricInputs, group: np.ndarray, n_boot: int, seed: int = 0) -> SubgroupFrame:
    return SubgroupFrame(
        metrics=resolve_metrics(["accuracy", "auroc", "expected_calibration_error", "f1"]),
        inputs=inputs,
        sensitive_features={"group": group},
        min_group_size=10,
        n_boot=n_boot,
        random_state=seed,
    )


def test_count_resample_equals_metrics_of_the_resampled_rows() -> None:
    inputs, group = _inputs(400, seed=0)
    frame = _frame(inputs, group, n_boot=3, seed=7)
    table = frame.table
    blocks = resample_counts(
        table.counts,
        table.atom_of_row,
        n_boot=3,
        rng=np.random.default_rng(7),
        chunk=chunk_size(len(table)),
    )
    counts = next(iter(blocks))
    accuracy = frame.bootstrap_values("group", "accuracy")
    auroc = frame.bootstrap_values("group", "auroc")
    f1 = frame.bootstrap_values("group", "f1")
    assert accuracy is not None and auroc is not None and f1 is not None
    for b in range(3):
        atoms = np.repeat(np.arange(len(table)), counts[b].astype(int))
        rows = table.fine.inputs.take(atoms)
        scores = rows.scores
        assert scores is not None
        groups = table.fine.groups["group"][atoms]
        for g, name in enumerate(frame.group_names("group")):
            keep = groups == g
            y = rows.references[keep] == "yes"
            assert accuracy[b, g] == pytest.approx(
                skm.accuracy_score(rows.references[keep], rows.predictions[keep])
            ), name
            assert auroc[b, g] == pytest.approx(skm.roc_auc_score(y, scores[keep])), name
            assert f1[b, g] == pytest.approx(skm.f1_score(y, rows.predictions[keep] == "yes")), name


def test_same_seed_same_intervals_other_seed_other_intervals() -> None:
    inputs, group = _inputs(300, seed=1)
    first = _frame(inputs, group, n_boot=200, seed=3)
    again = _frame(inputs, group, n_boot=200, seed=3)
    other = _frame(inputs, group, n_boot=200, seed=4)
    assert first.by_group == again.by_group and first.overall == again.overall
    assert first.overall["accuracy"].ci != other.overall["accuracy"].ci


def test_intervals_contain_the_estimate_and_shrink_with_more_data() -> None:
    small_inputs, small_group = _inputs(400, seed=2)
    large_inputs, large_group = _inputs(8000, seed=2)
    small = _frame(small_inputs, small_group, n_boot=300)
    large = _frame(large_inputs, large_group, n_boot=300)
    for frame in (small, large):
        for estimate in frame.overall.values():
            assert estimate.ci is not None and estimate.ci[0] <= estimate.value <= estimate.ci[1]
        for result in frame.by_group["group"].values():
            for name in ("accuracy", "auroc", "f1"):
                ci = result.metrics[name].ci
                assert ci is not None and ci[0] <= result.metrics[name].value <= ci[1]

    def width(frame: SubgroupFrame) -> float:
        ci = frame.overall["accuracy"].ci
        assert ci is not None
        return ci[1] - ci[0]

    assert width(large) < width(small) / 3  # about sqrt(20) narrower


def test_coverage_of_95_percent_intervals_on_simulated_data() -> None:
    true_accuracy, n, runs = 0.8, 200, 150
    covered = 0
    for run in range(runs):
        inputs, _ = _inputs(n, seed=100 + run, p_correct=true_accuracy)
        frame = SubgroupFrame(
            metrics=resolve_metrics(["accuracy"]),
            inputs=inputs,
            sensitive_features={},
            n_boot=300,
            random_state=run,
        )
        ci = frame.overall["accuracy"].ci
        assert ci is not None
        covered += ci[0] <= true_accuracy <= ci[1]
    # binomial(150, 0.95) lies in [133, 148] with probability > 0.999
    assert 133 <= covered <= 148, covered


def test_resample_counts_sum_to_n_on_both_draw_paths() -> None:
    rng = np.random.default_rng(0)
    few = np.array([50.0, 30.0, 20.0])  # few atoms: multinomial draw
    few_rows = np.repeat(np.arange(3), few.astype(int))
    many = np.ones(100)  # one row per atom: row-index draw
    many_rows = np.arange(100)
    for counts, rows in ((few, few_rows), (many, many_rows)):
        drawn = np.vstack(list(resample_counts(counts, rows, n_boot=2000, rng=rng, chunk=300)))
        assert drawn.shape == (2000, len(counts))
        assert (drawn.sum(axis=1) == counts.sum()).all()
        np.testing.assert_allclose(drawn.mean(axis=0), counts, rtol=0.1)


def test_disparity_interval_comes_from_the_joint_resamples() -> None:
    inputs, group = _inputs(600, seed=3)
    frame = _frame(inputs, group, n_boot=100)
    boot = frame.bootstrap_values("group", "accuracy")
    assert boot is not None
    spread = boot.max(axis=1) - boot.min(axis=1)
    lower, upper = percentile_ci(spread, 0.95)
    assert frame.disparity("group", "accuracy").difference_ci == (
        pytest.approx(float(lower)),
        pytest.approx(float(upper)),
    )
    assert frame.bootstrap_values(OVERALL, "accuracy") is not None


def test_percentile_ci_ignores_undefined_resamples() -> None:
    samples = np.array([[np.nan, 1.0], [np.nan, 2.0], [np.nan, 3.0]])
    lower, upper = percentile_ci(samples, 0.5)
    assert np.isnan(lower[0]) and np.isnan(upper[0])
    assert lower[1] == pytest.approx(1.5) and upper[1] == pytest.approx(2.5)
