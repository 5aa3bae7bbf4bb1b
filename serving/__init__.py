"""The OpenAI-compatible serving gateway (FastAPI); docs/serving.md is the user's guide.

Entry and wiring:

- :mod:`serving.server`: run the app under uvicorn (the CLI), or in a background thread.
- :mod:`serving.app`: ``create_app``: thin routes over the gateway, the error handlers.
- :mod:`serving.config`: ``ServeConfig`` (``serve.yaml``) and ``ServeOverrides`` (flags).

One request:

- :mod:`serving.gateway`: ``Gateway``: auth, routing, token budget, queueing, generation.
- :mod:`serving.protocol`: the OpenAI wire format; each endpoint's request class builds
  its backend request and its answers.
- :mod:`serving.connection`: the request body (size-limited) and the client leaving.
- :mod:`serving.streaming`: server-sent events and the stream's deadline.
- :mod:`serving.accounting`: the audit line and metrics every request ends with.

Policies and records:

- :mod:`serving.auth`, :mod:`serving.keys`: API keys (bearer auth, allow-lists, key files).
- :mod:`serving.limits`: the admission queue (concurrency, 429).
- :mod:`serving.errors`, :mod:`serving.errors_http`: errors and their one mapping to HTTP.
- :mod:`serving.audit`, :mod:`serving.metrics`: the audit log and Prometheus metrics.

Engines: :mod:`serving.backends` (contract in ``base``; ``transformers/``, ``vllm_backend``,
``openai_backend``, ``triton_backend``), chosen by name from a lazy registry.
"""
