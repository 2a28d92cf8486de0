# fmnist — the two commands a newcomer needs: `make run` and `make test` (both idempotent).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
DATA   := /usr/share/datasets/fashion-mnist

.PHONY: run test test-fast setup data models bench clean help

help:
	@echo "make run    set up (venv, package, dataset) and train the CNN 3x3 with the default recipe"
	@echo "make test   set up and run the test suite"
	@echo "make models retrain the shipped models and re-export export/*.onnx"
	@echo "make bench  run the benchmarks in bench/"

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first and pinned: these builds install from this machine's disk (no multi-GB download)
	$(PIP) install --quiet -c constraints.txt "torch==2.14.1" "torchvision==0.29.1"
	$(PIP) install --quiet -c constraints.txt -e ".[test]"
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

test: data
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not realdata and not slow"

# The shipped models: train each missing run with the default recipe (resume a half-done one), then
# export and verify all four into export/ with export/manifest.json. Existing finished runs are reused.
SHIPPED := mlp-s0 cnn-k3-s0 cnn-k5-s0 cnn-k7-s0
models: data
	@for run in $(SHIPPED); do \
	  arch=$${run%%-*}; kernel=$$(echo $$run | sed -n 's/^cnn-k\([0-9]\)-.*/\1/p'); \
	  opts="--arch $$arch $${kernel:+--kernel $$kernel} --seed 0 --out checkpoints --name $$run"; \
	  if [ -f checkpoints/$$run/summary.json ]; then echo "checkpoints/$$run is trained"; \
	  elif [ -f checkpoints/$$run/config.json ]; then $(PY) -m fmnist_tui train --resume --out checkpoints --name $$run || exit 1; \
	  else $(PY) -m fmnist_tui train $$opts || exit 1; fi; \
	done
	$(PY) -m fmnist_tui export $(SHIPPED) --runs checkpoints --out export

bench: data
	$(PY) bench/train_speed.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
