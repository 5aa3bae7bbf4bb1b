"""Serve a model with a real Triton server on this machine (development and tests).

Usage::

    python scripts/triton_server.py --repository REPO [--grpc-port 8001] [--http-port 8000]
    python scripts/triton_server.py --model MODEL_DIR [--name NAME] [--grpc-port 8001] ...

``--repository`` serves a repository written by ``clinical-llm export RUN
--triton --out REPO`` as is; ``--model`` first exports a plain model folder
into ``build/triton-server/models/NAME`` (replaced on each run) and serves
that. Either way the server is the ``tritonserver`` binary that PyPI
``nvidia-pytriton`` bundles, with its Python backend, running the exported
``model.py``: the same repository production Triton loads.

The binary and the model code run in ``build/triton-venv`` (made by
``scripts/triton_env.py`` on first use; nvidia-pytriton needs numpy<2). The
Python backend's stub embeds that venv's interpreter, so it needs the
interpreter's libpython on ``LD_LIBRARY_PATH`` and the venv's ``bin`` first
on ``PATH`` (that is how the stub finds the venv's site-packages). This
process is replaced by the server (``exec``): stop it with SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from triton_env import VENV

from llm.env import private_env
from llm.side_venv import REPO_ROOT

WORK_DIR = REPO_ROOT / "build" / "triton-server"
STUB = "triton_python_backend_stub"

_PROBE = """
import json, sysconfig
from pathlib import Path
import pytriton
from pytriton.utils.distribution import get_libs_path
root = Path(pytriton.__file__).parent / "tritonserver"
print(json.dumps({"dist": str(root), "libs": str(get_libs_path()),
                  "libdir": sysconfig.get_config_var("LIBDIR"),
                  "version": pytriton.__version__ if hasattr(pytriton, "__version__") else "",
                  "python": sysconfig.get_python_version()}))
"""


def probe_venv(python: Path) -> dict[str, str]:
    """Where the venv's bundled Triton lives, its libraries and the interpreter's libpython."""
    out = subprocess.run([str(python), "-c", _PROBE], check=True, capture_output=True, text=True)
    info: dict[str, str] = json.loads(out.stdout)
    return info


def prepare_backends(info: dict[str, str], work_dir: Path) -> Path:
    """A backends folder whose Python backend has the stub for the venv's Python version.

    pytriton ships one stub per Python version beside the backend; Triton looks
    for it inside ``backends/python``, so a copy of that small folder gets the
    right one (the server binary itself is used in place).
    """
    target = work_dir / f"backends-py{info['python']}"
    stub = target / "python" / STUB
    if stub.is_file():
        return target
    dist = Path(info["dist"])
    staging = work_dir / f".backends-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(dist / "backends", staging)
    shutil.copy2(dist / "python_backend_stubs" / info["python"] / STUB, staging / "python" / STUB)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def export_model_folder(model: Path, name: str, work_dir: Path) -> Path:
    """Export a plain model folder into a repository under ``work_dir`` (replaced)."""
    from llm.export.folder import check_out_folder
    from llm.export.triton import export_triton

    repository = work_dir / "models" / name
    try:
        check_out_folder(repository)
    except Exception:
        shutil.rmtree(repository)  # ours: only this script writes there
    export_triton(model, repository, name=name)
    return repository


def server_command(
    info: dict[str, str],
    backends: Path,
    repository: Path,
    *,
    host: str,
    grpc_port: int,
    http_port: int,
    metrics_port: int | None,
    verbose: bool,
) -> list[str]:
    """The ``tritonserver`` command line."""
    dist = Path(info["dist"])
    command = [
        str(dist / "bin" / "tritonserver"),
        f"--model-repository={repository}",
        f"--backend-directory={backends}",
        f"--cache-directory={dist / 'caches'}",
        f"--grpc-address={host}",
        f"--grpc-port={grpc_port}",
        f"--http-address={host}",
        f"--http-port={http_port}",
        "--strict-readiness=true",
        "--exit-timeout-secs=5",
    ]
    if metrics_port is None:
        command.append("--allow-metrics=false")
    else:
        command += [f"--metrics-address={host}", f"--metrics-port={metrics_port}"]
    if verbose:
        command.append("--log-verbose=1")
    return command


def server_env(info: dict[str, str], venv: Path) -> dict[str, str]:
    """The server's environment: libpython and pytriton's libraries, the venv first on PATH."""
    env = private_env(os.environ)
    libraries = [info["libdir"], info["libs"]]
    if env.get("LD_LIBRARY_PATH"):
        libraries.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = ":".join(libraries)
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)  # the main venv's packages (numpy 2) must not leak in
    env.pop("PYTHONHOME", None)
    return env


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--repository", type=Path, help="A Triton model repository to serve.")
    source.add_argument("--model", type=Path, help="A plain model folder to export and serve.")
    parser.add_argument("--name", help="Triton model name for --model (default: folder name).")
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
    parser.add_argument("--grpc-port", type=int, default=8001, help="gRPC port.")
    parser.add_argument("--http-port", type=int, default=8000, help="HTTP port.")
    parser.add_argument(
        "--metrics-port", type=int, default=None, help="Prometheus port (default: metrics off)."
    )
    parser.add_argument("--venv", type=Path, default=VENV.default_venv(), help="The Triton venv.")
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR, help="Server scratch folder.")
    parser.add_argument("--verbose", action="store_true", help="Verbose server log.")
    args = parser.parse_args()

    python = VENV.ensure(args.venv)
    info = probe_venv(python)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    backends = prepare_backends(info, args.work_dir)
    if args.model is not None:
        name = args.name or args.model.resolve().name
        repository = export_model_folder(args.model, name, args.work_dir)
    else:
        repository = args.repository.resolve()
        if not repository.is_dir():
            parser.error(f"--repository {repository}: not a folder")
    command = server_command(
        info,
        backends,
        repository,
        host=args.host,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        metrics_port=args.metrics_port,
        verbose=args.verbose,
    )
    print(
        f"triton: serving {repository} on grpc {args.host}:{args.grpc_port}, "
        f"http {args.host}:{args.http_port}",
        flush=True,
    )
    os.execve(command[0], command, server_env(info, args.venv))


if __name__ == "__main__":
    sys.exit(main())
