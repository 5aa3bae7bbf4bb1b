"""scripts/bench_serve.py: the parts that need no server (the full run is a benchmark)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _bench_serve() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_serve", REPO / "scripts/bench_serve.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_serve"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_process_cpu_counts_a_busy_child_not_an_idle_one() -> None:
    bench = _bench_serve()
    ready = "print('ready', flush=True)\n"
    busy, idle = (
        subprocess.Popen([sys.executable, "-c", ready + body], stdout=subprocess.PIPE, text=True)
        for body in ("while True: pass", "import time; time.sleep(60)")
    )
    try:
        # Past interpreter start-up, whose CPU would otherwise count for the idle one.
        assert busy.stdout is not None and idle.stdout is not None
        assert busy.stdout.readline() == idle.stdout.readline() == "ready\n"
        busy_start, idle_start = bench.process_cpu_s(busy.pid), bench.process_cpu_s(idle.pid)
        time.sleep(1.0)
        busy_used = bench.process_cpu_s(busy.pid) - busy_start
        idle_used = bench.process_cpu_s(idle.pid) - idle_start
    finally:
        busy.kill()
        idle.kill()
        busy.wait()
        idle.wait()
    # The spinning child gets a good share of a core even on a loaded 2-core machine.
    assert busy_used > 0.2
    assert idle_used < 0.05
    assert bench.process_cpu_s(os.getpid()) > 0


def test_process_cpu_of_a_gone_process_is_none() -> None:
    bench = _bench_serve()
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    assert bench.process_cpu_s(done.pid) is None
