"""Prometheus metrics of the gateway, in a registry of its own per app.

Every per-request series carries ``model`` and ``adapter``: a request for an adapter
(``--adapter NAME=PATH``, served as its own model name) counts under the base model's
name with ``adapter="NAME"``; a request for the base model (or another name the
backend serves) under its name with ``adapter="none"``.

Label values are served model and adapter names, endpoints and status codes only,
all from the configuration or the backend: a model name a client sent that is not
served is recorded as ``model="unknown", adapter="unknown"``, because client-supplied
strings may carry anything (and would grow the series without bound).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

UNKNOWN_MODEL = "unknown"
UNKNOWN_ADAPTER = "unknown"
NO_ADAPTER = "none"

# statuses whose request was stopped by the gateway mid-generation
CANCEL_REASONS = {499: "client_gone", 504: "timeout"}
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# whole requests: refusals in milliseconds up to long generations on a CPU
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
MODEL_LABELS = ["model", "adapter"]


class ModelLabels(NamedTuple):
    """The ``model`` and ``adapter`` label values of one request."""

    model: str
    adapter: str


class GatewayMetrics:
    """The gateway's counters, gauges and histograms.

    Args:
        served_models: names that may appear as the ``model`` label.
        adapters: the configured adapter names (the ``adapter`` label values).
        base_model: the model the adapters run on (their ``model`` label value).
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(
        self,
        served_models: Iterable[str] = (),
        *,
        adapters: Iterable[str] = (),
        base_model: str | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._served = set(served_models)
        self._adapters = set(adapters)
        self._base_model = base_model or UNKNOWN_MODEL
        self.requests = Counter(
            "clinical_llm_requests_total",
            "Requests answered, by served model, adapter, HTTP status and endpoint.",
            [*MODEL_LABELS, "status", "endpoint"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "clinical_llm_request_duration_seconds",
            "Time from request arrival to its last byte (refusals and errors included), "
            "by model, adapter and endpoint.",
            [*MODEL_LABELS, "endpoint"],
            buckets=LATENCY_BUCKETS,
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
            [*MODEL_LABELS, "reason"],
            registry=self.registry,
        )
        self.ttft = Histogram(
            "clinical_llm_time_to_first_token_seconds",
            "Time from request arrival to the first generated text.",
            MODEL_LABELS,
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        )
        self.tpot = Histogram(
            "clinical_llm_time_per_output_token_seconds",
            "Decode time per output token after the first.",
            MODEL_LABELS,
            buckets=TPOT_BUCKETS,
            registry=self.registry,
        )
        self.tokens_in = Counter(
            "clinical_llm_tokens_in_total",
            "Prompt tokens processed.",
            MODEL_LABELS,
            registry=self.registry,
        )
        self.tokens_out = Counter(
            "clinical_llm_tokens_out_total",
            "Completion tokens generated.",
            MODEL_LABELS,
            registry=self.registry,
        )

    def serve_models(self, names: Iterable[str]) -> None:
        """Allow ``names`` as model label values (called when the backend lists its models)."""
        self._served.update(names)

    def model_label(self, model: str | None) -> str:
        """``model`` when it is served (the base model or an adapter), else ``"unknown"``."""
        return model if model in self._served or model in self._adapters else UNKNOWN_MODEL

    def labels_for(self, model: str | None) -> ModelLabels:
        """The label values of a request for ``model`` (a client-sent name).

        Returns:
            ``(base model, adapter)`` for an adapter, ``(model, "none")`` for another
            served name, ``("unknown", "unknown")`` for anything else.
        """
        if model in self._adapters:
            return ModelLabels(self._base_model, model)
        if model in self._served:
            return ModelLabels(model, NO_ADAPTER)
        return ModelLabels(UNKNOWN_MODEL, UNKNOWN_ADAPTER)

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
        latency_s: float | None = None,
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
            latency_s: seconds from arrival to the end of the request.
            generating: the request held a generation slot when it ended (a 499 or
                504 then stopped a generation).
        """
        labels = self.labels_for(model)._asdict()
        self.requests.labels(**labels, status=str(status), endpoint=endpoint).inc()
        if latency_s is not None:
            self.latency.labels(**labels, endpoint=endpoint).observe(latency_s)
        if generating and status in CANCEL_REASONS:
            self.cancelled.labels(**labels, reason=CANCEL_REASONS[status]).inc()
        if prompt_tokens:
            self.tokens_in.labels(**labels).inc(prompt_tokens)
        if completion_tokens:
            self.tokens_out.labels(**labels).inc(completion_tokens)
        if ttft_s is not None:
            self.ttft.labels(**labels).observe(ttft_s)
        if decode_s is not None and completion_tokens and completion_tokens > 1:
            self.tpot.labels(**labels).observe(decode_s / (completion_tokens - 1))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
