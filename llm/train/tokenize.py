"""Task datasets to token ids and labels, one :func:`tokenize_chat` call per row.

Each row's ``messages`` go through the shared chat tokenization
(:mod:`llm.models.chat_tokenize`: assistant-only labels, the truncation
policy, image placeholders); this module runs it over a ``datasets.Dataset``,
drops the rejected rows and counts what happened (:class:`TokenizeStats`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llm.errors import BadInputError
from llm.models.chat_tokenize import OK, TRUNCATED, TokenizedChat, Truncation, tokenize_chat


@dataclass
class TokenizeStats:
    """Counts of one tokenization pass; ``read == used + rejected`` always holds.

    Attributes:
        read: examples seen.
        used: examples kept (``truncated`` of them had user text cut).
        truncated: kept examples whose user text was shortened to fit.
        rejected: examples left out, by reason (:data:`~llm.models.chat_tokenize.REJECT_REASONS`).
        tokens: total tokens of the kept examples.
        label_tokens: tokens that carry a loss in the kept examples.
        prompt_tokens_removed: user-text tokens cut by truncation, in total.
    """

    read: int = 0
    used: int = 0
    truncated: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    tokens: int = 0
    label_tokens: int = 0
    prompt_tokens_removed: int = 0

    @property
    def rejected_total(self) -> int:
        """Examples left out, all reasons together."""
        return sum(self.rejected.values())

    def add(self, row: Mapping[str, Any]) -> None:
        """Count one :class:`~llm.models.chat_tokenize.TokenizedChat` (or a dataset row of one)."""
        self.read += 1
        status = str(row["status"])
        if status in (OK, TRUNCATED):
            self.used += 1
            self.truncated += status == TRUNCATED
            self.tokens += int(row["num_tokens"])
            self.label_tokens += int(row["num_label_tokens"])
            self.prompt_tokens_removed += int(row["prompt_tokens_removed"])
        else:
            self.rejected[status] = self.rejected.get(status, 0) + 1

    def summary(self) -> str:
        """One PHI-free line: ``read N = used U + rejected R`` plus reasons and token counts."""
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.rejected.items()))
        line = f"read {self.read} = used {self.used} + rejected {self.rejected_total}"
        if reasons:
            line += f" ({reasons})"
        return (
            f"{line}; truncated {self.truncated}; tokens {self.tokens}, trained {self.label_tokens}"
        )


def tokenize_batch(
    batch: Mapping[str, list[Any]],
    indices: list[int] | None = None,
    *,
    tokenizer: Any,
    max_length: int,
    assistant_only_loss: bool = True,
    truncation: Truncation = "prompt_left",
    image_seq_length: int = 1,
    split: str = "dataset",
) -> dict[str, list[Any]]:
    """Batched ``datasets.map`` function: :func:`tokenize_chat` over a ``messages`` column.

    Rejected rows stay in the output (``status`` says why) so that the caller can
    count them before filtering; see :func:`tokenize_dataset`.

    Args:
        batch: columns of a batch; needs ``messages`` (and uses ``id`` in errors).
        indices: row indices (``with_indices=True``), used in error messages.
        tokenizer: see :func:`tokenize_chat`.
        max_length: see :func:`tokenize_chat`.
        assistant_only_loss: see :func:`tokenize_chat`.
        truncation: see :func:`tokenize_chat`.
        image_seq_length: see :func:`tokenize_chat`.
        split: the split's name, for error messages.

    Returns:
        The :class:`TokenizedChat` columns for the batch.

    Raises:
        BadInputError: a row's messages are malformed (its index and id named).
    """
    if "messages" not in batch:
        raise BadInputError(f"{split}: no 'messages' column (columns: {sorted(batch)})")
    out: dict[str, list[Any]] = {key: [] for key in TokenizedChat.__annotations__}
    ids = batch.get("id")
    for i, messages in enumerate(batch["messages"]):
        row = indices[i] if indices is not None else i
        where = f"{split} row {row}" + (f" (id {ids[i]})" if ids is not None else "")
        tokenized = tokenize_chat(
            messages,
            tokenizer,
            max_length=max_length,
            assistant_only_loss=assistant_only_loss,
            truncation=truncation,
            image_seq_length=image_seq_length,
            where=where,
        )
        for key, value in tokenized.items():
            out[key].append(value)
    return out


def tokenize_dataset(
    dataset: Any,
    tokenizer: Any,
    *,
    max_length: int,
    assistant_only_loss: bool = True,
    truncation: Truncation = "prompt_left",
    image_seq_length: int = 1,
    split: str = "dataset",
    num_proc: int | None = None,
) -> tuple[Any, TokenizeStats]:
    """Tokenize a ``datasets.Dataset`` of chat rows and drop (and count) rejected rows.

    Args:
        dataset: a ``datasets.Dataset`` with a ``messages`` column.
        tokenizer: see :func:`tokenize_chat`.
        max_length: see :func:`tokenize_chat`.
        assistant_only_loss: see :func:`tokenize_chat`.
        truncation: see :func:`tokenize_chat`.
        image_seq_length: see :func:`tokenize_chat`.
        split: the split's name, for error messages.
        num_proc: worker processes for ``datasets.map``.

    Returns:
        The kept rows (original columns plus the :class:`TokenizedChat` ones) and
        the :class:`TokenizeStats` of the pass.

    Raises:
        BadInputError: a row's messages are malformed.
    """
    tokenized = dataset.map(
        tokenize_batch,
        batched=True,
        with_indices=True,
        num_proc=num_proc,
        fn_kwargs={
            "tokenizer": tokenizer,
            "max_length": max_length,
            "assistant_only_loss": assistant_only_loss,
            "truncation": truncation,
            "image_seq_length": image_seq_length,
            "split": split,
        },
        desc=f"tokenize {split}",
    )
    stats = TokenizeStats()
    columns = tokenized.select_columns(
        ["status", "num_tokens", "num_label_tokens", "prompt_tokens_removed"]
    )
    for row in columns:
        stats.add(row)
    kept_status = {OK, TRUNCATED}
    kept = tokenized.filter(
        lambda statuses: [s in kept_status for s in statuses],
        batched=True,
        input_columns=["status"],
        num_proc=num_proc,
        desc=f"drop rejected {split}",
    )
    return kept, stats
