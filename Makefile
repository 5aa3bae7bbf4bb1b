# Two entry points for a newcomer: `make demo` and `make test`.
# Both create .venv and install what they need; nothing else is assumed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
DEMO_OUT ?= build/demo

# torch first: `torch==2.13.0` is the CPU build these machines keep on disk;
# installing it before the rest stops a resolver from pulling a CUDA build.
$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[train,eval,dev]'
	touch $(STAMP)

.PHONY: install demo test lint typecheck clean
install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/clinical-llm demo --out $(DEMO_OUT)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Unit and integration tests, the heavy `slow` ones included (they prove real
# components work); `gpu` tests skip themselves without CUDA.
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -n 2 --durations=15 $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
