"""The offline spaCy pipeline that Presidio runs before its recognizers.

Presidio's default engine downloads ``en_core_web_lg`` on first use, which
fails on a machine without internet (and would send nothing useful for
clinical text anyway). Instead this module builds a pipeline in code: a blank
English tokenizer plus an ``entity_ruler`` that tags ``NAME`` where a common
first name is followed by a capitalised word (``Mary Okafor``), or a
capitalised word by a common surname (``Tobias Nguyen``). The pipeline is saved
to a cache folder and Presidio is given that folder's path as ``model_name``;
nothing is downloaded.

The cache folder is ``$CLINICAL_LLM_CACHE/spacy`` (default
``~/.cache/clinical-llm/spacy``); each build lives in a sub-folder named after
a hash of its inputs, so an edited name list gives a fresh build.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import spacy
from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine
from spacy.tokens import Doc

from llm.data.deid.recognizers import NOT_NAME_WORDS, load_lexicon

CACHE_ENV = "CLINICAL_LLM_CACHE"
NER_LABELS = ("NAME",)
_BUILD_VERSION = "1"


def cache_root() -> Path:
    """Where this package caches things: ``$CLINICAL_LLM_CACHE`` or ``~/.cache/clinical-llm``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "clinical-llm"


def name_patterns() -> list[dict[str, Any]]:
    """Entity-ruler patterns for names built from the shipped first-name and surname lists."""
    first = sorted(set(load_lexicon("first_names")))
    last = sorted(set(load_lexicon("surnames")))
    first_upper = [n.upper() for n in first]
    not_name = sorted(w.title() for w in NOT_NAME_WORDS) + sorted(NOT_NAME_WORDS)
    capitalised = {
        "IS_TITLE": True,
        "IS_ALPHA": True,
        "TEXT": {"NOT_IN": not_name},
        "LENGTH": {">=": 2},
    }
    initial = {"TEXT": {"REGEX": r"^[A-Z]\.?$"}}
    return [
        {"label": "NAME", "pattern": [{"TEXT": {"IN": first}}, capitalised]},
        {"label": "NAME", "pattern": [{"TEXT": {"IN": first}}, initial, capitalised]},
        {"label": "NAME", "pattern": [{"TEXT": {"IN": first}}, capitalised, capitalised]},
        {"label": "NAME", "pattern": [capitalised, {"TEXT": {"IN": last}}]},
        {
            "label": "NAME",
            "pattern": [{"TEXT": {"IN": last}}, {"ORTH": ","}, {"TEXT": {"IN": first}}],
        },
        {
            "label": "NAME",
            "pattern": [
                {"TEXT": {"IN": first_upper}},
                {"IS_UPPER": True, "IS_ALPHA": True, "LENGTH": {">=": 2}},
            ],
        },
    ]


def world_name_patterns() -> list[dict[str, Any]]:
    """Entity-ruler patterns of the statistical pipeline: the US and world name lexicons.

    Only spellings that count as names without context are used
    (:func:`~llm.data.deid.vocabulary.context_free_names`); a capitalised
    neighbour must not be a clinical term or common word.
    """
    from llm.data.deid.vocabulary import context_free_names, protected_words

    first = sorted(context_free_names("first"))
    last = sorted(context_free_names("last"))
    protected = sorted(protected_words())
    capitalised = {
        "IS_TITLE": True,
        "IS_ALPHA": True,
        "LOWER": {"NOT_IN": protected},
        "LENGTH": {">=": 2},
    }
    initial = {"TEXT": {"REGEX": r"^[A-Z]\.?$"}}
    either = sorted({*first, *last})
    return [
        {"label": "NAME", "pattern": [{"TEXT": {"IN": first}}, capitalised]},
        {"label": "NAME", "pattern": [{"TEXT": {"IN": first}}, initial, capitalised]},
        {"label": "NAME", "pattern": [capitalised, {"TEXT": {"IN": last}}]},
        {"label": "NAME", "pattern": [{"TEXT": {"IN": last}}, {"ORTH": ","}, capitalised]},
        {"label": "NAME", "pattern": [{"TEXT": {"IN": either}}]},
        {
            "label": "NAME",
            "pattern": [
                {"TEXT": {"IN": [n.upper() for n in first]}},
                {"IS_UPPER": True, "IS_ALPHA": True, "LENGTH": {">=": 2}},
            ],
        },
    ]


def build_statistical_pipeline() -> spacy.language.Language:
    """The hash-checked statistical NER (:mod:`llm.data.deid.ner`) plus the world name ruler.

    The ruler runs after the NER and overwrites its entities where they
    overlap: a lexicon name is a name even where the model says ``ORG``.

    Raises:
        ModelIntegrityError: the model files are not the pinned ones.
    """
    from llm.data.deid.ner import load_ner

    nlp = load_ner()
    ruler = nlp.add_pipe("entity_ruler", config={"overwrite_ents": True}, after="ner")
    ruler.add_patterns(world_name_patterns())  # type: ignore[attr-defined]
    return nlp


def _build_key(patterns: list[dict[str, Any]]) -> str:
    blob = json.dumps(
        {"v": _BUILD_VERSION, "spacy": spacy.__version__, "patterns": patterns}, sort_keys=True
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def build_pipeline() -> spacy.language.Language:
    """Build the blank English pipeline with the name entity ruler (in memory)."""
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler", config={"overwrite_ents": True})
    ruler.add_patterns(name_patterns())  # type: ignore[attr-defined]
    return nlp


def ensure_pipeline(cache_dir: Path | None = None) -> Path:
    """Return the path of the saved pipeline, building and saving it on first use.

    Several worker processes may call this at once: each builds into its own
    temporary folder and renames it into place; the loser of the race uses the
    winner's copy.

    Args:
        cache_dir: where pipelines are kept (default ``cache_root() / "spacy"``).

    Returns:
        A folder that ``spacy.load`` (and so Presidio's ``SpacyNlpEngine``) can load.
    """
    root = cache_dir if cache_dir is not None else cache_root() / "spacy"
    patterns = name_patterns()
    target = root / f"deid-en-{_build_key(patterns)}"
    if (target / "config.cfg").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    try:
        build_pipeline().to_disk(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "config.cfg").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


class EntityOnlySpacyNlpEngine(SpacyNlpEngine):
    """Presidio's spaCy engine without the per-token lemma lists.

    The clinical recognizers carry their context inside their patterns and use
    only the entity ruler's entities, so building a lemma and offset list for
    every token (a third of the analysis time) buys nothing.
    """

    def _doc_to_nlp_artifact(self, doc: Doc, language: str) -> NlpArtifacts:
        entities, scores = self._get_updated_entities(
            list(self._get_entities(doc)), self._get_scores_for_entities(doc)
        )
        return NlpArtifacts(
            entities=entities,
            tokens=doc,
            tokens_indices=[],
            lemmas=[],
            nlp_engine=self,
            language=language,
            scores=scores,
        )


class PrebuiltSpacyNlpEngine(EntityOnlySpacyNlpEngine):
    """:class:`EntityOnlySpacyNlpEngine` over a pipeline built in memory (nothing loaded by name).

    Args:
        nlp: the pipeline.
        ner_model_configuration: Presidio's mapping of the pipeline's labels.
    """

    def __init__(self, nlp: spacy.language.Language, ner_model_configuration: Any) -> None:
        super().__init__(
            models=[{"lang_code": "en", "model_name": "prebuilt"}],
            ner_model_configuration=ner_model_configuration,
        )
        self._prebuilt = nlp

    def load(self) -> None:
        """Use the prebuilt pipeline."""
        self.nlp = {"en": self._prebuilt}  # type: ignore[assignment]


class PatternContextEnhancer(ContextAwareEnhancer):
    """A context enhancer that leaves scores alone: context is part of each pattern."""

    def __init__(self) -> None:
        super().__init__(
            context_similarity_factor=0.0,
            min_score_with_context_similarity=0.0,
            context_prefix_count=0,
            context_suffix_count=0,
        )

    def enhance_using_context(
        self,
        text: str,
        raw_results: list[RecognizerResult],
        nlp_artifacts: NlpArtifacts,
        recognizers: list[EntityRecognizer],
        context: list[str] | None = None,
    ) -> list[RecognizerResult]:
        """Return ``raw_results`` unchanged."""
        return raw_results
