"""clinical-llm: clinical records to a fine-tuned, fairness-checked, served LLM."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("clinical-llm")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
