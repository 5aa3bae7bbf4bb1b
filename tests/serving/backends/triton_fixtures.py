"""A real Triton server for the Triton tests: its venv, an exported repository, the process.

The Triton venv (``build/triton-venv``, made by ``scripts/triton_env.py``) is
cached in the repository's build folder, so a CI run pays its creation once
(~2.5 min) and later sessions only check its stamp. The server is
``scripts/triton_server.py`` on the repository ``export_triton`` writes for
the tiny random Llama, i.e. pytriton's bundled ``tritonserver`` loading the
exported ``config.pbtxt`` + ``model.py`` exactly as production Triton would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from filelock import FileLock

from llm.export.triton import export_triton
from llm.net import free_port
from tests.train.fixtures import session_dir

REPO = Path(__file__).resolve().parents[3]
SCRIPTS = REPO / "scripts"
MODEL_NAME = "tiny-triton"
START_TIMEOUT_S = 240


@dataclass
class TritonServer:
    """A running server: its gRPC address, the repository it serves, how long it took."""

    grpc_url: str
    http_url: str
    repository: Path
    model: str
    log: Path
    start_seconds: float
    process: subprocess.Popen[bytes]


def ensure_venv(tmp_path_factory: pytest.TempPathFactory) -> float:
    """Create or reuse build/triton-venv; returns the seconds it took."""
    started = time.monotonic()
    with FileLock(str(session_dir(tmp_path_factory) / "triton-venv.lock")):
        subprocess.run([sys.executable, str(SCRIPTS / "triton_env.py")], check=True, timeout=1200)
    return time.monotonic() - started


def start_server(
    repository: Path, model: str, log: Path, ports: tuple[int, int] | None = None
) -> TritonServer:
    """Start scripts/triton_server.py and wait until the model is ready.

    ``ports`` (gRPC, HTTP) default to free ones; a server started again after a
    crash takes its old ones.

    Raises:
        RuntimeError: the server exited or was not ready within the timeout (log attached).
    """
    grpc_port, http_port = ports or (free_port(), free_port())
    command = [
        sys.executable,
        str(SCRIPTS / "triton_server.py"),
        "--repository",
        str(repository),
        "--grpc-port",
        str(grpc_port),
        "--http-port",
        str(http_port),
    ]
    env = {**os.environ, "CLINICAL_LLM_TRITON_THREADS": "1"}
    started = time.monotonic()
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    http_url = f"http://127.0.0.1:{http_port}"
    while time.monotonic() - started < START_TIMEOUT_S:
        if process.poll() is not None:
            raise RuntimeError(f"triton server exited ({process.returncode}):\n{log.read_text()}")
        try:
            if httpx.get(f"{http_url}/v2/models/{model}/ready", timeout=1).status_code == 200:
                return TritonServer(
                    grpc_url=f"grpc://127.0.0.1:{grpc_port}",
                    http_url=http_url,
                    repository=repository,
                    model=model,
                    log=log,
                    start_seconds=time.monotonic() - started,
                    process=process,
                )
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_server(process)
    raise RuntimeError(f"triton server not ready in {START_TIMEOUT_S} s:\n{log.read_text()}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server (its exit timeout is 5 s), then kill it if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def triton_repository(tmp_path_factory: pytest.TempPathFactory, text_model: Path) -> Path:
    """A Triton repository exported from the tiny random Llama."""
    out = tmp_path_factory.mktemp("triton") / "repository"
    export_triton(text_model, out, name=MODEL_NAME)
    return out


@pytest.fixture(scope="session")
def triton_server(
    tmp_path_factory: pytest.TempPathFactory, triton_repository: Path
) -> Iterator[TritonServer]:
    """The exported repository served by a real Triton server (one per xdist worker)."""
    venv_seconds = ensure_venv(tmp_path_factory)
    log = triton_repository.parent / "server.log"
    server = start_server(triton_repository, MODEL_NAME, log)
    print(f"triton venv ready in {venv_seconds:.1f} s, server in {server.start_seconds:.1f} s")
    yield server
    stop_server(server.process)
