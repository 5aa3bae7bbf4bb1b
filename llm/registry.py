"""A small name -> object registry with lazy ``"module:Name"`` entries.

Shaped like lm-eval's registry: an entry is either the object itself or a
``"package.module:Name"`` string imported on first use, so listing names never
imports heavy modules. A name registered twice is a programming error
(:class:`ValueError`); an unknown name is the user's error
(:class:`~llm.errors.BadInputError`, exit 2) and the message suggests the
closest known names.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from llm.errors import BadInputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names of one kind of thing (tasks, metrics, backends) and what they resolve to.

    Args:
        kind: what the names are, used in error messages (``"task"``).
        entries: initial entries, as a plain dict of name -> object or
            ``"module:Name"`` string.

    Raises:
        ValueError: ``entries`` holds a malformed lazy reference.
    """

    def __init__(self, kind: str, entries: Mapping[str, T | str] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}
        for name, entry in (entries or {}).items():
            self.register(name, entry)

    def register(self, name: str, entry: T | str) -> None:
        """Add ``name``; ``entry`` is the object or a lazy ``"module:Name"`` reference.

        Raises:
            ValueError: ``name`` is already registered, or a lazy reference lacks ``:``.
        """
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        if isinstance(entry, str) and entry.count(":") != 1:
            raise ValueError(f"lazy {self.kind} entry must look like 'module:Name', got {entry!r}")
        self._entries[name] = entry

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def suggest(self, name: str) -> list[str]:
        """Known names close to ``name`` (difflib), best first."""
        return difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)

    def check(self, name: str) -> None:
        """Raise unless ``name`` is registered.

        Raises:
            BadInputError: unknown name; the message says "did you mean" when a
                close name exists and always lists the known names.
        """
        if name in self._entries:
            return
        close = self.suggest(name)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise BadInputError(
            f"unknown {self.kind} {name!r}{hint} (known: {', '.join(self.names())})"
        )

    def get(self, name: str) -> T:
        """The object registered as ``name``, importing it first if it is lazy.

        Raises:
            BadInputError: unknown name (see :meth:`check`).
            ImportError: the lazy reference points at a module or attribute
                that does not exist (a bug, never skipped silently).
        """
        self.check(name)
        entry = self._entries[name]
        if isinstance(entry, str):
            module_name, attr = entry.split(":")
            module = importlib.import_module(module_name)
            try:
                resolved: T = getattr(module, attr)
            except AttributeError:
                raise ImportError(f"{self.kind} {name!r}: {module_name} has no {attr!r}") from None
            self._entries[name] = resolved
            return resolved
        return entry
