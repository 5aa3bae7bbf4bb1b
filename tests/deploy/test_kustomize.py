"""deploy/kustomize: every overlay rendered by `kubectl kustomize`, every object validated
against the Kubernetes schemas of pinned versions (`kubernetes-validate`, strict: unknown
fields fail), and the rules of docs/deployment.md checked on what was rendered.

kubectl is required (.ci/run installs it when missing). Debian's kubernetes-client (1.20,
kustomize v2.0.3) and newer kubectl builds both render these overlays: they keep `bases` and
`patchesStrategicMerge`, which the old kustomize needs and newer ones accept with a warning.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from serving.config import ServeConfig, load_serve_config

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS_DIR = ROOT / "deploy" / "kustomize" / "overlays"
OVERLAYS = sorted(p.name for p in OVERLAYS_DIR.iterdir() if (p / "kustomization.yaml").exists())
# the oldest Kubernetes still in common support here, and the newest the package knows
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
GATEWAY = "clinical-llm-gateway"
STATE_DIR = "/var/lib/clinical-llm"


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize` renders from ``directory``."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        # no skip: CI installs it (.ci/run); a missing renderer must not pass as green
        pytest.fail("kubectl is missing: apt-get install -y kubernetes-client")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(OVERLAYS_DIR / request.param)


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} rendered"
    return matches[0]


def serve_config(objects: list[dict[str, Any]], tmp_path: Path) -> ServeConfig:
    (config_map,) = [o for o in objects if o["kind"] == "ConfigMap"]
    assert config_map["metadata"]["name"].startswith(f"{GATEWAY}-config")
    path = tmp_path / "serve.yaml"
    path.write_text(config_map["data"]["serve.yaml"])
    return load_serve_config(path)


def test_there_are_three_overlays() -> None:
    assert set(OVERLAYS) == {"cpu", "vllm", "upstream"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid(rendered: tuple[str, list[dict[str, Any]]], version: str) -> None:
    _, objects = rendered
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_validator_refuses_a_broken_object() -> None:
    deployment = yaml.safe_load(
        (ROOT / "deploy/kustomize/base/gateway-deployment.yaml").read_text()
    )
    kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)
    deployment["spec"]["template"]["spec"]["containers"][0]["imagee"] = "typo"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)
    deployment = yaml.safe_load((ROOT / "deploy/kustomize/base/gateway-hpa.yaml").read_text())
    deployment["spec"]["minReplicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_gateway_objects(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        find(objects, kind, GATEWAY)
    find(objects, "NetworkPolicy", GATEWAY)
    assert find(objects, "HorizontalPodAutoscaler", GATEWAY)["spec"]["scaleTargetRef"]["name"] == (
        GATEWAY
    )
    assert not [o for o in objects if o["kind"] == "Secret"], "secrets are made by the operator"
    assert {o["metadata"].get("namespace") for o in objects} == {"clinical-llm"}


def _pod_is_restricted(pod: dict[str, Any]) -> None:
    # the "restricted" Pod Security Standard, and a read-only root filesystem
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]
        for budget in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][budget])


def test_gateway_pod(rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    _, objects = rendered
    pod = find(objects, "Deployment", GATEWAY)["spec"]["template"]["spec"]
    _pod_is_restricted(pod)
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    # writable places are emptyDirs; everything else is read-only
    assert "emptyDir" in mounts[STATE_DIR] and "emptyDir" in mounts["/tmp"]
    config = serve_config(objects, tmp_path)
    assert config.require_api_keys
    assert str(config.audit_log).startswith(f"{STATE_DIR}/")
    assert config.api_keys_file is not None
    keys_volume = mounts[str(config.api_keys_file.parent)]
    assert keys_volume["secret"]["secretName"] == GATEWAY
    assert mounts["/etc/clinical-llm"]["configMap"]["name"].startswith(f"{GATEWAY}-config")
    audit_key = {e["name"]: e for e in container["env"]}["CLINICAL_LLM_AUDIT_KEY"]
    assert audit_key["valueFrom"]["secretKeyRef"]["name"] == GATEWAY
    env_values = [e for e in container["env"] if "value" in e]
    assert env_values == [], "secrets come from secretKeyRef, never a literal value"


def test_backend_of_each_overlay(
    rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    overlay, objects = rendered
    config = serve_config(objects, tmp_path)
    gateway = find(objects, "Deployment", GATEWAY)["spec"]["template"]["spec"]
    mounts = {m["mountPath"] for m in gateway["containers"][0]["volumeMounts"]}
    if overlay == "cpu":
        assert config.backend == "transformers"
        assert "/models" in mounts and str(config.model_path).startswith("/models/")
        return
    assert config.backend == "openai"
    assert "/models" not in mounts
    env = {e["name"] for e in gateway["containers"][0]["env"]}
    assert config.backend_options["api_key_env"] in env
    if overlay == "vllm":
        service = find(objects, "Service", "clinical-llm-vllm")
        port = service["spec"]["ports"][0]["port"]
        assert config.model_path == f"http://clinical-llm-vllm:{port}/v1"
        vllm = find(objects, "Deployment", "clinical-llm-vllm")["spec"]["template"]["spec"]
        _pod_is_restricted(vllm)
        (container,) = vllm["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert "--served-model-name" in container["args"]
        served = container["args"][container["args"].index("--served-model-name") + 1]
        assert config.backend_options["upstream_model"] == served
        find(objects, "NetworkPolicy", "clinical-llm-vllm")
