"""serving/metrics.py: every series by model and adapter, label values only from the config."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from serving.metrics import NO_ADAPTER, UNKNOWN_ADAPTER, UNKNOWN_MODEL, GatewayMetrics

ENDPOINT = "/v1/chat/completions"


def _metrics() -> GatewayMetrics:
    # what create_app builds from a serve config with the base model "base" and two adapters
    return GatewayMetrics(["base", "notes", "radiology"], adapters=["notes", "radiology"],
                          base_model="base")  # fmt: skip


def _samples(metrics: GatewayMetrics, name: str) -> dict[tuple[str, str], float]:
    families = text_string_to_metric_families(metrics.render().decode())
    return {
        (s.labels["model"], s.labels["adapter"]): s.value
        for family in families
        for s in family.samples
        if s.name == name
    }


def test_an_adapter_counts_under_its_base_model_and_the_base_under_adapter_none() -> None:
    metrics = _metrics()
    assert metrics.labels_for("notes") == ("base", "notes")
    assert metrics.labels_for("base") == ("base", NO_ADAPTER)
    for model in ("base", "notes", "notes", "radiology"):
        metrics.observe_request(model=model, endpoint=ENDPOINT, status=200, prompt_tokens=2,
                                completion_tokens=3, ttft_s=0.05, decode_s=0.1,
                                latency_s=0.2)  # fmt: skip
    expected = {("base", "none"): 1.0, ("base", "notes"): 2.0, ("base", "radiology"): 1.0}
    assert _samples(metrics, "clinical_llm_requests_total") == expected
    assert _samples(metrics, "clinical_llm_request_duration_seconds_count") == expected
    assert _samples(metrics, "clinical_llm_time_to_first_token_seconds_count") == expected
    assert _samples(metrics, "clinical_llm_tokens_out_total") == {
        k: 3 * v for k, v in expected.items()
    }


def test_names_a_client_sent_never_become_label_values() -> None:
    metrics = _metrics()
    for i in range(50):
        metrics.observe_request(model=f"Jane Doe {i}", endpoint=ENDPOINT, status=404,
                                latency_s=0.001)  # fmt: skip
    metrics.observe_request(model=None, endpoint=ENDPOINT, status=400, latency_s=0.001)
    assert metrics.labels_for("Jane Doe 1") == (UNKNOWN_MODEL, UNKNOWN_ADAPTER)
    assert _samples(metrics, "clinical_llm_request_duration_seconds_count") == {
        ("unknown", "unknown"): 51.0
    }
    assert "Jane" not in metrics.render().decode()
    # the audit line keeps the served name (an adapter's own), or "unknown"
    assert metrics.model_label("notes") == "notes"
    assert metrics.model_label("Jane Doe 1") == UNKNOWN_MODEL


def test_a_name_the_backend_lists_later_is_a_model_with_no_adapter() -> None:
    metrics = _metrics()
    metrics.serve_models(["upstream-model"])
    assert metrics.labels_for("upstream-model") == ("upstream-model", NO_ADAPTER)
