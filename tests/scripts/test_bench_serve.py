"""scripts/bench_serve.py: the parts that need no server (the full run is a benchmark)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.scripts.fixtures import load_script


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_process_cpu_counts_a_busy_child_not_an_idle_one() -> None:
    bench = load_script("bench_serve")
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
    bench = load_script("bench_serve")
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    assert bench.process_cpu_s(done.pid) is None


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity")
def test_client_cpu_wait_grows_when_a_spinner_shares_the_core() -> None:
    bench = load_script("bench_serve")
    if bench.runqueue_wait_s() is None:
        pytest.skip("no /proc/self/schedstat (kernel without scheduler statistics)")
    cpu = min(os.sched_getaffinity(0))
    spin = (
        "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nprint('ready', flush=True)\n"
    )
    spinners = [
        subprocess.Popen(
            [sys.executable, "-c", spin + "while True: pass", str(cpu)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    before_affinity = os.sched_getaffinity(0)
    try:
        for spinner in spinners:
            assert spinner.stdout is not None and spinner.stdout.readline() == "ready\n"
        os.sched_setaffinity(0, {cpu})
        start = bench.runqueue_wait_s()
        assert start is not None
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # runnable all along, so it waits its turns
            pass
        end = bench.runqueue_wait_s()
        assert end is not None
        waited = end - start
    finally:
        os.sched_setaffinity(0, before_affinity)
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    # Three runnable threads on one core: this one waits about 2/3 of the time.
    assert waited > 0.3


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_server_starts_at_the_nice_value_asked_for(tmp_path: Path) -> None:
    bench = load_script("bench_serve")
    root = tmp_path / "root"
    (root / "v1").mkdir(parents=True)
    (root / "v1" / "models").write_text("{}")  # what start_server polls for
    port = bench.free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
            "--directory", str(root)]  # fmt: skip
    server = bench.start_server("static", argv, port, tmp_path, timeout_s=60, nice=7)
    try:
        assert os.getpriority(os.PRIO_PROCESS, server.process.pid) == 7
        # its own session is weighted down as well, where the kernel has autogroups and
        # lets us write them (a container may not)
        autogroup = Path(f"/proc/{server.process.pid}/autogroup")
        set_by_start = autogroup.read_text().strip() if autogroup.exists() else ""
        said = bench.lower_session_priority(server.process.pid, 7)
        if not said.startswith(("no autogroup", "could not")):
            assert set_by_start.endswith("nice 7")
    finally:
        server.stop()
    assert server.process.returncode is not None


def test_models_are_a_folder_or_a_shape_built_once(tmp_path: Path) -> None:
    bench = load_script("bench_serve")
    assert bench.ensure_model(Path("/models/mine"), tmp_path) == Path("/models/mine")
    for shape in ("tiny", "small"):  # already built: reused, nothing runs
        (tmp_path / f"{shape}-clinical").mkdir()
        (tmp_path / f"{shape}-clinical" / "config.json").write_text("{}")
        assert bench.ensure_model(shape, tmp_path) == tmp_path / f"{shape}-clinical"
    assert bench.ensure_model(None, tmp_path) == tmp_path / "tiny-clinical"
    assert bench.parse_args([]).batch_model == "small"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_tree_cpu_counts_a_busy_grandchild() -> None:
    bench = load_script("bench_serve")
    spawn = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "\"print('ready', flush=True)\\nwhile True: pass\"], stdout=subprocess.PIPE, text=True)\n"
        "child.stdout.readline()\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", spawn], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline() == "ready\n"
        tree_start, own_start = bench.tree_cpu_s(parent.pid), bench.process_cpu_s(parent.pid)
        time.sleep(1.0)
        tree_used = bench.tree_cpu_s(parent.pid) - tree_start
        own_used = bench.process_cpu_s(parent.pid) - own_start
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()
    assert tree_used > 0.2  # the grandchild's spinning counts
    assert own_used < 0.05
    assert bench.tree_cpu_s(parent.pid) == 0.0  # gone


def test_pairs_are_summarized_with_bootstrap_intervals() -> None:
    bench = load_script("bench_serve")
    rows = [
        {"concurrency": 8, "throughput_ratio": r, "added_latency_p50_pct": lat}
        for r, lat in ((0.8, 10.0), (1.25, -10.0), (1.0, 3.0), (1.0, 1.0))
    ] + [{"concurrency": 1, "throughput_ratio": 0.97, "added_latency_p50_pct": 2.0}] * 3
    one, eight = bench.summarize_pairs(rows)
    assert one == {
        "concurrency": 1,
        "pairs": 3,
        "throughput_ratio": [0.97, 0.97, 0.97],  # identical pairs: no spread
        "added_latency_p50_pct": [2.0, 2.0, 2.0],
    }
    ratio, low, high = eight["throughput_ratio"]
    assert ratio == 1.0  # geometric: 0.8 and 1.25 cancel
    assert low < 0.95 < 1.0 < high < 1.25
    latency, lat_low, lat_high = eight["added_latency_p50_pct"]
    assert latency == 1.0 and lat_low < 1.0 < lat_high
    assert bench.summarize_pairs(rows) == [one, eight]  # seeded: the same every run
