# dicepipe: `make demo` runs the pipeline on the embedded sample; `make test` runs the tests.
# Both create .venv on first use (torch==2.13.0 first: a CPU build; an unpinned torch would
# pull gigabytes of CUDA wheels).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
CACHE := $(CURDIR)/.cache

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# Nothing reaches the network at run time: models and data come from local folders.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export HF_HOME := $(CACHE)/huggingface
# Prefect runs in ephemeral mode with its SQLite home inside the project cache, no telemetry,
# and a startup timeout that a slow 2-core machine meets.
export PREFECT_HOME := $(CACHE)/prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120
# DVC: no analytics, and its site cache here instead of /var/tmp/dvc.
export DVC_NO_ANALYTICS := 1
export DVC_SITE_CACHE_DIR := $(CACHE)/dvc-site
# albumentations checks its version online at import; numba (pymatting) caches compiled code.
export NO_ALBUMENTATIONS_UPDATE := 1
export NUMBA_CACHE_DIR := $(CACHE)/numba

.PHONY: demo test test-all lint sample-corpus clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

demo: $(STAMP)
	dvc repro
	dicepipe inspect data/shards

test: $(STAMP)
	pytest

test-all: $(STAMP)
	pytest -m ''

lint: $(STAMP)
	ruff check src tests flows bench

sample-corpus: $(STAMP)
	dicepipe make-sample --out data/sample --seed 0

clean:
	rm -rf data/work data/shards .cache
