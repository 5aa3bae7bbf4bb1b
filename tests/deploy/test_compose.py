"""deploy/compose: the compose file, its Prometheus and Grafana files, and the dashboard's queries.

No container engine runs these here (docs/deployment.md); the checks are what can fail
offline: every referenced file exists, images are pinned, no secret is written in, the
gateway's serve.yaml loads, and every metric and label the dashboard queries is one that
serving/metrics.py exports.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from serving.config import load_serve_config
from serving.metrics import GatewayMetrics
from tests.deploy.test_docker import EXACT_VERSION

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy" / "compose"
DASHBOARD = COMPOSE_DIR / "grafana" / "dashboards" / "clinical-llm.json"
PROMQL_NAME = re.compile(r"\b(clinical_llm_\w+)")
PROMQL_BY = re.compile(r"\bby\s*\(([^)]*)\)")
PROMQL_MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
    return loaded


def exported_metrics() -> dict[str, set[str]]:
    """Every sample name the gateway exports, with its label names (``le`` for buckets)."""
    metrics = GatewayMetrics(served_models=["m", "a"], adapters=["a"], base_model="m")
    # one request of each kind, so labelled series and histogram buckets exist
    metrics.observe_request(
        model="a",
        endpoint="/v1/chat/completions",
        status=200,
        prompt_tokens=3,
        completion_tokens=4,
        ttft_s=0.1,
        decode_s=0.3,
        latency_s=0.5,
    )
    metrics.observe_request(model="m", endpoint="/v1/completions", status=499, generating=True)
    names: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def unknown_metrics_and_labels(expr: str, exported: dict[str, set[str]]) -> list[str]:
    """What ``expr`` asks for that the gateway does not export: metric names and labels."""
    problems = []
    used = PROMQL_NAME.findall(expr)
    problems += [f"metric {name}" for name in used if name not in exported]
    known = set().union(*(exported.get(name, set()) for name in used))
    labels = {label.strip() for group in PROMQL_BY.findall(expr) for label in group.split(",")}
    labels |= set(PROMQL_MATCHER.findall(expr))
    problems += [f"label {label}" for label in sorted(labels - known) if label]
    return problems


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"gateway", "prometheus", "grafana"}


def test_images_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        tag = image.rsplit(":", 1)[-1]
        # a full MAJOR.MINOR.PATCH version (the gateway: this project's own)
        assert ":" in image and EXACT_VERSION.search(tag) and "latest" not in tag, (name, image)


def test_gateway_build_points_at_a_real_dockerfile_and_target(compose: dict[str, Any]) -> None:
    build = compose["services"]["gateway"]["build"]
    context = (COMPOSE_DIR / build["context"]).resolve()
    assert context == ROOT
    dockerfile = context / build["dockerfile"]
    assert re.search(rf"^FROM .* AS {build['target']}$", dockerfile.read_text(), re.M)


def test_bind_mounted_files_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):  # named volumes and ${MODEL_DIR} are not files
                assert (COMPOSE_DIR / source).exists(), f"{name}: {source} is missing"


def test_no_secret_values_written_in(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"KEY|TOKEN|PASSWORD|SECRET", key):
                assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", str(value)), f"{name}: {key}"
    assert ".env" in (COMPOSE_DIR / ".gitignore").read_text().split()


def test_gateway_is_locked_down(compose: dict[str, Any]) -> None:
    gateway = compose["services"]["gateway"]
    assert gateway["user"].split(":")[0] not in {"0", "root"}
    assert gateway["read_only"] is True
    assert gateway["cap_drop"] == ["ALL"]
    assert all(port.startswith("127.0.0.1:") for port in gateway["ports"])


def test_gateway_serve_config_loads_and_writes_under_its_volume() -> None:
    config = load_serve_config(COMPOSE_DIR / "serve.yaml")
    assert config.require_api_keys
    assert config.port == 8000
    assert config.model_path == "/models/base"
    assert str(config.audit_log).startswith("/var/lib/clinical-llm/")


def test_prometheus_scrapes_the_gateway() -> None:
    prometheus = yaml.safe_load((COMPOSE_DIR / "prometheus" / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["gateway:8000"]


def test_grafana_datasource_is_the_one_the_dashboard_uses() -> None:
    provisioning = COMPOSE_DIR / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    uid = datasources["datasources"][0]["uid"]
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid, panel["title"]
    providers = yaml.safe_load((provisioning / "dashboards" / "clinical-llm.yaml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dashboard_queries_only_exported_metrics_and_labels() -> None:
    exported = exported_metrics()
    problems = {expr: unknown_metrics_and_labels(expr, exported) for expr in _dashboard_exprs()}
    assert {expr: found for expr, found in problems.items() if found} == {}


def test_dashboard_covers_requests_latency_tokens_429_and_5xx_by_model_and_adapter() -> None:
    exprs = "\n".join(_dashboard_exprs())
    for needed in (
        "clinical_llm_requests_total",
        'status="429"',
        'status=~"5.."',
        "clinical_llm_time_to_first_token_seconds_bucket",
        "clinical_llm_time_per_output_token_seconds_bucket",
        "clinical_llm_tokens_in_total",
        "clinical_llm_tokens_out_total",
        "clinical_llm_request_duration_seconds_bucket",
        "by (model, adapter",
        'adapter=~"$adapter"',
    ):
        assert needed in exprs, needed


def test_the_metric_check_catches_a_wrong_name_or_label() -> None:
    exported = exported_metrics()
    wrong_label = 'sum by (tenant) (rate(clinical_llm_requests_total{model="x"}[5m]))'
    assert unknown_metrics_and_labels(wrong_label, exported) == ["label tenant"]
    wrong_name = "rate(clinical_llm_request_total[5m])"
    assert unknown_metrics_and_labels(wrong_name, exported) == ["metric clinical_llm_request_total"]
