"""Prometheus metrics of the gateway, in a registry of its own per app.

Label values are served model names, endpoints and status codes only: a model
name a client sent that is not served is recorded as ``"unknown"``, because
client-supplied strings may carry anything.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

UNKNOWN_MODEL = "unknown"

# statuses whose request was stopped by the gateway mid-generation
CANCEL_REASONS = {499: "client_gone", 504: "timeout"}
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class GatewayMetrics:
    """The gateway's counters, gauges and histograms.

    Args:
        served_models: names that may appear as the ``model`` label.
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, served_models: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._served = set(served_models)
        self.requests = Counter(
            "clinical_llm_requests_total",
            "Requests answered, by served model, HTTP status and endpoint.",
            ["model", "status", "endpoint"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "clinical_llm_queue_depth",
            "Requests waiting for a generation slot.",
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "clinical_llm_in_flight",
            "Requests generating now.",
            registry=self.registry,
        )
        self.cancelled = Counter(
            "clinical_llm_generations_cancelled_total",
            "Generations stopped before their end, by reason: client_gone (the client "
            "disconnected, status 499) or timeout (request_timeout_s passed, 504).",
            ["model", "reason"],
            registry=self.registry,
        )
        self.ttft = Histogram(
            "clinical_llm_time_to_first_token_seconds",
            "Time from request arrival to the first generated text.",
            ["model"],
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        )
        self.tpot = Histogram(
            "clinical_llm_time_per_output_token_seconds",
            "Decode time per output token after the first.",
            ["model"],
            buckets=TPOT_BUCKETS,
            registry=self.registry,
        )
        self.tokens_in = Counter(
            "clinical_llm_tokens_in_total",
            "Prompt tokens processed.",
            ["model"],
            registry=self.registry,
        )
        self.tokens_out = Counter(
            "clinical_llm_tokens_out_total",
            "Completion tokens generated.",
            ["model"],
            registry=self.registry,
        )

    def serve_models(self, names: Iterable[str]) -> None:
        """Allow ``names`` as model label values (called when the backend lists its models)."""
        self._served.update(names)

    def model_label(self, model: str | None) -> str:
        """``model`` when it is served, else ``"unknown"``."""
        return model if model in self._served else UNKNOWN_MODEL

    def queue_changed(self, in_flight: int, waiting: int) -> None:
        """Update the queue gauges (the admission queue's callback)."""
        self.in_flight.set(in_flight)
        self.queue_depth.set(waiting)

    def observe_request(
        self,
        *,
        model: str | None,
        endpoint: str,
        status: int,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        ttft_s: float | None = None,
        decode_s: float | None = None,
        generating: bool = False,
    ) -> None:
        """Record one finished request.

        Args:
            model: the requested model name (mapped to ``unknown`` unless served).
            endpoint: the route path.
            status: the HTTP status answered (or 499 for a client that went away).
            prompt_tokens: prompt length, when known.
            completion_tokens: tokens generated, when known.
            ttft_s: seconds to the first text, when any was produced.
            decode_s: seconds from the first to the last text.
            generating: the request held a generation slot when it ended (a 499 or
                504 then stopped a generation).
        """
        label = self.model_label(model)
        self.requests.labels(model=label, status=str(status), endpoint=endpoint).inc()
        if generating and status in CANCEL_REASONS:
            self.cancelled.labels(model=label, reason=CANCEL_REASONS[status]).inc()
        if prompt_tokens:
            self.tokens_in.labels(model=label).inc(prompt_tokens)
        if completion_tokens:
            self.tokens_out.labels(model=label).inc(completion_tokens)
        if ttft_s is not None:
            self.ttft.labels(model=label).observe(ttft_s)
        if decode_s is not None and completion_tokens and completion_tokens > 1:
            self.tpot.labels(model=label).observe(decode_s / (completion_tokens - 1))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
