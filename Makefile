# fmnist — the two commands a newcomer needs: `make run` and `make test` (both idempotent).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
DATA   := /usr/share/datasets/fashion-mnist

.PHONY: run test test-fast lint typecheck setup data models lab bench clean help docs docs-build

help:
	@echo "make run    set up (venv, package, dataset) and train the CNN 3x3 with the default recipe"
	@echo "make test   set up, lint, type-check and run the whole test suite"
	@echo "make test-fast  the tests that take no real data and no long work (under a minute)"
	@echo "make lint   ruff: lint rules and formatting (checks only; ruff format fixes the layout)"
	@echo "make typecheck  mypy (strict on the torch-free core, inference and server)"
	@echo "make models retrain the shipped models and re-export export/*.onnx"
	@echo "make lab    compute (or re-analyse) the lab's shipped record in results/: every study, hours on a CPU"
	@echo "make bench  run the benchmarks in bench/"
	@echo "make docs   generate the docs (README's tables, docs/ pages) and serve the site at http://127.0.0.1:8000"

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first and pinned: these builds install from this machine's disk (no multi-GB download)
	$(PIP) install --quiet -c constraints.txt "torch==2.14.1" "torchvision==0.29.1"
	$(PIP) install --quiet -c constraints.txt -e ".[train,cluster,test,dev]"
	touch $(STAMP)

setup: $(STAMP)

# The dataset: Debian's package when apt is usable, else say what to do (see README, "Data").
data: setup
	@if $(PY) -m fmnist_tui data >/dev/null 2>&1; then echo "dataset: found and verified"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian's dataset-fashion-mnist…"; \
	  (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1)) && \
	  $(PY) -m fmnist_tui data >/dev/null && echo "dataset: installed to $(DATA)"; \
	else $(PY) -m fmnist_tui data; exit 1; fi

RUN := checkpoints/cnn-k3-s0
run: data
	@if [ -f $(RUN)/summary.json ]; then echo "$(RUN) is already trained (delete it to train again)"; \
	elif [ -f $(RUN)/config.json ]; then $(PY) -m fmnist_tui train --resume --out checkpoints --name cnn-k3-s0; \
	else $(PY) -m fmnist_tui train --arch cnn --kernel 3 --seed 0 --out checkpoints --name cnn-k3-s0; fi
	$(PY) -m fmnist_tui evaluate $(RUN)

test: lint typecheck data docs-build
	$(PY) -m pytest -q

# The docs site: its generated pages from files (python -m fmnist_tui.docs; --pages leaves README's blocks to
# tests/test_docs.py, which fails while one is stale), built with --strict into build/site (seconds)
docs-build: setup
	$(PY) -m fmnist_tui.docs --pages
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet

# README's generated blocks and the generated pages rewritten, then the site served with live reload
docs: setup
	$(PY) -m fmnist_tui.docs
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve

# everything but the tests marked realdata or slow (training, subprocesses, terminals)
test-fast: setup
	$(PY) -m pytest -q -m "not realdata and not slow"

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: setup
	$(PY) -m mypy

# The shipped models: seed 0 of the kernel study's plan, trained with the default recipe, and the default model:
# the ResNet with its modern recipe (the ladder's top rung; 40 epochs: minutes on a GPU, over an hour on a 2-core
# CPU). Finished runs are reused, a half-done one resumed (a run folder holding another recipe is refused, never
# shipped); each is exported and verified into export/.
MODERN_RUN = resnet-shift2-s0
MODERN = --arch resnet --epochs 40 --batch-size 128 --lr 2e-3 --shift 2 --erase 0.25 --label-smoothing 0.1 --tta
models: data
	$(PY) -m fmnist_tui study kernel --seeds 1 --no-shipped --runs checkpoints --out reports/models --export export
	$(PY) -m fmnist_tui train $(MODERN) --out checkpoints --name $(MODERN_RUN) --reuse
	$(PY) -m fmnist_tui export $(MODERN_RUN) --runs checkpoints --out export

# The lab's shipped record: every study at its default preset, its runs in results/runs (small files committed,
# weights kept locally) and its analysis in results/NAME. Hours on a 2-core CPU; finished runs are reused, so a
# second call only re-analyses, and an interrupted one continues (commit finished runs as they land).
STUDIES = kernel depth pooling regularizer locality data translation noise ladder
lab: data
	for s in $(STUDIES); do $(PY) -m fmnist_tui study $$s --runs results/runs --out results/$$s || exit 1; done

bench: data
	$(PY) bench/train_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
