"""The ``transformers`` backend: a local Hugging Face model served in-process.

- :mod:`~serving.backends.transformers.backend`: :class:`TransformersBackend`, the
  :class:`~serving.backends.base.Backend` (loading, adapters, options, chunks).
- :mod:`~serving.backends.transformers.chat`: chat messages and images to the model's
  prompt (chat template, data-URL images).
- :mod:`~serving.backends.transformers.batching`: the continuous-batching scheduler and
  its worker thread.
- :mod:`~serving.backends.transformers.decoding`: per-sequence sampling and text deltas.
- :mod:`~serving.backends.transformers.kv_cache`: stacking and pruning the batch's KV cache.

The registry (:data:`serving.backends.BACKENDS`) names the backend module itself, so
importing this package costs nothing.
"""
