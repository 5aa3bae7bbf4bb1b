"""Reading and writing files, with errors that name the file, line and problem.

Reading: every part of the project reads small JSON files it did not write
itself in this process (manifests, model configs, DeepSpeed configs, reports)
and JSONL or CSV files a line at a time (records, predictions, task datasets,
clinical sources). :func:`read_json_object`, :func:`parse_json_line` and
:func:`decode_utf8` are the one place that turns a missing file, an unreadable
one, text that is not UTF-8 (Latin-1, UTF-16), broken JSON or the wrong JSON
type into a :class:`~llm.errors.BadInputError` or
:class:`~llm.errors.RecordError` a user can act on.

Writing: :func:`atomic_write` and :func:`atomic_path` are the one way an output
file is written: to a temporary file in the same folder, renamed over the
target only when complete (``os.replace``), so an interrupted run (an error, a
full disk, Ctrl-C) leaves the earlier file as it was and no half-written one.
:func:`check_writable_dir` says before any work starts that an output folder
cannot be written.
"""

from __future__ import annotations

import codecs
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from llm.errors import BadInputError, RecordError


def json_type(value: object) -> str:
    """A parsed value's type: ``object``, ``array``, ``null``, else Python's name (``str``)."""
    names = {dict: "object", list: "array", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def read_json_object(path: Path, *, what: str, hint: str = "") -> dict[str, Any]:
    """Read a file that must hold one JSON object.

    Args:
        path: the file.
        what: what the file is, for messages ("model config", "DeepSpeed config").
        hint: appended to the not-found message: how to make the file.

    Returns:
        The parsed object.

    Raises:
        BadInputError: the file is missing or unreadable, is not valid JSON
            (with the line), or holds something other than an object.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"{path}: {what} not found{'; ' + hint if hint else ''}") from None
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: cannot read the {what}: {exc}") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: a {what} must be a JSON object, got {json_type(data)}")
    return data


def parse_json_line(text: str, *, path: str, line: int) -> dict[str, Any]:
    """Parse one JSONL line that must hold a JSON object.

    Raises:
        RecordError: naming ``path``, ``line`` and the problem (field ``<line>``).
    """
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(
            path, line, "<line>", f"not valid JSON: {exc.msg} at column {exc.colno}"
        ) from None
    if not isinstance(obj, dict):
        raise RecordError(path, line, "<line>", f"expected a JSON object, got {json_type(obj)}")
    return obj


# --------------------------------------------------------------------------- text encodings

UTF8_HINT = "the file must be UTF-8: re-encode it (e.g. `iconv -f LATIN1 -t UTF-8`)"
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


class NotUtf8Error(ValueError):
    """Bytes that are not UTF-8 text; the message says where and what to do (no file content).

    Args:
        message: the problem, without the file name.
        line: 1-based line of the first bad byte within the decoded bytes.
        column: 1-based byte column of that byte within its line.
    """

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        self.line = line
        self.column = column
        super().__init__(message)


def check_text_start(head: bytes) -> None:
    """Refuse the start of a file that is UTF-16/32 (a byte-order mark, or NUL bytes in
    its first line: UTF-16 without a mark). A UTF-8 byte-order mark is fine.

    Raises:
        NotUtf8Error: naming the encoding found.
    """
    for bom, name in _WIDE_BOMS:
        if head.startswith(bom):
            raise NotUtf8Error(
                f"{name} text (byte-order mark {bom.hex(' ').upper()}); "
                + UTF8_HINT.replace("LATIN1", name)
            )
    if b"\x00" in head.split(b"\n", 1)[0]:
        raise NotUtf8Error(
            "holds NUL bytes: UTF-16 text without a byte-order mark, or not text at all; "
            + UTF8_HINT.replace("LATIN1", "UTF-16LE")
        )


def decode_utf8(data: bytes, *, start: bool = True) -> str:
    """Decode UTF-8 bytes: a whole file, or one line of one.

    Args:
        data: the bytes.
        start: they begin the file: checked with :func:`check_text_start`, and
            a UTF-8 byte-order mark (Windows tools write one) is dropped.

    Returns:
        The text.

    Raises:
        NotUtf8Error: naming the first bad byte by value, line and column (only
            the byte's value is quoted, never the text around it: it may be PHI).
    """
    if start:
        check_text_start(data)
        if data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        multiline = b"\n" in data.rstrip(b"\r\n")
        where = f"line {line} column {column}" if multiline else f"column {column}"
        raise NotUtf8Error(
            f"not UTF-8: byte 0x{data[exc.start]:02x} at {where}; {UTF8_HINT}", line, column
        ) from None


def iter_byte_lines(fh: IO[bytes], path: str | Path) -> Iterator[tuple[int, bytes]]:
    """The lines of a binary file with their 1-based numbers, line ends removed.

    The file's start is checked with :func:`check_text_start` and loses a UTF-8
    byte-order mark. Decode each line with ``decode_utf8(raw, start=False)``,
    so that a bad byte rejects its own line and no other.

    Raises:
        BadInputError: the file is UTF-16/32 (a whole-file problem, not one line's).
    """
    for lineno, raw in enumerate(fh, start=1):
        if lineno == 1:
            try:
                check_text_start(raw)
            except NotUtf8Error as exc:
                raise BadInputError(f"{path}: {exc}") from None
            if raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
        yield lineno, raw.rstrip(b"\n").rstrip(b"\r")


# --------------------------------------------------------------------------- writing outputs


# errors that say the output cannot be written whatever file the writer was touching
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def _partial_name(path: Path) -> Path:
    # hidden, in the same folder (so os.replace is a rename on one file system), and unique
    # per process so two runs writing the same target do not share a temp file
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path to write ``path``'s content to; it replaces ``path`` on success.

    For writers that take a path (``PIL.Image.save``, ``pydicom``'s ``save_as``,
    ``shutil.copyfile``). The folder is created. On any exception the temporary
    file is removed and ``path`` is left as it was.

    Raises:
        BadInputError: the disk is full, or the temporary file or ``path``
            cannot be written (naming ``path``); other errors (reading a
            source that ``shutil.copyfile`` copies) pass through.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # the folder's parent is a file, or cannot be written
        raise write_error(target, exc) from None
    tmp = _partial_name(target)
    try:
        yield tmp
        os.replace(tmp, target)
        # rename(2) does nothing when both names are hard links to one file (a waveform
        # linked again to the same source): the temporary name would stay behind
        tmp.unlink(missing_ok=True)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and (
            exc.errno in WRITE_ERRNOS or exc.filename in (str(tmp), str(target))
        ):
            raise write_error(target, exc) from exc
        raise


@contextmanager
def atomic_write(path: str | Path, *, binary: bool = False) -> Iterator[IO[Any]]:
    """Open ``path`` for writing through a temporary file that replaces it when closed.

    Text is UTF-8 with ``\\n`` line ends. Nothing of an interrupted write is
    left: not the temporary file, and not a truncated ``path`` (an earlier
    ``path`` stays as it was).

    Raises:
        BadInputError: the disk is full or the folder cannot be written (naming
            ``path``); other errors pass through.
    """
    with atomic_path(path) as tmp:
        if binary:
            fh: IO[Any] = tmp.open("wb")
        else:
            fh = tmp.open("w", encoding="utf-8", newline="\n")
        with fh:
            yield fh


def write_error(path: Path, exc: OSError) -> BadInputError:
    """A :class:`BadInputError` naming ``path`` for an ``OSError`` met while writing it."""
    return BadInputError(
        f"{path}: cannot write: {_reason(exc)}; an earlier {path.name} is left as it was"
    )


def _reason(exc: OSError) -> str:
    return {
        errno.ENOSPC: "no space left on the device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "read-only file system",
    }.get(exc.errno or 0, exc.strerror or type(exc).__name__)


def check_writable_dir(folder: str | Path, *, what: str = "output folder", hint: str = "") -> None:
    """Fail early when files cannot be written in ``folder`` (or, when it does not
    exist yet, in its nearest existing parent): before a long run, not at its end.

    The check writes one byte to a temporary file there, syncs it and removes it
    (permission bits alone do not tell: root ignores them, a read-only mount or a
    full disk does not show in them).

    Args:
        folder: the output folder.
        what: what is written there, for the message (``"build folder"``).
        hint: what to do about it, appended to the message.

    Raises:
        BadInputError: naming the folder and why (not a folder, permission
            denied, read-only file system, disk full).
    """
    target = Path(folder)
    probe = target
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise BadInputError(f"{target}: cannot write the {what}: {probe} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe, prefix=".write-check-") as fh:
            fh.write(b"\0")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        tail = f"; {hint}" if hint else ""
        raise BadInputError(
            f"{target}: cannot write the {what} in {probe}: {_reason(exc)}{tail}"
        ) from None
