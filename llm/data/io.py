"""Reading and writing records files (JSONL, one :class:`PatientRecord` a line).

Every reader counts what it saw: ``read = used + rejected`` (:class:`ReadStats`).
A bad line raises :class:`~llm.errors.RecordError` naming file, line and field,
unless the caller asked to skip invalid lines, in which case the line and its
errors go to a rejects file (JSONL: ``file``, ``line``, ``field``, ``error``,
``raw``) and reading goes on. Records files are UTF-8 (a byte-order mark is
allowed); a line with bytes that are not is a bad line like any other, a
UTF-16 file or one with no records at all is refused whole.

Writers go through :func:`llm.files.atomic_write`: an interrupted write leaves
the earlier file as it was and no partial one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from llm.data.schema import PatientRecord
from llm.errors import BadInputError, RecordError
from llm.files import (
    NotUtf8Error,
    atomic_write,
    decode_utf8,
    iter_byte_lines,
    parse_json_line,
)


@dataclass
class ReadStats:
    """Counts of one read: ``read == used + rejected`` always holds."""

    path: str
    read: int = 0
    used: int = 0
    rejected: int = 0
    errors: list[RecordError] = field(default_factory=list)

    def summary(self) -> str:
        """The one line every command prints: ``read N = used U + rejected R``."""
        return f"{self.path}: read {self.read} = used {self.used} + rejected {self.rejected}"

    def check(self) -> None:
        if self.read != self.used + self.rejected:  # a bug in a reader, never the user's input
            raise AssertionError(f"counts do not reconcile: {self.summary()}")


_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def format_loc(loc: tuple[int | str, ...]) -> str:
    """Turn a pydantic error location into ``encounters[0].labs[2].value``.

    A key that does not look like a field name (an unknown key holding a patient's name,
    say) is shown as ``<key>``: the location is printed and logged, and must not carry
    the record's text (the PHI canary test found this).
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = part if _FIELD_NAME.fullmatch(part) else "<key>"
            out += f".{name}" if out else name
    return out or "<record>"


def record_errors(path: str, line: int, exc: ValidationError) -> list[RecordError]:
    """One :class:`RecordError` per problem pydantic found on a line."""
    return [RecordError(path, line, format_loc(tuple(e["loc"])), e["msg"]) for e in exc.errors()]


def parse_record_line(
    text: str, *, path: str, line: int, base_dir: Path | None = None
) -> PatientRecord:
    """Parse and validate one JSONL line.

    Args:
        text: the line, without its newline.
        path: file name used in error messages.
        line: 1-based line number used in error messages.
        base_dir: directory that asset paths are relative to; ``None`` skips
            the check that image and waveform files exist.

    Returns:
        The validated record.

    Raises:
        RecordError: the first problem on the line; all of them are in its
            ``all`` attribute.
    """
    obj = parse_json_line(text, path=path, line=line)
    try:
        record = PatientRecord.model_validate(obj)
    except ValidationError as exc:
        errors = record_errors(path, line, exc)
        first = errors[0]
        first.all = errors
        if len(errors) > 1:
            first.args = (f"{first} (and {len(errors) - 1} more problem(s) on this line)",)
        raise first from None
    if base_dir is not None:
        missing = [
            RecordError(path, line, loc, f"file not found: {rel} (resolved to {base_dir / rel})")
            for loc, rel in record.asset_paths()
            if not (base_dir / rel).is_file()
        ]
        if missing:
            missing[0].all = missing
            raise missing[0]
    return record


def iter_records(
    path: str | Path,
    *,
    stats: ReadStats | None = None,
    skip_invalid: bool = False,
    rejects: IO[str] | None = None,
    check_assets: bool = True,
    rejects_raw: bool = True,
) -> Iterator[PatientRecord]:
    """Yield the valid records of a JSONL file, counting into ``stats``.

    Args:
        path: records file.
        stats: filled in as lines are read (create one to get the counts).
        skip_invalid: go on past bad lines instead of raising.
        rejects: where skipped lines are written (JSONL), when skipping.
        check_assets: check that image and waveform files exist.
        rejects_raw: copy each rejected line into its rejects entry (``raw``); False
            where the rejects file must hold no record text (``data deid`` writes it
            beside the de-identified output).

    Raises:
        BadInputError: the file does not exist, is UTF-16/32, or holds no
            records (checked when the lines run out).
        RecordError: a bad line (not JSON, not UTF-8, not a valid record),
            when ``skip_invalid`` is false.
    """
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{p}: records file not found")
    stats = stats if stats is not None else ReadStats(str(p))
    base_dir = p.parent if check_assets else None
    with p.open("rb") as fh:
        for lineno, raw in iter_byte_lines(fh, p):
            if not raw.strip():
                continue  # blank lines are layout, not records
            stats.read += 1
            try:
                text = _decode_line(raw, path=str(p), line=lineno)
                record = parse_record_line(text, path=str(p), line=lineno, base_dir=base_dir)
            except RecordError as err:
                if not skip_invalid:
                    raise
                stats.rejected += 1
                stats.errors.append(err)
                if rejects is not None:
                    shown = {"raw": raw.decode("utf-8", errors="replace")} if rejects_raw else {}
                    for e in err.all:
                        rejects.write(
                            json.dumps({**e.to_dict(), **shown}, ensure_ascii=False) + "\n"
                        )
                continue
            stats.used += 1
            yield record
    if stats.read == 0:
        raise BadInputError(f"{p}: holds no records (the file is empty or only blank lines)")
    stats.check()


def _decode_line(raw: bytes, *, path: str, line: int) -> str:
    try:
        return decode_utf8(raw, start=False)
    except NotUtf8Error as exc:
        raise RecordError(path, line, "<line>", str(exc)) from None


def read_records(
    path: str | Path,
    *,
    skip_invalid: bool = False,
    rejects_path: str | Path | None = None,
    check_assets: bool = True,
) -> tuple[list[PatientRecord], ReadStats]:
    """Read a whole records file. See :func:`iter_records` for the arguments.

    Returns:
        The valid records and the read counts.
    """
    stats = ReadStats(str(path))
    if skip_invalid and rejects_path is not None:
        with atomic_write(rejects_path) as rej:
            records = list(
                iter_records(
                    path, stats=stats, skip_invalid=True, rejects=rej, check_assets=check_assets
                )
            )
    else:
        records = list(
            iter_records(path, stats=stats, skip_invalid=skip_invalid, check_assets=check_assets)
        )
    return records, stats


def record_to_json(record: PatientRecord) -> str:
    """Serialise a record as one canonical JSON line (no newline).

    Canonical means stable key order and no floating noise, so the same record
    always gives the same bytes (the synthetic cohort relies on this).
    """
    return json.dumps(record.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"))


def write_records(path: str | Path, records: Iterable[PatientRecord]) -> int:
    """Write records as JSONL (atomically: see :func:`llm.files.atomic_write`).

    Returns:
        The number written.

    Raises:
        BadInputError: the file cannot be written (disk full, no permission);
            an earlier file at ``path`` is left as it was.
    """
    return write_jsonl(path, (record.model_dump(mode="json") for record in records))


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write plain dicts as JSONL (side files: PHI spans, rejects), atomically.

    Returns:
        The number of rows written.

    Raises:
        BadInputError: the file cannot be written (disk full, no permission);
            an earlier file at ``path`` is left as it was.
    """
    n = 0
    with atomic_write(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
            n += 1
    return n
