"""Exceptions that the CLI maps to exit codes.

* :class:`BadInputError` (exit 2): the user's input or configuration is wrong;
  the message names the file, line and field where one applies.
* :class:`CheckFailedError` (exit 1): the command ran, but a check it was asked
  to make did not pass (a de-identification recall target, an eval gate).
"""

from __future__ import annotations


class ClinicalLLMError(Exception):
    """Base class of the errors this package raises on purpose."""

    exit_code = 1


class BadInputError(ClinicalLLMError, ValueError):
    """Input data or configuration is invalid. Exit code 2."""

    exit_code = 2


class CheckFailedError(ClinicalLLMError):
    """A requested check ran and failed. Exit code 1."""

    exit_code = 1


class RecordError(BadInputError):
    """One invalid line of a records file, located by file, line and field.

    Args:
        path: the file that holds the bad line.
        line: 1-based line number.
        field: dotted location of the bad field (``encounters[0].labs[2].value``),
            or ``"<line>"`` when the line itself is not a JSON object.
        message: what is wrong, in words.
    """

    def __init__(self, path: str, line: int, field: str, message: str) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.message = message
        # every problem found on the same line (this one first); readers fill it
        self.all: list[RecordError] = [self]
        super().__init__(f"{path}:{line}: {field}: {message}")

    def to_dict(self) -> dict[str, object]:
        return {"file": self.path, "line": self.line, "field": self.field, "error": self.message}
