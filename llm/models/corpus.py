"""The pretraining corpus: note texts of a records file, split by patient, packed.

Each note is one document. Patients, not notes, are split between training
and held-out, so the held-out perplexity measures text from patients the model
never saw. Documents are written as ``<|begin_of_text|> note <|end_of_text|>``
and concatenated, then cut into fixed-length blocks (no padding is wasted).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from llm.data.io import ReadStats, iter_records
from llm.errors import BadInputError
from llm.models.chat_template import BOS_TOKEN, EOS_TOKEN
from llm.models.tokenizer import token_id

HELD_OUT_FRACTION = 0.05


@dataclass
class NoteCorpus:
    """Note texts grouped by patient, as read from one records file.

    Attributes:
        path: the records file.
        stats: its read counts (``read = used + rejected``).
        documents: patient id -> that patient's note texts, in record order.
        patients_without_notes: used records that had no note text to learn from.
        excluded_patients: patients whose notes were dropped by :meth:`exclude`.
        diagnosis_of: every used record's patient id -> its primary diagnosis
            label (None when missing): what ``data build`` stratifies its split by.
    """

    path: Path
    stats: ReadStats
    documents: dict[str, list[str]] = field(default_factory=dict)
    patients_without_notes: int = 0
    diagnosis_of: dict[str, str | None] = field(default_factory=dict)

    excluded_patients: int = 0

    def exclude(self, patient_ids: set[str]) -> int:
        """Drop these patients' notes (e.g. a dataset's evaluation patients).

        Returns:
            How many patients of the corpus were dropped (also added to
            ``excluded_patients``).
        """
        dropped = [pid for pid in self.documents if pid in patient_ids]
        for pid in dropped:
            del self.documents[pid]
        self.excluded_patients += len(dropped)
        return len(dropped)

    @property
    def n_notes(self) -> int:
        """Number of notes (documents) in the corpus."""
        return sum(len(texts) for texts in self.documents.values())

    @property
    def n_chars(self) -> int:
        """Number of characters of note text."""
        return sum(len(t) for texts in self.documents.values() for t in texts)


def read_note_corpus(records: str | Path) -> NoteCorpus:
    """Read every note text of a records file.

    Image and waveform files are not checked: only note text is used here.

    Args:
        records: records file (JSONL), de-identified.

    Returns:
        The corpus; empty notes are left out (they carry nothing to learn).

    Raises:
        BadInputError: the file is missing, or no record has any note text.
        RecordError: a line is not a valid patient record.
    """
    path = Path(records)
    stats = ReadStats(str(path))
    corpus = NoteCorpus(path=path, stats=stats)
    for record in iter_records(path, stats=stats, check_assets=False):
        if record.patient_id in corpus.diagnosis_of:
            raise BadInputError(f"{path}: patient_id {record.patient_id!r} appears more than once")
        corpus.diagnosis_of[record.patient_id] = record.labels.primary_diagnosis
        texts = [note.text for note in record.all_notes() if note.text.strip()]
        if not texts:
            corpus.patients_without_notes += 1
            continue
        corpus.documents[record.patient_id] = texts
    if not corpus.documents:
        raise BadInputError(f"{path}: no record has any note text to pretrain on")
    return corpus


@dataclass(frozen=True)
class CorpusSplit:
    """Patient ids on each side of the train / held-out split."""

    train: list[str]
    held_out: list[str]


def split_patients(corpus: NoteCorpus, *, seed: int) -> CorpusSplit:
    """Hold out about 5% of the patients (at least one), chosen by ``seed``.

    Args:
        corpus: the note corpus.
        seed: shuffling seed; the same seed gives the same split.

    Returns:
        The split, each side in a deterministic order.

    Raises:
        BadInputError: fewer than two patients have notes.
    """
    ids = sorted(corpus.documents)
    if len(ids) < 2:
        raise BadInputError(
            f"{corpus.path}: need notes of at least 2 patients (one is held out to measure "
            f"perplexity), found {len(ids)}"
        )
    random.Random(seed).shuffle(ids)
    n_held = max(1, round(HELD_OUT_FRACTION * len(ids)))
    return CorpusSplit(train=ids[n_held:], held_out=ids[:n_held])


def document_stream(
    corpus: NoteCorpus, patient_ids: list[str], tokenizer: PreTrainedTokenizerBase
) -> list[int]:
    """Token ids of the patients' notes, each as ``<bos> note <end_of_text>``.

    Args:
        corpus: the note corpus.
        patient_ids: whose notes, in this order.
        tokenizer: tokenizer that has the two document markers.

    Returns:
        One flat list of token ids.
    """
    bos = token_id(tokenizer, BOS_TOKEN)
    eos = token_id(tokenizer, EOS_TOKEN)
    texts = [t for pid in patient_ids for t in corpus.documents[pid]]
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    stream: list[int] = []
    for ids in encoded:
        stream.append(bos)
        stream.extend(ids)
        stream.append(eos)
    return stream


def pack_blocks(stream: list[int], block_size: int) -> torch.Tensor:
    """Cut a token stream into full blocks of ``block_size`` tokens.

    Args:
        stream: token ids.
        block_size: tokens per block.

    Returns:
        A ``(n_blocks, block_size)`` long tensor; the tail shorter than one
        block is left out (callers report how many tokens that was).
    """
    n_blocks = len(stream) // block_size
    return torch.tensor(stream[: n_blocks * block_size], dtype=torch.long).view(
        n_blocks, block_size
    )


def chunk_stream(stream: list[int], block_size: int) -> list[torch.Tensor]:
    """Cut a token stream into chunks of at most ``block_size`` tokens, keeping the tail.

    Used for held-out evaluation, where every token should count. A tail of a
    single token has nothing to predict and is left out.
    """
    chunks = [stream[i : i + block_size] for i in range(0, len(stream), block_size)]
    return [torch.tensor(c, dtype=torch.long) for c in chunks if len(c) >= 2]
