# odn-lightning: `make train` and `make test` are all a fresh clone needs. `make help` lists the rest.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Extra Hydra overrides for train/eval/data targets, e.g. make train ARGS="trainer.max_epochs=2"
ARGS ?=
# Extra pytest arguments, e.g. make test PYTEST_ARGS="-m 'not slow'"
PYTEST_ARGS ?=
DATA ?= synthetic
ROOT ?=

.PHONY: help install train eval test lint format data-synthetic data-check clean clean-all

help: ## List the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the suite with its dev tools (quick when nothing changed)

train: install ## Train ODN on the embedded synthetic faces (quickstart, about 7.5 min on 2 CPU cores)
	$(PY) -m odn_lightning.train experiment=quickstart $(ARGS)

eval: install ## Evaluate a checkpoint: make eval CKPT=path/to/last.ckpt [ARGS="data=..."]
	@test -n "$(CKPT)" || { echo "error: set CKPT=path/to/checkpoint.ckpt"; exit 2; }
	$(PY) -m odn_lightning.eval ckpt_path=$(CKPT) $(ARGS)

test: install ## Run the test suite (CPU only, about 2 minutes on 2 cores)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install ## Static checks (ruff)
	$(VENV)/bin/ruff check src tests

format: install ## Format the code (ruff)
	$(VENV)/bin/ruff format src tests

data-synthetic: install ## Generate the embedded synthetic faces under data/synthetic
	$(PY) -m odn_lightning.data_check data=synthetic $(ARGS)

data-check: install ## Check a dataset's layout and split counts: make data-check DATA=w300 ROOT=/path/to/300W
	$(PY) -m odn_lightning.data_check data=$(DATA) $(if $(ROOT),data.root=$(ROOT)) $(ARGS)

clean: ## Remove run outputs and caches (keeps data/ and .venv)
	rm -rf logs outputs multirun wandb lightning_logs .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

clean-all: clean ## Also remove generated data and the virtual environment
	rm -rf data $(VENV) src/*.egg-info
