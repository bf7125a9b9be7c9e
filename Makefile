# One entry point per job. `make test` and `make bench` set up their own environment on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The torch pin. On the project's own CPU machines pip finds the CPU build on local disk. On a GPU box, unless
# TORCH_INDEX is given or the venv already records one, scripts/torch_index.py reads the driver's CUDA version
# (nvidia-smi) and picks a wheel index with a torch build that driver can run, saying which in one line.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed
TORCH_SPEC := $(VENV)/.torch-spec
comma := ,
# An NVIDIA GPU on this machine (nvidia-smi or the driver's /proc entry): install the NVML extra too.
HAVE_NVIDIA := $(shell (nvidia-smi -L >/dev/null 2>&1 || ls /proc/driver/nvidia/gpus/* >/dev/null 2>&1) && echo 1)
# TORCH_INDEX: given (command line or environment) wins; else what the venv was built with, for the same TORCH (a
# plain `make bench` never swaps torch); else the driver's pick on a GPU box; else none.
RECORDED := $(shell cat $(TORCH_SPEC) 2>/dev/null)
ifeq ($(filter command line environment,$(origin TORCH_INDEX)),)
  ifeq ($(word 1,$(RECORDED)),$(TORCH))
    TORCH_INDEX := $(word 2,$(RECORDED))
  else
    TORCH_INDEX := $(if $(HAVE_NVIDIA),$(shell $(PYTHON) scripts/torch_index.py '$(TORCH)'))
  endif
endif
# The spec is rewritten (at parse time, so `make -n` is honest) only when TORCH or TORCH_INDEX really change; the
# stamp then re-installs and torch is uninstalled first: pip would keep a same-version build from another index.
$(shell mkdir -p $(VENV); echo '$(TORCH) $(TORCH_INDEX)' | cmp -s - $(TORCH_SPEC) || echo '$(TORCH) $(TORCH_INDEX)' > $(TORCH_SPEC))
EXTRAS := test$(if $(HAVE_NVIDIA),$(comma)gpu)
PROJECT ?= -e '.[$(EXTRAS)]'
GPUS ?=
ARGS ?= --model llama-2-7b --hardware a100-sxm-80gb --batch 1 --prompt-len 1024 --phase decode --dtype bf16
SWEEP ?= default
RUN ?=
RUNS ?=

.PHONY: help install test benchmark predict bench bench-comms report compare repeatability clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(TORCH_SPEC)
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(if $(filter $(TORCH_SPEC),$?),@if $(PY) -m pip show -q torch >/dev/null 2>&1; then echo "torch changed to '$(TORCH) $(TORCH_INDEX)': replacing the installed build"; $(PY) -m pip uninstall -y -q torch; fi)
	$(PY) -m pip install -q --disable-pip-version-check "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(if $(strip $(PROJECT)),$(PY) -m pip install -q --disable-pip-version-check $(PROJECT))
	touch $(STAMP)

install: $(STAMP)  ## create .venv: torch (TORCH=..., TORCH_INDEX=...), transformers, pandas, matplotlib, pytest (+ nvidia-ml-py on GPU boxes)

test: $(STAMP)  ## run the test suite (CPU; CUDA tests skip cleanly)
	$(PY) -m pytest -q --benchmark-disable

benchmark: $(STAMP)  ## run the pytest-benchmark suite (speed goals live here, not in unit tests)
	$(PY) -m pytest -q tests/benchmarks --benchmark-only

predict: $(STAMP)  ## theory's prediction: make predict ARGS="--model llama-2-7b --hardware h100-sxm-80gb ..."
	@$(PY) -m theory $(ARGS)

bench: $(STAMP)  ## run the SWEEP (default: `default`) on the best device present (GPUS=0,1,...: in parallel), then the report
	$(PY) -m bench run --sweep $(SWEEP) $(if $(GPUS),--gpus $(GPUS))

NPROC ?= 2
bench-comms: $(STAMP)  ## collectives and a tensor-parallel layer on NPROC ranks (gloo on CPU, NCCL on GPUs), then its report
	rm -f .last-comms-run; OMP_NUM_THREADS=1 $(VENV)/bin/torchrun --standalone --nproc-per-node $(NPROC) -m bench comms --out results --run-dir-file .last-comms-run
	$(PY) -m analysis report $$(cat .last-comms-run)

report: $(STAMP)  ## rebuild the report of RUN (default: the latest run under results/)
	$(PY) -m analysis report $(RUN)

compare: $(STAMP)  ## compare runs across hardware: make compare RUNS="results/a results/b"
	@if [ -z "$(strip $(RUNS))" ]; then echo 'usage: make compare RUNS="results/<run a> results/<run b>"' >&2; exit 2; fi
	$(PY) -m analysis compare $(RUNS)

repeatability: $(STAMP)  ## two runs of one sweep agree? make repeatability RUNS="results/a results/b" (default: the two latest)
	$(PY) -m analysis repeatability $(RUNS)

clean:  ## remove the environment and caches (results are kept)
	rm -rf $(VENV) .pytest_cache .benchmarks *.egg-info
