"""How every request ends: one audit line and one metrics observation.

:class:`RequestTrace` collects a request's timings and token counts while it
runs; :class:`RequestLedger` closes it, whatever the outcome (answered, refused,
failed, or the client gone), for the generation endpoints and ``/v1/models``
alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from serving.audit import AuditLog, AuditRecord
from serving.backends.base import GenerationChunk, Usage
from serving.metrics import GatewayMetrics


@dataclass
class RequestTrace:
    """Timings and counts of one request, for the audit line and the metrics.

    ``counts_tokens`` is False for requests that generate nothing (``GET
    /v1/models``): their audit line leaves the token counts empty.
    """

    counts_tokens: bool = True
    started: float = field(default_factory=time.perf_counter)
    first_text: float | None = None
    last_text: float | None = None
    completion_tokens: int = 0
    usage: Usage | None = None
    prompt_tokens: int | None = None
    # set once the request holds a generation slot and its backend generator runs
    generating: bool = False

    def saw(self, chunk: GenerationChunk) -> None:
        """Account for one backend chunk."""
        now = time.perf_counter()
        if chunk.text or chunk.token_count:
            if self.first_text is None:
                self.first_text = now
            self.last_text = now
        self.completion_tokens += chunk.token_count
        if chunk.usage is not None:
            self.usage = chunk.usage

    def final_usage(self) -> Usage:
        """The backend's usage, or one counted from the chunks when it sent none."""
        if self.usage is not None:
            return self.usage
        return Usage(self.prompt_tokens or 0, self.completion_tokens)

    def elapsed(self) -> float:
        """Seconds since the request arrived."""
        return time.perf_counter() - self.started


class RequestLedger:
    """Writes the audit line and the metrics of every request that has ended.

    Args:
        audit: where the audit lines go.
        metrics: the Prometheus metrics.
    """

    def __init__(self, audit: AuditLog, metrics: GatewayMetrics) -> None:
        self.audit = audit
        self.metrics = metrics

    def close(self, record: AuditRecord, trace: RequestTrace) -> None:
        """Complete ``record`` from ``trace``, write it, and observe it in the metrics."""
        if trace.counts_tokens:
            usage = trace.usage
            record.prompt_tokens = usage.prompt_tokens if usage else trace.prompt_tokens
            record.completion_tokens = usage.completion_tokens if usage else trace.completion_tokens
        record.latency_ms = round(trace.elapsed() * 1000, 2)
        if trace.first_text is not None:
            record.ttft_ms = round((trace.first_text - trace.started) * 1000, 2)
        self.audit.write(record)
        decode_s = (
            trace.last_text - trace.first_text
            if trace.first_text is not None and trace.last_text is not None
            else None
        )
        self.metrics.observe_request(
            model=record.model,
            endpoint=record.endpoint,
            status=record.status,
            prompt_tokens=record.prompt_tokens,
            completion_tokens=record.completion_tokens,
            ttft_s=(record.ttft_ms / 1000) if record.ttft_ms is not None else None,
            decode_s=decode_s,
            latency_s=record.latency_ms / 1000,
            generating=trace.generating,
        )
