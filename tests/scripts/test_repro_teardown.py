"""scripts/repro_teardown.py: the gloo teardown abort, and what end_rank_process does about it.

``--hold-gil`` makes the race certain (docs/training.md "Process teardown"): ranks
that keep their gloo groups past the interpreter's finalization abort; ranks that
destroy them first, or end with ``os._exit`` as ``end_rank_process`` does, do not.
If a torch release changes the first, the reason for the ``os._exit`` is worth a
second look; if it changes the last two, multi-process runs can fail after saving.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.scripts.fixtures import REPO


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(("variant", "aborted"), [("held", 2), ("released", 0), ("os_exit", 0)])
def test_held_gloo_groups_abort_at_teardown_and_os_exit_does_not(
    variant: str, aborted: int, tmp_path: Path
) -> None:
    argv = [sys.executable, str(REPO / "scripts/repro_teardown.py"), "gloo", "--variant", variant]
    argv += ["--hold-gil", "--runs", "1", "--no-cores", "--out", str(tmp_path)]
    argv += ["--port", str(_free_port())]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert f"{aborted} aborted ranks in 1 runs" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == (1 if aborted else 0)
    assert not list(tmp_path.glob("core*"))
