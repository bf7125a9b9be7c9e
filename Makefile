# One entry point per job. `make test` and `make bench` set up their own environment on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build from local disk on these machines; on a CUDA box the same pin resolves to PyPI's CUDA wheel.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed
ARGS ?= --model llama-2-7b --hardware a100-sxm-80gb --batch 1 --prompt-len 1024 --phase decode --dtype bf16
SWEEP ?= default
RUN ?=
RUNS ?=

.PHONY: help install test benchmark predict bench bench-comms report compare repeatability clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install torch (CPU build here), transformers, pandas, matplotlib, pytest

test: $(STAMP)  ## run the test suite (CPU; CUDA tests skip cleanly)
	$(PY) -m pytest -q --benchmark-disable

benchmark: $(STAMP)  ## run the pytest-benchmark suite (speed goals live here, not in unit tests)
	$(PY) -m pytest -q tests/benchmarks --benchmark-only

predict: $(STAMP)  ## theory's prediction: make predict ARGS="--model llama-2-7b --hardware h100-sxm-80gb ..."
	$(PY) -m theory $(ARGS)

bench: $(STAMP)  ## run the SWEEP (default: `default`) on the best device present, then the report
	$(PY) -m bench run --sweep $(SWEEP)

NPROC ?= 2
bench-comms: $(STAMP)  ## collectives and a tensor-parallel layer on NPROC ranks (gloo on CPU, NCCL on GPUs), then its report
	set -o pipefail; OMP_NUM_THREADS=1 $(VENV)/bin/torchrun --standalone --nproc-per-node $(NPROC) -m bench comms --out results | tail -1 > .last-comms-run
	$(PY) -m analysis report $$(cat .last-comms-run)

report: $(STAMP)  ## rebuild the report of RUN (default: the latest run under results/)
	$(PY) -m analysis report $(RUN)

compare: $(STAMP)  ## compare runs across hardware: make compare RUNS="results/a results/b"
	$(PY) -m analysis compare $(RUNS)

repeatability: $(STAMP)  ## two runs of one sweep agree? make repeatability RUNS="results/a results/b" (default: the two latest)
	$(PY) -m analysis repeatability $(RUNS)

clean:  ## remove the environment and caches (results are kept)
	rm -rf $(VENV) .pytest_cache .benchmarks *.egg-info
