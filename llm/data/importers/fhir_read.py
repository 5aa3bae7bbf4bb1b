"""Reading FHIR sources: Bundle files and NDJSON pools, validated entry by entry.

Each resource is validated with the R4 models of ``fhir.resources`` (its
``R4B`` package, which matches R4 for every resource the importer reads) so
that an error names the file, the entry (or NDJSON line) and the field.
Errors are collected on the entries, not raised: the importer decides which
patient they reject.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from llm.data.importers.common import SourceError
from llm.data.io import format_loc
from llm.errors import BadInputError, RecordError
from llm.files import NotUtf8Error, decode_utf8, iter_byte_lines


@dataclass
class FhirEntry:
    """One resource read from a Bundle entry or an NDJSON line."""

    path: str
    line: int  # 1-based entry number in a Bundle, line number in NDJSON
    in_bundle: bool
    raw: dict[str, Any]
    full_url: str | None = None
    resource: Any = None  # the validated fhir.resources model, None when invalid
    errors: list[RecordError] = field(default_factory=list)

    @property
    def rtype(self) -> str:
        return str(self.raw.get("resourceType") or "<no resourceType>")

    @property
    def rid(self) -> str | None:
        rid = self.raw.get("id")
        return str(rid) if rid is not None else None

    @property
    def label(self) -> str:
        return f"{self.rtype}/{self.rid}" if self.rid else self.rtype

    def error(self, field_: str, message: str) -> SourceError:
        return SourceError(
            self.path, self.line, field_, message, resource=self.label, entry=self.in_bundle
        )


@dataclass
class Pool:
    """The resources that references may point between: one Bundle, or all NDJSON files."""

    name: str
    entries: list[FhirEntry]
    errors: list[RecordError] = field(default_factory=list)  # file-level: nothing readable


def fhir_sources(bundle_dir: Path) -> tuple[list[Path], list[Path]]:
    """The ``*.json`` Bundles and ``*.ndjson`` files of ``bundle_dir``, sorted.

    Raises:
        BadInputError: the folder is missing or holds neither.
    """
    if not bundle_dir.is_dir():
        raise BadInputError(f"{bundle_dir}: FHIR folder not found")
    bundles = sorted(p for p in bundle_dir.glob("*.json") if p.is_file())
    ndjson = sorted(p for p in bundle_dir.glob("*.ndjson") if p.is_file())
    if not bundles and not ndjson:
        raise BadInputError(f"{bundle_dir}: no *.json Bundles or *.ndjson files")
    return bundles, ndjson


def _validate(entry: FhirEntry) -> None:
    try:
        model = get_fhir_model_class(entry.rtype)
    except (KeyError, ValueError):
        entry.errors.append(
            entry.error("resourceType", f"unknown FHIR R4 resource type {entry.rtype!r}")
        )
        return
    try:
        entry.resource = model.model_validate(entry.raw)
    except ValidationError as exc:
        entry.errors += [entry.error(format_loc(tuple(e["loc"])), e["msg"]) for e in exc.errors()]


def read_bundle(path: Path) -> Pool:
    """Read and validate one Bundle file (errors are collected, not raised)."""
    name = str(path)
    data = path.read_bytes()
    if not data.strip():
        return Pool(name, [], [SourceError(name, 0, "<file>", "empty file (no Bundle)")])
    try:
        obj = json.loads(decode_utf8(data))
    except NotUtf8Error as exc:
        return Pool(name, [], [SourceError(name, 0, "<file>", str(exc))])
    except json.JSONDecodeError as exc:
        where = f"at line {exc.lineno} column {exc.colno}"
        return Pool(
            name, [], [SourceError(name, 0, "<file>", f"not valid JSON {where}: {exc.msg}")]
        )
    if not isinstance(obj, dict) or obj.get("resourceType") != "Bundle":
        got = obj.get("resourceType") if isinstance(obj, dict) else type(obj).__name__
        return Pool(
            name, [], [SourceError(name, 0, "resourceType", f"expected a FHIR Bundle, got {got!r}")]
        )
    raw_entries = obj.get("entry") or []
    if not isinstance(raw_entries, list):
        return Pool(name, [], [SourceError(name, 0, "entry", "must be a list")])
    entries: list[FhirEntry] = []
    shell_entries: list[Any] = []
    for i, raw in enumerate(raw_entries):
        resource = raw.get("resource") if isinstance(raw, dict) else None
        entry = FhirEntry(
            name,
            i + 1,
            True,
            resource if isinstance(resource, dict) else {},
            full_url=raw.get("fullUrl") if isinstance(raw, dict) else None,
        )
        if not isinstance(raw, dict):
            entry.errors.append(entry.error("<entry>", "must be a JSON object"))
        elif not isinstance(resource, dict):
            entry.errors.append(entry.error("resource", "missing or not a JSON object"))
        else:
            _validate(entry)
        entries.append(entry)
        shell_entries.append(
            {k: v for k, v in raw.items() if k != "resource"} if isinstance(raw, dict) else raw
        )
    # the Bundle's own fields (type, entry.fullUrl, …), with resources checked above
    try:
        get_fhir_model_class("Bundle").model_validate({**obj, "entry": shell_entries or None})
    except ValidationError as exc:
        for e in exc.errors():
            loc = tuple(e["loc"])
            if len(loc) >= 2 and loc[0] == "entry" and isinstance(loc[1], int):
                target = entries[loc[1]]
                target.errors.append(target.error(f"<entry>.{format_loc(loc[2:])}", e["msg"]))
            else:
                return Pool(name, [], [SourceError(name, 0, format_loc(loc), e["msg"])])
    return Pool(name, entries)


def read_ndjson(paths: list[Path]) -> Pool:
    """Read and validate NDJSON resource files as one pool."""
    entries: list[FhirEntry] = []
    for path in paths:
        with path.open("rb") as fh:
            for lineno, raw in iter_byte_lines(fh, path):
                if not raw.strip():
                    continue
                entry = FhirEntry(str(path), lineno, False, {})
                try:
                    obj = json.loads(decode_utf8(raw, start=False))
                except NotUtf8Error as exc:
                    entry.errors.append(entry.error("<line>", str(exc)))
                except json.JSONDecodeError as exc:
                    entry.errors.append(
                        entry.error("<line>", f"not valid JSON at column {exc.colno}: {exc.msg}")
                    )
                else:
                    if isinstance(obj, dict):
                        entry.raw = obj
                        _validate(entry)
                    else:
                        entry.errors.append(entry.error("<line>", "not a JSON object"))
                entries.append(entry)
    return Pool(" + ".join(str(p) for p in paths), entries)


class Resolver:
    """Finds the entry a reference string points to within a pool."""

    def __init__(self, entries: list[FhirEntry]) -> None:
        self._by_key: dict[str, FhirEntry] = {}
        for e in entries:
            if e.full_url:
                self._by_key[e.full_url] = e
            if e.rid:
                self._by_key.setdefault(f"{e.rtype}/{e.rid}", e)

    def resolve(self, ref: str | None) -> FhirEntry | None:
        if not ref:
            return None
        if ref in self._by_key:
            return self._by_key[ref]
        parts = ref.rstrip("/").split("/")
        tail = "/".join(parts[-2:]) if len(parts) >= 2 else ref
        if len(parts) >= 4 and parts[-2] == "_history":  # versioned: Type/id/_history/n
            tail = "/".join(parts[-4:-2])
        return self._by_key.get(tail)


def raw_ref(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict) and isinstance(value.get("reference"), str):
        return str(value["reference"])
    return None
