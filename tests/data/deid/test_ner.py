"""The windowed statistical NER: numpy products give the model's entities, and windows are
tagged once per text."""

from __future__ import annotations

from typing import Any

import pytest
from spacy.language import Language
from thinc.api import NumpyOps
from threadpoolctl import threadpool_info, threadpool_limits

from llm.data.deid.ner import MatmulOps, WindowedNer, load_ner

TEXTS = [
    "Seen today by Brenda Okafor in the Lakeshore clinic with her son Tomasz.\nPlan: Lasix.",
    "Discharged to Redwater on Aug 7, 2131. Follow up with Dr Anahera Ngata, Mass General.",
    "Dear Ms Quispe, your results from Tuesday are normal. Kind regards, Yusuf Demir",
]


@pytest.fixture(scope="module")
def pipeline() -> Language:
    return load_ner()


def _ents(nlp: Language) -> list[list[tuple[int, int, str]]]:
    return [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in nlp.pipe(TEXTS)]


def _windowed(nlp: Language) -> WindowedNer:
    return nlp.get_pipe("clinical_llm_windowed_ner")  # type: ignore[return-value]


def test_numpy_products_give_the_same_entities_as_thinc_ops(pipeline: Language) -> None:
    windowed = _windowed(pipeline)
    assert isinstance(windowed.ner.model.ops, MatmulOps)
    with_matmul = _ents(pipeline)
    reference = load_ner()
    for layer in _windowed(reference).ner.model.walk():
        layer.ops = NumpyOps()
    assert with_matmul == _ents(reference)
    assert any(with_matmul)


def test_matmul_ops_gemm_transposes_and_writes_out() -> None:
    ops, numpy_ops = MatmulOps(), NumpyOps()
    x = numpy_ops.xp.arange(12, dtype="f").reshape(3, 4)
    y = numpy_ops.xp.arange(8, dtype="f").reshape(2, 4)
    out = numpy_ops.alloc2f(3, 2)
    assert (ops.gemm(x, y, out=out, trans2=True) == numpy_ops.gemm(x, y, trans2=True)).all()
    assert (out == x @ y.T).all()
    assert (ops.gemm(x, x, trans1=True) == x.T @ x).all()


def test_a_window_is_tagged_once_per_text_and_the_cache_is_bounded(
    pipeline: Language, monkeypatch: pytest.MonkeyPatch
) -> None:
    windowed = _windowed(pipeline)
    windowed._cache.clear()
    tagged: list[int] = []

    class CountingNer:
        def __init__(self, ner: Any) -> None:
            self.ner = ner

        def pipe(self, docs: list[Any], **kwargs: Any) -> Any:
            tagged.append(len(docs))
            return self.ner.pipe(docs, **kwargs)

    monkeypatch.setattr(windowed, "ner", CountingNer(windowed.ner))
    first = _ents(pipeline)
    assert tagged and len(windowed._cache) == sum(tagged)
    tagged.clear()
    assert _ents(pipeline) == first and not tagged  # every window from the cache
    monkeypatch.setattr(windowed, "cache_size", 2)
    list(pipeline.pipe(["Visited by Oluwaseun Adeyemi and Kofi Mensah on Friday."]))
    assert len(windowed._cache) == 2


def test_the_model_runs_on_one_blas_thread_and_the_pool_is_restored(
    pipeline: Language, monkeypatch: pytest.MonkeyPatch
) -> None:
    windowed = _windowed(pipeline)
    windowed._cache.clear()
    seen: list[list[int]] = []

    def blas_threads() -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    class ThreadCountingNer:
        def __init__(self, ner: Any) -> None:
            self.ner = ner

        def pipe(self, docs: list[Any], **kwargs: Any) -> Any:
            seen.append(blas_threads())
            return list(self.ner.pipe(docs, **kwargs))

    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        monkeypatch.setattr(windowed, "ner", ThreadCountingNer(windowed.ner))
        _ents(pipeline)
        assert seen and all(threads == [1] * len(before) for threads in seen)
        assert blas_threads() == before
