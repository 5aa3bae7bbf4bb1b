"""Continuous batching of concurrent requests over one causal LM, token by token.

One worker thread owns the model. At every decode step it runs ONE forward
pass for all running sequences (their KV caches stacked, left-padded), picks
each sequence's next token with the sequence's own sampler, and hands text
deltas back to the requests' event loops. Between steps it

- drops sequences that finished (end of sequence, a stop string,
  ``max_tokens``) or whose client went away (:meth:`RequestHandle.cancel`),
  so a cancelled request stops costing compute at the next step;
- admits waiting requests into the running batch: their prompts are
  prefilled together (left padding) and their caches joined to the batch
  (:mod:`serving.backends.transformers.kv_cache`).

A batch serves one adapter at a time (LoRA weights are switched per forward
pass, not per row): requests are admitted in arrival order while they share
the running batch's adapter; a request for another adapter waits until the
batch drains, and nothing queued after it overtakes it. When the batch is
empty, the first admission waits up to ``max_wait_ms`` for more requests to
arrive so that a burst is prefilled in one pass. ``max_batch_size`` caps the
rows (choices) in the batch; ``1`` serves one request at a time, the
baseline that batching is measured against.

Failures are kept to the requests they belong to. Choosing a request's token
(its sampler) and turning it into text run per row: when that raises, only
that request fails (500, ``generation_failed``) and its batch mates go on.
A batched prefill that raises is tried again one request at a time, and only
the requests whose own prefill fails are failed, unless every one of them
fails (then it is the engine). A failed decode forward pass is the engine's
failure (the shared KV cache may be half-written): every request of the
batch gets a 503.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import torch
from transformers.cache_utils import DynamicCache

from serving.backends.base import SamplingParams
from serving.backends.transformers.decoding import (
    Detokenizer,
    TextStream,
    TokenSampler,
    choice_seed,
)
from serving.backends.transformers.kv_cache import BatchCache, concat_rows, reshapable, select_rows
from serving.errors import BackendUnavailableError, ServingError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromptInputs:
    """A tokenised prompt: token ids, and pixel values for its ``<image>`` tokens if any."""

    token_ids: list[int]
    pixel_values: torch.Tensor | None = None


@dataclass(frozen=True)
class ChoiceEvent:
    """New text of one choice; ``token_count`` tokens were generated since its last event."""

    index: int
    text: str
    token_count: int
    finish_reason: Literal["stop", "length"] | None = None


@dataclass(frozen=True)
class FailureEvent:
    """The request failed inside the worker; no more events follow."""

    error: ServingError


SchedulerEvent = ChoiceEvent | FailureEvent


class ForwardPass(Protocol):
    """One forward pass of the model, returning the next-token logits of each row."""

    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: DynamicCache,
        pixel_values: torch.Tensor | None,
        adapter: str | None,
    ) -> torch.Tensor:
        """Run the model (``adapter`` active) and return ``[rows, vocab]`` logits."""
        ...


@dataclass(eq=False)
class RequestHandle:
    """A request as the scheduler sees it. ``emit`` is called from the worker thread."""

    request_id: str
    prompt: PromptInputs
    sampling: SamplingParams
    emit: Callable[[SchedulerEvent], None]
    adapter: str | None = None
    cancelled: bool = False

    def cancel(self) -> None:
        """Ask the worker to stop this request at its next step (thread-safe flag)."""
        self.cancelled = True


@dataclass
class SchedulerStats:
    """Work done so far; tests and benchmarks read it."""

    prefill_passes: int = 0
    decode_steps: int = 0
    # rows summed over decode steps: how many sequence-steps were computed
    sequence_steps: int = 0
    largest_batch: int = 0
    admitted_requests: int = 0

    @property
    def forward_passes(self) -> int:
        """Prefill plus decode forward passes."""
        return self.prefill_passes + self.decode_steps


@dataclass(eq=False)
class _Sequence:
    """One choice of a request while it is being generated."""

    handle: RequestHandle
    index: int
    sampler: TokenSampler
    text: TextStream
    generated: int = 0
    unsent_tokens: int = 0
    pending_token: int = -1
    finished: bool = False


@dataclass
class _Batch:
    sequences: list[_Sequence] = field(default_factory=list)
    cache: BatchCache | None = None
    adapter: str | None = None


class BatchScheduler:
    """Runs generation for many requests in one worker thread, one forward pass per step.

    Args:
        forward: the model's forward pass.
        tokenizer: decodes generated tokens.
        eos_token_ids: tokens that end a sequence (finish reason ``"stop"``).
        pad_token_id: token used for left padding.
        device: where input tensors are made.
        max_batch_size: most rows (choices) decoded together; 1 disables batching.
        max_wait_ms: how long an idle scheduler waits for more requests before
            prefilling the first ones.
    """

    def __init__(
        self,
        forward: ForwardPass,
        tokenizer: Detokenizer,
        *,
        eos_token_ids: frozenset[int],
        pad_token_id: int,
        device: torch.device,
        max_batch_size: int = 16,
        max_wait_ms: float = 5.0,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self._forward = forward
        self._tokenizer = tokenizer
        self._eos = eos_token_ids
        self._pad = pad_token_id
        self._device = device
        self.max_batch_size = max_batch_size
        self.max_wait_s = max(0.0, max_wait_ms) / 1000.0
        self.stats = SchedulerStats()
        self._waiting: deque[RequestHandle] = deque()
        self._batch = _Batch()
        # set once a prefilled cache turns out not to be reshapable (sliding-window layers):
        # requests are then admitted only into an empty batch
        self._joinable = True
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the worker thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="transformers-batcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the worker; requests still queued or running fail with a 503."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def alive(self) -> bool:
        """True while the worker thread runs."""
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    @property
    def running(self) -> int:
        """Sequences (choices) in the running batch."""
        return len(self._batch.sequences)

    @property
    def queue_depth(self) -> int:
        """Requests waiting for admission."""
        return len(self._waiting)

    def submit(self, handle: RequestHandle) -> None:
        """Queue a request; its events arrive through ``handle.emit``.

        Raises:
            BackendUnavailableError: the scheduler is stopped.
        """
        with self._cond:
            if self._stopping or self._thread is None:
                raise BackendUnavailableError("the transformers backend is not running")
            self._waiting.append(handle)
            self._cond.notify_all()

    def cancel(self, handle: RequestHandle) -> None:
        """Withdraw a request: dequeued if waiting, dropped from the batch at the next step."""
        handle.cancel()
        with self._cond:
            if handle in self._waiting:
                self._waiting.remove(handle)
            self._cond.notify_all()

    # ------------------------------------------------------------------ worker

    def _run(self) -> None:
        with torch.inference_mode():
            while True:
                admitted = self._next_admissions()
                if admitted is None:
                    break
                try:
                    self._drop_done()
                    if admitted:
                        self._admit(admitted)
                    if self._batch.sequences:
                        self._decode_step()
                except Exception as exc:
                    # the engine's failure (a decode forward pass, a cache join, every prefill):
                    # the traceback names tensors and shapes, never prompt text
                    logger.exception("generation step failed; failing the requests of this batch")
                    cause = exc.__cause__ if isinstance(exc, _EngineFailure) else exc
                    failed = {s.handle for s in self._batch.sequences} | set(admitted)
                    self._batch = _Batch()
                    error = BackendUnavailableError(
                        f"generation failed in the transformers backend ({type(cause).__name__})"
                    )
                    for handle in failed:
                        if not handle.cancelled:  # failed alone already, or its client left
                            _safe_emit(handle, FailureEvent(error))
        closed = BackendUnavailableError("the transformers backend was shut down")
        with self._cond:
            pending = list(self._waiting)
            self._waiting.clear()
        for handle in pending + [s.handle for s in self._batch.sequences]:
            _safe_emit(handle, FailureEvent(closed))
        self._batch = _Batch()

    def _next_admissions(self) -> list[RequestHandle] | None:
        """Wait for work; return the requests to admit now ([] to just decode), None to stop."""
        with self._cond:
            while not self._stopping and not self._waiting and not self._batch.sequences:
                self._cond.wait()
            if self._stopping:
                return None
            if not self._batch.sequences and self.max_batch_size > 1 and self.max_wait_s > 0:
                deadline = time.monotonic() + self.max_wait_s
                while not self._stopping and self._waiting_rows() < self.max_batch_size:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if self._stopping:
                    return None
            return self._take_admissible()

    def _waiting_rows(self) -> int:
        return sum(h.sampling.n for h in self._waiting)

    def _take_admissible(self) -> list[RequestHandle]:
        running = self._batch.sequences
        if not self._waiting or (running and not self._joinable):
            return []
        adapter = self._batch.adapter if running else self._waiting[0].adapter
        rows = len(running)
        taken: list[RequestHandle] = []
        # arrival order: stop at the first request of another adapter (it is served next)
        while self._waiting and self._waiting[0].adapter == adapter:
            need = self._waiting[0].sampling.n
            if rows > 0 and rows + need > self.max_batch_size:
                break
            taken.append(self._waiting.popleft())
            rows += need
            if rows >= self.max_batch_size:
                break
        return taken

    def _drop_done(self) -> None:
        batch = self._batch
        keep = [
            i for i, s in enumerate(batch.sequences) if not s.finished and not s.handle.cancelled
        ]
        if len(keep) == len(batch.sequences):
            return
        if not keep:
            self._batch = _Batch()
            return
        assert batch.cache is not None
        batch.cache = select_rows(batch.cache, keep)
        batch.sequences = [batch.sequences[i] for i in keep]

    def _admit(self, handles: list[RequestHandle]) -> None:
        """Prefill ``handles`` into the batch; a failing prefill fails only its own requests.

        Raises:
            _EngineFailure: the prefill failed for every request on its own too.
        """
        handles = [h for h in handles if not h.cancelled]
        if not handles:
            return
        try:
            self._prefill(handles)
            return
        except _EngineFailure:
            raise
        except Exception as exc:
            if len(handles) == 1:
                self._fail_request(handles[0], "prefill", exc)
                return
            # a fresh cache was being filled: nothing shared was touched, retrying is safe
            logger.warning(
                "a prefill of %d requests failed (%s); prefilling them one at a time",
                len(handles),
                type(exc).__name__,
            )
        failed: list[tuple[RequestHandle, Exception]] = []
        for handle in handles:
            try:
                self._prefill([handle])
            except _EngineFailure:
                raise
            except Exception as own:
                failed.append((handle, own))
        if len(failed) == len(handles):
            raise _EngineFailure(type(failed[0][1]).__name__) from failed[0][1]
        for handle, reason in failed:
            self._fail_request(handle, "prefill", reason)

    def _prefill(self, handles: list[RequestHandle]) -> None:
        """One forward pass over the prompts of ``handles``; their first tokens; join the batch.

        Raises:
            _EngineFailure: joining the running batch's cache failed (the batch is lost).
            Exception: the forward pass failed (nothing shared was changed).
        """
        sequences: list[_Sequence] = []
        prompts: list[PromptInputs] = []
        for handle in handles:
            params = handle.sampling
            for index in range(params.n):
                sampler = TokenSampler(
                    params.temperature, params.top_p, choice_seed(params.seed, index), self._device
                )
                text = TextStream(self._tokenizer, params.stop)
                sequences.append(_Sequence(handle, index, sampler, text))
                prompts.append(handle.prompt)
        input_ids, mask = self._left_pad([p.token_ids for p in prompts])
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
        pixels = [p.pixel_values for p in prompts if p.pixel_values is not None]
        pixel_values = torch.cat(pixels).to(self._device) if pixels else None
        cache = DynamicCache()
        adapter = handles[0].adapter
        logits = self._forward(input_ids, mask, positions, cache, pixel_values, adapter)
        self.stats.prefill_passes += 1
        self.stats.admitted_requests += len(handles)
        self._advance_rows(logits, sequences)
        if not reshapable(cache):
            self._joinable = False
        live = [i for i, s in enumerate(sequences) if not s.finished and not s.handle.cancelled]
        if not live:
            return
        try:
            fresh = BatchCache(cache, mask)
            if len(live) < len(sequences):
                fresh = select_rows(fresh, live)
            batch = self._batch
            if batch.sequences:
                assert batch.cache is not None
                batch.cache = concat_rows(batch.cache, fresh)
            else:
                batch.cache, batch.adapter = fresh, adapter
        except Exception as exc:
            # the running batch's cache may be half-replaced: that is the engine's failure
            raise _EngineFailure(type(exc).__name__) from exc
        batch.sequences.extend(sequences[i] for i in live)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch.sequences))

    def _decode_step(self) -> None:
        batch = self._batch
        assert batch.cache is not None
        tokens = torch.tensor(
            [[s.pending_token] for s in batch.sequences], dtype=torch.long, device=self._device
        )
        mask = batch.cache.mask
        positions = mask.sum(dim=1, keepdim=True)
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        logits = self._forward(tokens, mask, positions, batch.cache.cache, None, batch.adapter)
        batch.cache.mask = mask
        self.stats.decode_steps += 1
        self.stats.sequence_steps += len(batch.sequences)
        self._advance_rows(logits, batch.sequences)

    def _advance_rows(self, logits: torch.Tensor, sequences: Sequence[_Sequence]) -> None:
        """Choose and record each row's next token; a row that raises fails its request only."""
        greedy = torch.argmax(logits, dim=-1).tolist()
        for row, sequence in enumerate(sequences):
            if sequence.handle.cancelled:
                continue
            try:
                sampler = sequence.sampler
                token = int(greedy[row]) if sampler.greedy else sampler.sample(logits[row])
                self._advance(sequence, token)
            except Exception as exc:
                self._fail_request(sequence.handle, "sampling", exc)

    def _fail_request(self, handle: RequestHandle, stage: str, exc: Exception) -> None:
        """Fail one request (all its choices leave the batch at the next step); others go on."""
        if handle.cancelled:
            return  # failed already (another of its choices), or its client left
        # the traceback names tensors and shapes, never prompt text
        logger.error(
            "request %s failed in %s (%s); the other requests of the batch go on",
            handle.request_id,
            stage,
            type(exc).__name__,
            exc_info=exc,
        )
        handle.cancel()
        error = ServingError(
            f"generation failed for this request in the transformers backend "
            f"({stage}: {type(exc).__name__})",
            code="generation_failed",
        )
        _safe_emit(handle, FailureEvent(error))

    def _advance(self, sequence: _Sequence, token: int) -> None:
        """Record one generated token: emit settled text, finish on eos/stop/max_tokens."""
        sequence.generated += 1
        sequence.unsent_tokens += 1
        if token in self._eos:
            self._finish(sequence, sequence.text.flush(), "stop")
            return
        delta, stopped = sequence.text.add(token)
        if stopped:
            self._finish(sequence, delta, "stop")
        elif sequence.generated >= sequence.handle.sampling.max_tokens:
            self._finish(sequence, delta + sequence.text.flush(), "length")
        else:
            sequence.pending_token = token
            if delta:
                _safe_emit(
                    sequence.handle, ChoiceEvent(sequence.index, delta, sequence.unsent_tokens)
                )
                sequence.unsent_tokens = 0

    def _finish(self, sequence: _Sequence, delta: str, reason: Literal["stop", "length"]) -> None:
        sequence.finished = True
        event = ChoiceEvent(sequence.index, delta, sequence.unsent_tokens, reason)
        sequence.unsent_tokens = 0
        _safe_emit(sequence.handle, event)

    def _left_pad(self, rows: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row) :] = 1
        return ids.to(self._device), mask.to(self._device)


class _EngineFailure(Exception):
    """A failure of the engine rather than of one request: every request of the batch fails."""


def _safe_emit(handle: RequestHandle, event: SchedulerEvent) -> None:
    """Deliver an event; a consumer whose event loop is gone is cancelled, not fatal."""
    try:
        handle.emit(event)
    except RuntimeError:
        handle.cancel()
