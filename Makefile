# dicepipe: `make demo` runs the pipeline on the embedded sample; `make test` runs the tests.
# Both create .venv on first use (torch==2.13.0 first: a CPU build; an unpinned torch would
# pull gigabytes of CUDA wheels).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
CACHE := $(CURDIR)/.cache

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# The offline and quiet environment (HF offline, Prefect's home and timeouts, no analytics,
# caches under .cache/) is defined once, in dicepipe.runtime (ENVIRONMENT_DEFAULTS and
# configure_environment), and applied by every entry point: flows, stages, the CLI, the tests.
# DVC starts before any of them, so its own two settings are also exported here.
export DVC_NO_ANALYTICS := 1
export DVC_SITE_CACHE_DIR := $(CACHE)/dvc-site

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
	ruff check src tests flows bench stages
	ruff format --check src tests flows bench stages

sample-corpus: $(STAMP)
	dicepipe make-sample --out data/sample --seed 0

clean:
	rm -rf data/work data/shards runs metrics/eval metrics/history metrics/history.jsonl metrics/history.png predictions .cache
