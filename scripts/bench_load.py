"""Load test: N concurrent streaming clients for T seconds against a gateway on loopback.

    .venv/bin/python scripts/bench_load.py [--clients 64] [--duration 60] \\
        [--backend transformers|vllm] [--max-concurrency 64] [--max-queue 0] [--json F]

Starts ``clinical-llm serve`` as a subprocess (its own session, on a free
loopback port) with the given capacity (``max_concurrency`` requests
generating, ``max_queue`` waiting), then runs ``--clients`` clients, each
sending streaming ``/v1/completions`` one after another until the time is up.
It reports successes, 429s, other errors, p50/p99 end-to-end latency and time
to first token, and the server's resident memory (its whole process tree, so
vLLM's engine core counts) sampled over time: the mean of the last third of
the run against the middle third says whether memory levels off.

Invariants (exit status 1 when one fails):

- clients <= capacity (``max_concurrency + max_queue``): zero errors, zero 429s;
- clients > capacity: zero errors other than clean 429s (status 429, a
  ``Retry-After`` header, an OpenAI ``rate_limit_error`` body), and some 429s;
- after the run the server is healthy with nothing in flight.

A client that gets a 429 waits ``--backoff-s`` (not the full Retry-After), so
the gateway stays over capacity for the whole run. Without ``--model`` the tiny
model is built once under the work folder (as ``bench_serve.py`` does).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import platform
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import psutil
import yaml

from llm.net import free_port

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODEL_NAME = "tiny"


def _bench_serve() -> ModuleType:
    """scripts/bench_serve.py (servers, prompts, the tiny model), loaded by path."""
    spec = importlib.util.spec_from_file_location(
        "bench_serve", Path(__file__).with_name("bench_serve.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_serve"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


serve = _bench_serve()


@dataclass
class Outcomes:
    """What the clients saw."""

    successes: int = 0
    rejected_429: int = 0
    unclean_429: int = 0
    other_errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    output_tokens: int = 0

    def error(self, kind: str) -> None:
        self.other_errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


async def one_request(
    client: httpx.AsyncClient, url: str, prompt: str, max_tokens: int, outcomes: Outcomes
) -> bool:
    """Send one streaming completion and record its outcome; True when it was a 429."""
    body = {
        "model": MODEL_NAME, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
        "stream": True, "stream_options": {"include_usage": True},
    }  # fmt: skip
    start = time.perf_counter()
    first: float | None = None
    try:
        async with client.stream("POST", url + "/v1/completions", json=body) as response:
            if response.status_code == 429:
                raw = await response.aread()
                try:
                    kind = json.loads(raw)["error"]["type"]
                except (ValueError, KeyError, TypeError):
                    kind = None
                if kind == "rate_limit_error" and response.headers.get("retry-after"):
                    outcomes.rejected_429 += 1
                else:
                    outcomes.unclean_429 += 1
                    outcomes.error("429 without Retry-After or OpenAI body")
                return True
            if response.status_code != 200:
                await response.aread()
                outcomes.error(f"HTTP {response.status_code}")
                return False
            done = False
            tokens = 0
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    done = True
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    outcomes.error(f"stream error event: {event['error'].get('type')}")
                    return False
                if first is None and any(c.get("text") for c in event.get("choices", [])):
                    first = time.perf_counter()
                if event.get("usage"):
                    tokens = int(event["usage"]["completion_tokens"])
            if not done:
                outcomes.error("stream ended without [DONE]")
                return False
    except httpx.HTTPError as exc:
        outcomes.error(type(exc).__name__)
        return False
    end = time.perf_counter()
    outcomes.successes += 1
    outcomes.latencies.append(end - start)
    outcomes.ttfts.append((first or end) - start)
    outcomes.output_tokens += tokens
    return False


async def run_clients(
    url: str, clients: int, duration_s: float, max_tokens: int, backoff_s: float
) -> Outcomes:
    """``clients`` loops of back-to-back requests until ``duration_s`` has passed."""
    outcomes = Outcomes()
    deadline = time.perf_counter() + duration_s
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    timeout = httpx.Timeout(600.0, connect=30.0)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:

        async def loop(index: int) -> None:
            sent = 0
            while time.perf_counter() < deadline:
                prompt = serve.PROMPTS[(index + sent) % len(serve.PROMPTS)]
                sent += 1
                if await one_request(client, url, prompt, max_tokens, outcomes):
                    await asyncio.sleep(backoff_s)

        await asyncio.gather(*(loop(i) for i in range(clients)))
    return outcomes


class MemorySampler:
    """Samples the resident memory of a process and its children in a thread."""

    def __init__(self, pid: int, interval_s: float) -> None:
        self.process = psutil.Process(pid)
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._start = time.perf_counter()

    def rss_mib(self) -> float:
        total = 0
        for proc in [self.process, *self.process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):  # a child that just ended
                total += proc.memory_info().rss
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.perf_counter() - self._start, self.rss_mib()))
            except psutil.Error:
                return
            self._stop.wait(self.interval_s)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def percentile(values: Sequence[float], q: float) -> float | None:
    return serve.percentile(values, q) if values else None


def memory_summary(samples: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """Start, peak, and the mean of the middle and last thirds of the run (MiB)."""
    values = [mib for _, mib in samples]
    third = len(values) // 3
    middle = values[third : 2 * third] or values
    last = values[2 * third :] or values
    middle_mean, last_mean = statistics.fmean(middle), statistics.fmean(last)
    return {
        "samples": len(values),
        "start_mib": round(values[0], 1),
        "peak_mib": round(max(values), 1),
        "middle_third_mean_mib": round(middle_mean, 1),
        "last_third_mean_mib": round(last_mean, 1),
        "last_vs_middle": round(last_mean / middle_mean, 4),
    }


def gateway_config(args: argparse.Namespace, work: Path) -> Path:
    """The serve.yaml of the run: the capacity under test, a deadline longer than the run."""
    options: dict[str, Any] = {}
    if args.backend == "vllm":
        options = {"work_dir": str(work / "vllm"), "max_model_len": 1024}
    config = {
        "max_concurrency": args.max_concurrency,
        "max_queue": args.max_queue,
        "retry_after_s": 1,
        "request_timeout_s": 600,
        "log_level": "warning",
        "backend_options": options,
    }
    path = work / f"load-{args.backend}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def server_state(url: str) -> dict[str, Any]:
    """/health and the in-flight and queue gauges after the run."""
    health = httpx.get(url + "/health", timeout=10).status_code
    gauges: dict[str, float] = {}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("clinical_llm_in_flight", "clinical_llm_queue_depth"):
            gauges[name] = float(value)
    return {"health": health, **gauges}


def check(report: dict[str, Any]) -> list[str]:
    """The invariants the run broke (empty: all held)."""
    out = report["outcomes"]
    problems = []
    if report["below_capacity"]:
        if out["other_errors"] or out["rejected_429"]:
            problems.append("below capacity, but requests failed or were refused")
    else:
        if out["other_errors"]:
            problems.append("above capacity, errors other than clean 429s")
        if not out["rejected_429"]:
            problems.append("above capacity, but no request got a 429")
    if not out["successes"]:
        problems.append("no request succeeded")
    after = report["after"]
    if (
        after["health"] != 200
        or after.get("clinical_llm_in_flight")
        or after.get("clinical_llm_queue_depth")
    ):
        problems.append(f"server not idle and healthy after the run: {after}")
    return problems


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    model = serve.ensure_model(args.model, work)
    port = free_port()
    argv = [
        str(BIN / "clinical-llm"), "serve", "--model", f"{MODEL_NAME}={model}",
        "--backend", args.backend, "--config", str(gateway_config(args, work)),
        "--port", str(port), "--audit-log", str(work / f"load-{args.backend}-audit.jsonl"),
    ]  # fmt: skip
    server = serve.start_server(f"load-{args.backend}", argv, port, work, 600, args.server_nice)
    try:
        # one untimed request: first-call costs stay out of the figures
        asyncio.run(run_clients(server.url, 1, 0.001, args.max_tokens, args.backoff_s))
        with MemorySampler(server.process.pid, args.rss_interval_s) as memory:
            started = time.perf_counter()
            outcomes = asyncio.run(
                run_clients(
                    server.url, args.clients, args.duration, args.max_tokens, args.backoff_s
                )
            )
            wall = time.perf_counter() - started
        after = server_state(server.url)
    finally:
        server.stop()
    capacity = args.max_concurrency + args.max_queue
    summary = asdict(outcomes)
    latencies, ttfts = summary.pop("latencies"), summary.pop("ttfts")
    report: dict[str, Any] = {
        "backend": args.backend,
        "model": str(model),
        "clients": args.clients,
        "duration_s": args.duration,
        "wall_s": round(wall, 1),
        "max_tokens": args.max_tokens,
        "max_concurrency": args.max_concurrency,
        "max_queue": args.max_queue,
        "below_capacity": args.clients <= capacity,
        "outcomes": summary,
        "requests_per_s": round(outcomes.successes / wall, 2),
        "output_tokens_per_s": round(outcomes.output_tokens / wall, 1),
        "latency_p50_ms": _ms(percentile(latencies, 50)),
        "latency_p99_ms": _ms(percentile(latencies, 99)),
        "ttft_p50_ms": _ms(percentile(ttfts, 50)),
        "ttft_p99_ms": _ms(percentile(ttfts, 99)),
        "memory": memory_summary(memory.samples),
        "after": after,
        "machine": {"cpus": psutil.cpu_count(), "python": platform.python_version()},
    }
    report["problems"] = check(report)
    return report


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("transformers", "vllm"), default="transformers")
    p.add_argument("--model", type=Path, help="model folder (default: build the tiny model)")
    p.add_argument("--clients", type=int, default=64, help="concurrent streaming clients")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    p.add_argument("--max-concurrency", type=int, default=64, help="gateway max_concurrency")
    p.add_argument("--max-queue", type=int, default=0, help="gateway max_queue")
    p.add_argument("--max-tokens", type=int, default=32, help="max_tokens of every request")
    p.add_argument("--backoff-s", type=float, default=0.05, help="client pause after a 429")
    p.add_argument("--rss-interval-s", type=float, default=0.5, help="memory sampling period")
    p.add_argument("--server-nice", type=int, default=0, choices=range(20),
                   help="CPU priority of the server and its session (bench_serve.py)")  # fmt: skip
    p.add_argument("--work", type=Path, default=REPO / "build" / "bench-serve",
                   help="work folder (model, logs, serve.yaml)")  # fmt: skip
    p.add_argument("--json", type=Path, help="also write the report here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    out = report["outcomes"]
    print(
        f"{report['backend']}: {report['clients']} clients x {report['wall_s']} s, capacity "
        f"{args.max_concurrency}+{args.max_queue}: {out['successes']} ok, "
        f"{out['rejected_429']} clean 429, {out['other_errors']} other errors "
        f"{out['error_kinds'] or ''}| {report['requests_per_s']} req/s, latency p50/p99 "
        f"{report['latency_p50_ms']}/{report['latency_p99_ms']} ms, TTFT p50/p99 "
        f"{report['ttft_p50_ms']}/{report['ttft_p99_ms']} ms | RSS MiB start/peak/middle/last "
        f"{report['memory']['start_mib']}/{report['memory']['peak_mib']}/"
        f"{report['memory']['middle_third_mean_mib']}/{report['memory']['last_third_mean_mib']}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    for problem in report["problems"]:
        print("FAILED:", problem)
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
