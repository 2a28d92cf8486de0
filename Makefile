# fmnist — the two commands a newcomer needs: `make run` and `make test` (both idempotent).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
DATA   := /usr/share/datasets/fashion-mnist

.PHONY: run test test-fast lint typecheck setup data models bench clean help

help:
	@echo "make run    set up (venv, package, dataset) and train the CNN 3x3 with the default recipe"
	@echo "make test   set up, lint, type-check and run the whole test suite"
	@echo "make test-fast  the tests that take no real data and no long work (under a minute)"
	@echo "make lint   ruff: lint rules and formatting (checks only; ruff format fixes the layout)"
	@echo "make typecheck  mypy (strict on the torch-free core, inference and server)"
	@echo "make models retrain the shipped models and re-export export/*.onnx"
	@echo "make bench  run the benchmarks in bench/"

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

test: lint typecheck data
	$(PY) -m pytest -q

# everything but the tests marked realdata or slow (training, subprocesses, terminals)
test-fast: setup
	$(PY) -m pytest -q -m "not realdata and not slow"

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: setup
	$(PY) -m mypy

# The shipped models: one seed of the kernel study's plan (fmnist experiment's default grid), trained with the
# default recipe, and the default model: the ResNet with its modern recipe (README, "The ResNet"; 40 epochs:
# minutes on a GPU, over an hour on a 2-core CPU). Finished runs are reused, a half-done one resumed (a run
# folder holding an older recipe is refused, never shipped); each is exported and verified into export/.
MODERN_RUN = resnet-shift2-s0
MODERN = --arch resnet --epochs 40 --batch-size 128 --lr 2e-3 --shift 2 --erase 0.25 --label-smoothing 0.1 --tta
models: data
	$(PY) -m fmnist_tui experiment --seeds 1 --jobs 1 --no-latency --runs checkpoints --out reports/models --export export
	$(PY) -m fmnist_tui train $(MODERN) --out checkpoints --name $(MODERN_RUN) --reuse
	$(PY) -m fmnist_tui export $(MODERN_RUN) --runs checkpoints --out export

bench: data
	$(PY) bench/train_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
