"""clinical-llm: clinical records to a fine-tuned, fairness-checked, served LLM."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("clinical-llm")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"


def _check_import_name() -> None:
    """Stop every entry point (``python -m llm.train`` too) beside a foreign ``llm``."""
    try:
        from clinical_llm import import_name_conflict
    except ImportError:  # a source tree used without install: nothing to compare with
        return
    problem = import_name_conflict()
    if problem is not None:
        raise ImportError(problem)


_check_import_name()

__all__ = ["__version__"]
