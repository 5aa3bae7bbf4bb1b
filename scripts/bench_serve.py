"""Serving benchmark: the gateway vs vLLM's own server; batching in the transformers backend.

    .venv/bin/python scripts/bench_serve.py [--model PATH] [--json build/bench-serve.json]

Every server is a real subprocess on a free loopback port, started here and
stopped at the end: ``clinical-llm serve`` (the gateway, with the vllm or the
transformers backend) and ``python -m vllm.entrypoints.openai.api_server``.
The load generator (asyncio + httpx) sends streaming ``/v1/completions``
requests from a fixed prompt set (greedy, fixed ``max_tokens``) with a fixed
number of clients, after a warm-up, and measures per configuration:

- request throughput (requests/s) and output tokens/s (from the streamed usage),
- time to first token (TTFT) p50 / p99, end-to-end latency p50,
- time per output token (TPOT, after the first) p50,
- CPU time of the server's front process (the one that takes HTTP requests,
  tokenizes and streams: the gateway, or vLLM's API server; its engine runs in
  child processes) per request, from psutil. At one client it is the
  front end's own cost per request. With more clients it also falls as more
  requests share each engine step (one output message per step), so compare
  it only between levels of about the same throughput.

Comparisons, in one run:

(a) gateway + vllm backend vs vLLM's own OpenAI server on the same model and
    engine settings, at each concurrency (default 1, 8, 32): throughput ratio
    (target >= 0.95), added p50 latency (target < 5%) and the ratio of front
    process CPU per request. The two servers are measured alternately per
    level so that drifting CPU load hits both.
(b) gateway + transformers backend with batching (``max_batch_size`` 16) vs one
    request at a time (``max_batch_size`` 1) at concurrency 16 (target >= 4x).

Every server runs at a lower CPU priority than the load generator
(``--server-nice``, default 10; on Linux with autogroup scheduling its whole
session too), the same for every server. On a machine with few cores the
engine's busy-polling process otherwise takes the CPU the load generator needs
to send requests and read streams, and the benchmark then measures the starved
client instead of the server: on 2 cores vLLM's own server measured 11-15 or
30-60 requests/s at 8 clients depending on how much CPU the client got.
Each level reports the share of its wall time the client spent runnable but
waiting for a CPU (``client_cpu_wait``), which should stay near 0.

Without ``--model`` the tiny model (3.95 M parameters) is built once into
build/bench-serve/ with ``clinical-llm data synth`` and ``clinical-llm model
init``. Comparison (b) uses the ``small`` shape (30 M parameters, 30
pretraining steps) unless ``--batch-model`` names a folder: the tiny model's
16 MB of weights stay in the CPU's caches, so even one request's decode step
is bound by arithmetic, which batching cannot share, while any real model's
one-request step waits on memory, which it can. ``--batch-model tiny``
measures the tiny model anyway.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil  # installed with accelerate
import yaml

from llm.env import private_env
from llm.net import free_port

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODEL_NAME = "tiny"
# Fixed prompts in the style of the synthetic notes the tiny model was trained on.
PROMPTS = (
    "CHIEF COMPLAINT: cough and fever for three days.",
    "HISTORY OF PRESENT ILLNESS: 71 year old woman with COPD presents with",
    "Labs: WBC 14.2 K/uL, lactate 2.1 mmol/L. Vitals: heart rate 104,",
    "ASSESSMENT AND PLAN: community acquired pneumonia,",
    "Chest radiograph shows right lower lobe consolidation",
    "DISCHARGE SUMMARY: The patient was admitted with",
    "ECG: sinus tachycardia at 112 beats per minute,",
    "MEDICATIONS ON ADMISSION: metformin 500 mg twice daily,",
    "PHYSICAL EXAM: alert and oriented, mild respiratory distress,",
    "BRIEF HOSPITAL COURSE: treated with intravenous antibiotics and",
    "SOCIAL HISTORY: former smoker, lives with daughter,",
    "Creatinine 1.8 mg/dL, up from a baseline of 1.1,",
    "The patient reports chest pain radiating to the left arm",
    "FOLLOW UP: primary care physician in one week,",
    "Blood cultures drawn; started on vancomycin and",
    "PAST MEDICAL HISTORY: hypertension, type 2 diabetes,",
)


# ---------------------------------------------------------------- servers


def server_env(work: Path) -> dict[str, str]:
    """Offline, no telemetry, vLLM caches under the work folder, CPU KV cache of 1 GiB."""
    env = private_env(
        os.environ,
        VLLM_CACHE_ROOT=str(work / "vllm-cache"),
        TORCHINDUCTOR_CACHE_DIR=str(work / "inductor"),
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    return env


@dataclass
class Server:
    """A server subprocess (its own process group, so engine children stop with it)."""

    label: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after 30 s."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def lower_session_priority(pid: int, nice: int) -> str:
    """Give the autogroup of session leader ``pid`` the nice value ``nice``; say what happened.

    With autogroup scheduling (Linux's default on desktops and many VMs), nice
    values only rank processes of one session against each other, and every
    session gets an equal share of the CPU. A server started in its own session
    at ``nice`` would still compete with the load generator as an equal, so its
    session's own weight is lowered too.
    """
    autogroup = Path(f"/proc/{pid}/autogroup")
    if not autogroup.exists():
        return "no autogroup scheduling; the nice value alone ranks the processes"
    try:
        autogroup.write_text(str(nice))
    except OSError as exc:
        return f"could not set the session's autogroup nice value ({exc})"
    return autogroup.read_text().strip()


def start_server(
    label: str, argv: list[str], port: int, work: Path, timeout_s: float, nice: int = 0
) -> Server:
    """Start ``argv`` at CPU priority ``nice`` and wait until ``/v1/models`` answers.

    Raises:
        RuntimeError: the process exited or did not answer within ``timeout_s``.
    """
    log = work / f"{label}.log"
    if nice:
        argv = ["nice", "-n", str(nice), *argv]  # nice execs: the pid stays the server's
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=REPO, env=server_env(work), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    if nice:
        print(f"{label}: nice {nice}; session {lower_session_priority(process.pid, nice)}")
    server = Server(label, f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{label} exited ({process.returncode}); see {log}")
        try:
            if httpx.get(server.url + "/v1/models", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"{label} did not answer within {timeout_s:.0f} s; see {log}")


def gateway_argv(
    backend: str, model: Path, port: int, work: Path, label: str, options: dict[str, Any]
) -> list[str]:
    """``clinical-llm serve`` with a serve.yaml that lets every benchmark client in at once."""
    config = {
        "max_concurrency": 64,
        "max_queue": 256,
        "max_tokens_cap": 4096,
        "request_timeout_s": 600,
        "log_level": "warning",
        "backend_options": options,
    }
    config_path = work / f"{label}.yaml"
    config_path.write_text(yaml.safe_dump(config))
    return [
        str(BIN / "clinical-llm"), "serve", "--model", f"{MODEL_NAME}={model}",
        "--backend", backend, "--config", str(config_path), "--port", str(port),
        "--audit-log", str(work / f"{label}-audit.jsonl"),
    ]  # fmt: skip


def vllm_server_argv(model: Path, port: int, max_model_len: int) -> list[str]:
    """vLLM's own OpenAI server with the engine settings the vllm backend uses."""
    return [
        str(BIN / "python"), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model), "--served-model-name", MODEL_NAME,
        "--host", "127.0.0.1", "--port", str(port), "--enforce-eager",
        "--max-model-len", str(max_model_len), "--seed", "0", "--disable-log-stats",
    ]  # fmt: skip


# ---------------------------------------------------------------- load


@dataclass
class RequestResult:
    """Timings of one streamed request (seconds)."""

    ttft: float
    latency: float
    output_tokens: int

    @property
    def tpot(self) -> float | None:
        """Time per output token after the first."""
        if self.output_tokens < 2:
            return None
        return (self.latency - self.ttft) / (self.output_tokens - 1)


async def one_request(
    client: httpx.AsyncClient, url: str, prompt: str, max_tokens: int
) -> RequestResult:
    """Send one streaming completion and time it.

    Raises:
        RuntimeError: a non-200 answer or a stream without usage.
    """
    body = {
        "model": MODEL_NAME, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
        "stream": True, "stream_options": {"include_usage": True},
    }  # fmt: skip
    start = time.perf_counter()
    first: float | None = None
    tokens: int | None = None
    async with client.stream("POST", url + "/v1/completions", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            raise RuntimeError(f"{url}: HTTP {response.status_code}: {response.text[:200]}")
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if first is None and any(c.get("text") for c in event.get("choices", [])):
                first = time.perf_counter()
            if event.get("usage"):
                tokens = int(event["usage"]["completion_tokens"])
    end = time.perf_counter()
    if tokens is None:
        raise RuntimeError(f"{url}: the stream carried no usage")
    return RequestResult((first or end) - start, end - start, tokens)


@dataclass
class LevelResult:
    """One server at one concurrency."""

    server: str
    concurrency: int
    requests: int
    wall_s: float
    requests_per_s: float
    output_tokens_per_s: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    latency_p50_ms: float
    tpot_p50_ms: float
    mean_output_tokens: float
    front_cpu_ms_per_request: float | None
    client_cpu_wait: float | None


def runqueue_wait_s() -> float | None:
    """Seconds this process's main thread has been runnable but not running; None off Linux.

    The second field of ``/proc/self/schedstat`` (nanoseconds); the load
    generator's event loop runs on the main thread.
    """
    try:
        return int(Path("/proc/self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (all its threads); None once it is gone."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return None
    return times.user + times.system


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by ``pid`` and its descendants (0 for any gone meanwhile)."""
    try:
        pids = [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    except psutil.NoSuchProcess:
        return 0.0
    return sum(process_cpu_s(p) or 0.0 for p in pids)


def wait_until_idle(
    servers: Sequence[Server], busy: float = 0.1, window_s: float = 0.25, timeout_s: float = 15
) -> None:
    """Wait (at most ``timeout_s``) until ``servers`` together use under ``busy`` cores.

    vLLM's engine core keeps polling its worker for a second after its last
    step, at a full core on CPU; a level started meanwhile would share the
    machine with the server measured just before.
    """
    if not servers:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = sum(tree_cpu_s(s.process.pid) for s in servers)
        time.sleep(window_s)
        if sum(tree_cpu_s(s.process.pid) for s in servers) - before < busy * window_s:
            return


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


async def run_level(
    server: Server, concurrency: int, requests: int, max_tokens: int, warmup: int
) -> LevelResult:
    """``requests`` streamed requests from ``concurrency`` clients after ``warmup`` untimed."""
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        await asyncio.gather(
            *(one_request(client, server.url, PROMPTS[i % len(PROMPTS)], max_tokens)
              for i in range(warmup))
        )  # fmt: skip
        queue: asyncio.Queue[str] = asyncio.Queue()
        for i in range(requests):
            queue.put_nowait(PROMPTS[i % len(PROMPTS)])
        results: list[RequestResult] = []

        async def client_loop() -> None:
            while not queue.empty():
                prompt = queue.get_nowait()
                results.append(await one_request(client, server.url, prompt, max_tokens))

        cpu_before, wait_before = process_cpu_s(server.process.pid), runqueue_wait_s()
        start = time.perf_counter()
        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
        wall = time.perf_counter() - start
        cpu_after, wait_after = process_cpu_s(server.process.pid), runqueue_wait_s()
    tokens = sum(r.output_tokens for r in results)
    tpots = [t for r in results if (t := r.tpot) is not None]
    return LevelResult(
        server=server.label,
        concurrency=concurrency,
        requests=len(results),
        wall_s=round(wall, 3),
        requests_per_s=round(len(results) / wall, 3),
        output_tokens_per_s=round(tokens / wall, 1),
        ttft_p50_ms=round(1000 * percentile([r.ttft for r in results], 50), 1),
        ttft_p99_ms=round(1000 * percentile([r.ttft for r in results], 99), 1),
        latency_p50_ms=round(1000 * percentile([r.latency for r in results], 50), 1),
        tpot_p50_ms=round(1000 * percentile(tpots, 50), 2) if tpots else float("nan"),
        mean_output_tokens=round(tokens / max(len(results), 1), 1),
        front_cpu_ms_per_request=(
            round(1000 * (cpu_after - cpu_before) / len(results), 2)
            if cpu_before is not None and cpu_after is not None and results
            else None
        ),
        client_cpu_wait=(
            round((wait_after - wait_before) / wall, 3)
            if wait_before is not None and wait_after is not None
            else None
        ),
    )


# ---------------------------------------------------------------- the benchmark


@dataclass
class Report:
    """Everything one run measured, with the machine it ran on."""

    machine: dict[str, Any]
    settings: dict[str, Any]
    levels: list[LevelResult] = field(default_factory=list)
    vllm_comparison: list[dict[str, Any]] = field(default_factory=list)
    vllm_summary: list[dict[str, Any]] = field(default_factory=list)
    batching: dict[str, Any] = field(default_factory=dict)


def bootstrap_mean(
    values: Sequence[float], draws: int = 10_000, seed: int = 0
) -> tuple[float, float, float]:
    """The mean of ``values`` and its 95% percentile-bootstrap interval (seeded, repeatable)."""
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(draws))
    return sum(values) / n, means[int(0.025 * draws)], means[int(0.975 * draws) - 1]


def summarize_pairs(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per client count, over its alternating pairs: the ratios' geometric mean, the mean
    added p50 latency, each with a 95% bootstrap interval over the pairs.

    One pair moves by several percent on a busy or small machine; the targets
    (ratio >= 0.95, added latency < 5%) are settled only when the whole interval
    is on one side of them, which takes about ten pairs per level.
    """
    summary = []
    for concurrency in sorted({row["concurrency"] for row in rows}):
        pairs = [row for row in rows if row["concurrency"] == concurrency]
        ratio, ratio_low, ratio_high = bootstrap_mean(
            [math.log(row["throughput_ratio"]) for row in pairs]
        )
        latency, latency_low, latency_high = bootstrap_mean(
            [row["added_latency_p50_pct"] for row in pairs]
        )
        summary.append(
            {
                "concurrency": concurrency,
                "pairs": len(pairs),
                "throughput_ratio": [round(math.exp(v), 3) for v in (ratio, ratio_low, ratio_high)],
                "added_latency_p50_pct": [
                    round(v, 1) for v in (latency, latency_low, latency_high)
                ],
            }
        )
    return summary


def requests_at(concurrency: int, per_client: int, minimum: int) -> int:
    """Requests for a level: ``per_client`` per client, at least ``minimum``."""
    return max(concurrency * per_client, minimum)


def compare_vllm(report: Report, args: argparse.Namespace, model: Path, work: Path) -> None:
    """(a): the gateway's vllm backend vs vLLM's own server, alternating per level."""
    options = {"work_dir": str(work / "gateway-vllm"), "max_model_len": args.max_model_len}
    gw_port, vllm_port = free_port(), free_port()
    servers = [
        start_server("vllm-server", vllm_server_argv(model, vllm_port, args.max_model_len),
                     vllm_port, work, args.start_timeout, args.server_nice),
        start_server("gateway-vllm",
                     gateway_argv("vllm", model, gw_port, work, "gateway-vllm", options),
                     gw_port, work, args.start_timeout, args.server_nice),
    ]  # fmt: skip
    try:
        for position, concurrency in enumerate(args.concurrency):
            n = requests_at(concurrency, args.requests_per_client, args.min_requests)
            by_label: dict[str, LevelResult] = {}
            # alternate which server goes first so a load change does not favour one side
            for server in servers if position % 2 == 0 else servers[::-1]:
                wait_until_idle([other for other in servers if other is not server])
                result = asyncio.run(
                    run_level(server, concurrency, n, args.max_tokens, args.warmup)
                )
                report.levels.append(result)
                by_label[server.label] = result
                print_level(result)
            ours, theirs = by_label["gateway-vllm"], by_label["vllm-server"]
            report.vllm_comparison.append(
                {
                    "concurrency": concurrency,
                    "throughput_ratio": round(ours.requests_per_s / theirs.requests_per_s, 3),
                    "tokens_ratio": round(ours.output_tokens_per_s / theirs.output_tokens_per_s, 3),
                    "added_latency_p50_pct": round(
                        100 * (ours.latency_p50_ms / theirs.latency_p50_ms - 1), 1
                    ),
                    "added_ttft_p50_pct": round(
                        100 * (ours.ttft_p50_ms / theirs.ttft_p50_ms - 1), 1
                    ),
                    "front_cpu_ratio": (
                        round(ours.front_cpu_ms_per_request / theirs.front_cpu_ms_per_request, 3)
                        if ours.front_cpu_ms_per_request and theirs.front_cpu_ms_per_request
                        else None
                    ),
                }
            )
    finally:
        for server in servers:
            server.stop()


def compare_batching(report: Report, args: argparse.Namespace, model: Path, work: Path) -> None:
    """(b): the transformers backend batching 16 requests vs one at a time."""
    concurrency = args.batch_concurrency
    n = requests_at(concurrency, args.batch_requests_per_client, args.min_requests)
    results: dict[int, LevelResult] = {}
    for batch in (16, 1):
        label = f"gateway-transformers-batch{batch}"
        port = free_port()
        argv = gateway_argv("transformers", model, port, work, label, {"max_batch_size": batch})
        server = start_server(label, argv, port, work, args.start_timeout, args.server_nice)
        try:
            result = asyncio.run(run_level(server, concurrency, n, args.max_tokens, args.warmup))
        finally:
            server.stop()
        report.levels.append(result)
        results[batch] = result
        print_level(result)
    report.batching = {
        "concurrency": concurrency,
        "throughput_ratio": round(results[16].requests_per_s / results[1].requests_per_s, 2),
        "tokens_ratio": round(results[16].output_tokens_per_s / results[1].output_tokens_per_s, 2),
    }


# ``model init`` settings of the models built here; small is pretrained only briefly (its
# throughput, not its notes, is measured) so that building it takes about a minute
BUILT_MODELS = {"tiny": [], "small": ["--size", "small", "--steps", "30"]}


def ensure_model(model: Path | str | None, work: Path) -> Path:
    """``model`` (a folder), or a shape of ``BUILT_MODELS`` built once under ``work``.

    ``None`` means the tiny shape. Models are built by the project's own commands.
    """
    if model is None:
        model = "tiny"
    if str(model) not in BUILT_MODELS or Path(model).is_dir():
        return Path(model)
    shape = str(model)
    folder = work / f"{shape}-clinical"
    if (folder / "config.json").exists():
        return folder
    cli = str(BIN / "clinical-llm")
    cohort = work / "cohort"
    synth = [cli, "data", "synth", "--patients", "60", "--seed", "3", "--out", str(cohort)]
    steps = [] if (cohort / "records.jsonl").exists() else [synth]
    steps.append(
        [cli, "model", "init", "--records", str(cohort / "records.jsonl"), "--out", str(folder),
         *BUILT_MODELS[shape]]
    )  # fmt: skip
    for argv in steps:
        print(f"building the {shape} model:", " ".join(argv[1:3]), flush=True)
        subprocess.run(argv, cwd=REPO, env=server_env(work), check=True)
    return folder


def print_level(result: LevelResult) -> None:
    """One table row."""
    print(
        f"{result.server:32} c={result.concurrency:<3} n={result.requests:<4} "
        f"{result.requests_per_s:8.2f} req/s {result.output_tokens_per_s:9.1f} tok/s  "
        f"TTFT p50 {result.ttft_p50_ms:8.1f} p99 {result.ttft_p99_ms:8.1f} ms  "
        f"latency p50 {result.latency_p50_ms:8.1f} ms  TPOT p50 {result.tpot_p50_ms:6.2f} ms  "
        f"({result.mean_output_tokens} tok/req)  "
        f"front CPU {result.front_cpu_ms_per_request} ms/req  "
        f"client CPU wait {result.client_cpu_wait}",
        flush=True,
    )


def machine() -> dict[str, Any]:
    """What ran the benchmark (numbers from other machines are not comparable)."""
    load = os.getloadavg()
    return {
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "loadavg_at_start": [round(x, 2) for x in load],
        "gpu": "none",
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="model folder (default: build the tiny model)")
    p.add_argument("--work", type=Path, default=REPO / "build" / "bench-serve",
                   help="folder for the built model, configs, server logs and caches")  # fmt: skip
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")],
                   default=[1, 8, 32], help="client counts of (a), comma-separated")  # fmt: skip
    p.add_argument("--requests-per-client", type=int, default=4,
                   help="timed requests per client at each level of (a)")  # fmt: skip
    p.add_argument(
        "--min-requests", type=int, default=16, help="timed requests per level, at least"
    )
    p.add_argument("--max-tokens", type=int, default=64, help="max_tokens of every request")
    p.add_argument("--max-model-len", type=int, default=1024, help="engine context length (vLLM)")
    p.add_argument("--warmup", type=int, default=4, help="untimed requests before each level")
    p.add_argument("--batch-concurrency", type=int, default=16, help="client count of (b)")
    p.add_argument("--batch-requests-per-client", type=int, default=4,
                   help="timed requests per client in (b)")  # fmt: skip
    p.add_argument(
        "--start-timeout", type=float, default=600, help="seconds a server may take to start"
    )
    p.add_argument("--server-nice", type=int, default=10, choices=range(20),
                   metavar="0-19", help="nice value of every server and its session, so "
                   "that it cannot starve the load generator (0: same priority)")  # fmt: skip
    p.add_argument("--batch-model", default="small",
                   help="model folder of comparison (b), or tiny or small to build that "
                   "shape (default small)")  # fmt: skip
    p.add_argument("--skip-vllm", action="store_true", help="leave out comparison (a)")
    p.add_argument("--skip-batching", action="store_true", help="leave out comparison (b)")
    p.add_argument("--json", type=Path, help="also write the results here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the table and the ratios."""
    args = parse_args(argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    model = ensure_model(args.model, work).resolve()
    batch_model = None if args.skip_batching else ensure_model(args.batch_model, work).resolve()
    report = Report(
        machine=machine(),
        settings={**vars(args), "model": str(model), "batch_model": str(batch_model)},
    )
    started = time.time()
    if not args.skip_vllm:
        compare_vllm(report, args, model, work)
    if not args.skip_batching:
        assert batch_model is not None
        compare_batching(report, args, batch_model, work)
    report.machine["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report.machine["wall_s"] = round(time.time() - started, 1)
    report.vllm_summary = summarize_pairs(report.vllm_comparison)
    for row in report.vllm_comparison:
        print(
            f"(a) c={row['concurrency']:<3} gateway/vLLM throughput {row['throughput_ratio']:.3f} "
            f"(target >= 0.95), added p50 latency {row['added_latency_p50_pct']:+.1f}% "
            f"(target < 5%), added TTFT p50 {row['added_ttft_p50_pct']:+.1f}%, "
            f"front CPU per request {row['front_cpu_ratio']}x"
        )
    for row in report.vllm_summary:
        ratio, latency = row["throughput_ratio"], row["added_latency_p50_pct"]
        print(
            f"(a) c={row['concurrency']:<3} over {row['pairs']} pair(s): throughput ratio "
            f"{ratio[0]:.3f} [{ratio[1]:.3f}, {ratio[2]:.3f}], added p50 latency "
            f"{latency[0]:+.1f}% [{latency[1]:+.1f}, {latency[2]:+.1f}] "
            f"(geometric mean and mean, 95% bootstrap intervals)"
        )
    if report.batching:
        b = report.batching
        print(
            f"(b) c={b['concurrency']} transformers batch 16 / batch 1 throughput "
            f"{b['throughput_ratio']:.2f}x (target >= 4x)"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = asdict(report)
        payload["settings"] = {k: str(v) if isinstance(v, Path) else v
                               for k, v in payload["settings"].items()}  # fmt: skip
        args.json.write_text(json.dumps(payload, indent=2))
    where = f"results in {args.json}" if args.json else "no --json given"
    print(f"bench_serve: done in {report.machine['wall_s']} s; {where}; logs in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
