"""Per-sequence decoding: choosing the next token and turning tokens into safe text deltas.

Both pieces are independent of batching: the scheduler
(:mod:`serving.backends.transformers.batching`) keeps one :class:`TokenSampler` and
one :class:`TextStream` per generated sequence, whichever batch the sequence is in
at a given step. That is what makes a request's output independent of its batch
mates: greedy decoding is an argmax of its own logits row, and sampling draws from
the request's own :class:`torch.Generator`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

REPLACEMENT_CHAR = "\ufffd"


class Detokenizer(Protocol):
    """The part of a tokenizer that :class:`TextStream` needs."""

    def decode(self, token_ids: list[int], skip_special_tokens: bool = ...) -> str:
        """Text of ``token_ids``."""
        ...


class TokenSampler:
    """Chooses the next token of one sequence: greedy at temperature 0, else top-p sampling.

    Args:
        temperature: 0 for greedy decoding, otherwise the softmax temperature.
        top_p: nucleus mass kept (1.0 keeps the whole distribution).
        seed: seeds this sequence's own generator; None draws a fresh seed.
        device: where the logits live (the generator must live there too).
    """

    def __init__(
        self, temperature: float, top_p: float, seed: int | None, device: torch.device
    ) -> None:
        self.temperature = temperature
        self.top_p = top_p
        self.generator: torch.Generator | None = None
        if temperature > 0:
            self.generator = torch.Generator(device=device)
            if seed is None:
                self.generator.seed()
            else:
                self.generator.manual_seed(seed)

    @property
    def greedy(self) -> bool:
        """True when this sequence decodes greedily."""
        return self.generator is None

    def sample(self, logits: torch.Tensor) -> int:
        """The next token id from one row of logits (``[vocab]``).

        Args:
            logits: next-token logits of this sequence.

        Returns:
            The chosen token id.
        """
        if self.generator is None:
            return int(torch.argmax(logits).item())
        probs = torch.softmax(logits.float() / self.temperature, dim=-1)
        if self.top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            # drop a token when the mass before it already reaches top_p (the top one always stays)
            drop = (torch.cumsum(sorted_probs, dim=-1) - sorted_probs) >= self.top_p
            drop[0] = False  # also when float32 rounds a tiny top_p to 0 (it emptied the row)
            sorted_probs = sorted_probs.masked_fill(drop, 0.0)
            choice = torch.multinomial(sorted_probs, 1, generator=self.generator)
            return int(order[choice].item())
        return int(torch.multinomial(probs, 1, generator=self.generator).item())


def choice_seed(seed: int | None, index: int) -> int | None:
    """The seed of choice ``index`` of a request seeded with ``seed`` (choices must differ)."""
    if seed is None:
        return None
    # a fixed odd multiplier spreads neighbouring seeds; masked to torch's 64-bit seed range
    return (seed + index * 0x9E3779B97F4A7C15) & 0xFFFF_FFFF_FFFF_FFFF


class TextStream:
    """Incremental detokenisation of one sequence with stop strings.

    Byte-level BPE tokens do not map to whole characters: the text of the
    full sequence is decoded at each token and only its new, settled suffix is
    released. Text is held back while it ends in an incomplete character
    (U+FFFD from a partial UTF-8 sequence) or in a prefix of a stop string,
    so a stop string never leaks into the output, even partly.

    Args:
        tokenizer: decodes token ids (special tokens are skipped).
        stop: stop strings; generation ends at the first one, which is not emitted.
    """

    def __init__(self, tokenizer: Detokenizer, stop: Sequence[str] = ()) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(s for s in stop if s)
        self.token_ids: list[int] = []
        self.emitted = ""
        self._text = ""

    def add(self, token_id: int) -> tuple[str, bool]:
        """Append one generated token.

        Args:
            token_id: the new token (not an end-of-sequence token).

        Returns:
            ``(delta, stopped)``: text that is now safe to emit, and whether a
            stop string was reached (the delta then ends right before it).
        """
        self.token_ids.append(token_id)
        self._text = self.tokenizer.decode(self.token_ids, skip_special_tokens=True)
        start = len(self.emitted)
        # a stop string cannot start before `start`: any prefix of one is held back
        hits = [p for p in (self._text.find(s, start) for s in self.stop) if p >= 0]
        if hits:
            return self._release(min(hits)), True
        end = len(self._text)
        while end > start and self._text[end - 1] == REPLACEMENT_CHAR:
            end -= 1
        end -= self._stop_prefix_length(self._text[start:end])
        return self._release(end), False

    def flush(self) -> str:
        """Release everything held back (the sequence ended without a stop string)."""
        return self._release(len(self._text))

    def _release(self, end: int) -> str:
        # Emitted text is never taken back: should a tokenizer clean-up ever change the
        # decoded prefix, the stream continues from the same character offset.
        delta = self._text[len(self.emitted) : end]
        self.emitted += delta
        return delta

    def _stop_prefix_length(self, pending: str) -> int:
        """Length of the longest suffix of ``pending`` that begins some stop string."""
        longest = 0
        for stop in self.stop:
            for k in range(min(len(stop) - 1, len(pending)), longest, -1):
                if pending.endswith(stop[:k]):
                    longest = k
                    break
        return longest
