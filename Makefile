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
# make table4 SWEEP=logs/train/multiruns/<date>: which sweep to collect (default: the newest)
SWEEP ?=
# make compare RUNS="logs/train/multiruns/<date> logs/train/runs/<date>": runs and sweeps to compare (default: the newest sweep)
RUNS ?=
ROOT_ARG = $(if $(ROOT),data.root=$(ROOT))
# Table 4's six rows and the readout control (model choices), as one Hydra multirun; one W&B group.
TABLE4_MODELS := brnet,brnet_conv_pool,gm_dm,dm_lm,gm_lm,odn_no_l1,odn
SWEEP_GROUP := table4-$(DATA)-$(shell date +%Y%m%d-%H%M%S)
# Where make ablation puts its sweep (Hydra's own naming), and the ERT anchor as its `ert` job.
SWEEP_DIR := logs/train/multiruns/$(shell date +%Y-%m-%d_%H-%M-%S)
# The synthetic sweep is sized for a CPU (about 20 min on 2 cores): the quickstart's 128 px crops,
# batch and learning rate, 2 epochs, from scratch (no weight download). Real datasets: the paper's recipe.
ABLATION_ARGS_synthetic := data.image_size=128 data.batch_size=16 model.optimizer.lr=3e-3 \
	trainer.max_epochs=2 model.net.pretrained=false
ABLATION_ARGS ?= $(ABLATION_ARGS_$(DATA))
# make mechanism: the networks of issue 13's measurement (conf/experiment/mechanism.yaml).
MECHANISM_MODELS := brnet,brnet_conv_pool,odn
# make heatmap: issue 28's measurement, the heatmap networks (conf/experiment/heatmap.yaml) beside the
# coordinate regressors of make mechanism at the same recipe, face by face against BRNet. HRNetV2-W18
# costs 3.5x ResNet-18's step at 128 px on a CPU: within the budget it sees 64 px crops.
HEATMAP_MODELS := hrnet_w18,resnet18_heatmap
HEATMAP_HRNET_CROP := 64
# make ablation SEEDS=3: every network variant under seeds 0..SEEDS-1 (table4: mean ± std per cell).
SEEDS ?= 1
# make figure4 BENCHMARK=...: a checkout of the COFW-68 benchmark.
BENCHMARK ?=
PREDICTIONS ?=
comma := ,
space := $(subst ,, )
SEED_ARG = $(if $(filter 1,$(SEEDS)),,seed=$(shell seq -s, 0 $$(( $(SEEDS) - 1 ))))

.PHONY: help install train eval test lint format data-synthetic data-check clean clean-all \
	ablation mechanism heatmap table4 compare score figure4 predict export bench gpu-check reproduce-300w reproduce-cofw reproduce-aflw

help: ## List the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

# uv installs the suite's 3.5 GB of wheels (torch's CUDA build) several times faster than pip
# (measured on 2 cores: 18-40 s against 1 min 56 s); it is pip-installed into the venv first. It
# compiles the bytecode as pip does: where PYTHONDONTWRITEBYTECODE is set, every process (test
# workers, DDP workers) would otherwise compile torch's modules anew. uv reads UV_* settings, not
# pip's: `make install INSTALLER=pip` installs with pip and your pip configuration, as make install
# does by itself where uv fails (an index only pip is configured for, say).
INSTALLER ?= uv
INSTALL_uv := $(PY) -m pip install --quiet --disable-pip-version-check uv && \
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY)
INSTALL_pip := $(PY) -m pip install --quiet --disable-pip-version-check

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -n "$(INSTALL_$(INSTALLER))" || { echo "error: INSTALLER=$(INSTALLER): choose uv or pip"; exit 2; }
	$(INSTALL_$(INSTALLER)) -e ".[dev]" || { test "$(INSTALLER)" = uv && \
		echo "make install: uv failed (above); installing with pip instead" && $(INSTALL_pip) -e ".[dev]"; }
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the suite with its dev tools (quick when nothing changed)

train: install ## Train ODN on the embedded synthetic faces (quickstart, about 8 1/2 min on 2 CPU cores)
	$(PY) -m odn_lightning.train experiment=quickstart $(ARGS)

eval: install ## Evaluate a checkpoint: make eval CKPT=path/to/last.ckpt [ARGS="data=..."]
	@test -n "$(CKPT)" || { echo "error: set CKPT=path/to/checkpoint.ckpt"; exit 2; }
	$(PY) -m odn_lightning.eval ckpt_path=$(CKPT) $(ARGS)

export: install ## Export a checkpoint to ONNX (or TorchScript) with its metadata: make export CKPT=path/to/last.ckpt [ARGS="format=torchscript"]
	@test -n "$(CKPT)" || { echo "error: set CKPT=path/to/checkpoint.ckpt"; exit 2; }
	$(PY) -m odn_lightning.export ckpt_path=$(CKPT) $(ARGS)

predict: install ## Landmarks on your photos, folder, video or camera: make predict CKPT=path/to/last.ckpt INPUT=photo.jpg|folder|video.mp4|0 [ARGS="detector=haar ..."]
	@test -n "$(CKPT)" || { echo "error: set CKPT=path/to/checkpoint.ckpt"; exit 2; }
	@test -n "$(INPUT)" || { echo "error: set INPUT=an image, a folder, a video or a camera index"; exit 2; }
	$(PY) -m odn_lightning.predict ckpt_path=$(CKPT) input=$(INPUT) annotate=true $(ARGS)

test: install ## Run the test suite on every core, the ten slowest listed (CPU only, about 7 minutes on 2 cores, README's commands included)
	$(PY) -m pytest -n auto --dist loadgroup --no-loadscope-reorder -q --durations=10 $(PYTEST_ARGS)

lint: install ## Static checks (ruff)
	$(VENV)/bin/ruff check src tests

format: install ## Format the code (ruff)
	$(VENV)/bin/ruff format src tests

data-synthetic: install ## Generate the embedded synthetic faces under data/synthetic/<settings>/
	$(PY) -m odn_lightning.data_check data=synthetic $(ARGS)

data-check: install ## Check a dataset's layout and split counts: make data-check DATA=w300 ROOT=/path/to/300W
	$(PY) -m odn_lightning.data_check data=$(DATA) $(ROOT_ARG) $(ARGS)

ablation: install ## Table 4: the six variants and the readout control as one multirun, and the ERT anchor: make ablation DATA=synthetic|w300 [ROOT=/path] [SEEDS=3] [ARGS=...]
	$(PY) -m odn_lightning.data_check data=$(DATA) $(ROOT_ARG)
	$(PY) -m odn_lightning.train --multirun experiment=ablation model=$(TABLE4_MODELS) data=$(DATA) $(ROOT_ARG) \
		group=$(SWEEP_GROUP) hydra.sweep.dir=$(SWEEP_DIR) $(SEED_ARG) $(ABLATION_ARGS) $(ARGS)
	$(PY) -m odn_lightning.ert data=$(DATA) $(ROOT_ARG) hydra.run.dir=$(SWEEP_DIR)/ert

mechanism: install ## Issue 13: ERT, BRNet, the readout control and ODN at experiment=mechanism, SEEDS seeds (default 3), collected into table4.md [ARGS=...]
	$(PY) -m odn_lightning.data_check data=synthetic
	$(PY) -m odn_lightning.train --multirun experiment=mechanism model=$(MECHANISM_MODELS) \
		hydra.sweep.dir=$(SWEEP_DIR) $(SEED_ARG) $(ARGS)
	$(PY) -m odn_lightning.ert data=synthetic hydra.run.dir=$(SWEEP_DIR)/ert
	$(PY) -m odn_lightning.table4 sweep_dir=$(SWEEP_DIR) "variants=[ert,$(MECHANISM_MODELS)]"
mechanism: SEEDS = 3

heatmap: install ## Issue 28: HRNetV2-W18 and ResNet-18 + deconv (experiment=heatmap) beside BRNet and ODN (experiment=mechanism) and ERT, SEEDS seeds (default 3), one sweep, collected into table4.md [ARGS=settings both recipes take]
	$(PY) -m odn_lightning.data_check data=synthetic
	$(PY) -m odn_lightning.train --multirun experiment=heatmap model=resnet18_heatmap \
		hydra.sweep.dir=$(SWEEP_DIR) $(SEED_ARG) $(ARGS)
	$(PY) -m odn_lightning.train --multirun experiment=heatmap model=hrnet_w18 \
		data.image_size=$(HEATMAP_HRNET_CROP) hydra.sweep.dir=$(SWEEP_DIR) $(SEED_ARG) $(ARGS)
	$(PY) -m odn_lightning.train --multirun experiment=mechanism model=brnet,odn \
		hydra.sweep.dir=$(SWEEP_DIR) $(SEED_ARG) $(ARGS)
	$(PY) -m odn_lightning.ert data=synthetic hydra.run.dir=$(SWEEP_DIR)/ert
	$(PY) -m odn_lightning.table4 sweep_dir=$(SWEEP_DIR) "variants=[ert,brnet,odn,$(HEATMAP_MODELS)]" \
		"paired=[odn,$(HEATMAP_MODELS)]"
heatmap: SEEDS = 3

table4: install ## Collect the newest ablation sweep into Table 4 (Markdown + overlaid CEDs) [SWEEP=dir]
	$(PY) -m odn_lightning.table4 $(if $(SWEEP),sweep_dir=$(SWEEP))

compare: install ## Compare runs and sweeps: a row per setting labelled by its overrides, seeds as mean ± std, overlaid CEDs: make compare RUNS="DIR ..." [ARGS=...]
	$(PY) -m odn_lightning.compare $(RUNS) $(ARGS)

score: install ## Score predictions made elsewhere on a dataset's ground truth with its rules, no images needed: make score DATA=cofw68 ROOT=/path/to/cofw68-benchmark PREDICTIONS=results.txt [ARGS=...]
	@test -n "$(PREDICTIONS)" || { echo "error: set PREDICTIONS=a benchmark result file, predictions.csv or landmarks.csv"; exit 2; }
	$(PY) -m odn_lightning.score data=$(DATA) $(ROOT_ARG) predictions=$(PREDICTIONS) $(ARGS)

figure4: install ## The paper's Figure 4: COFW-68 CEDs of runs beside the benchmark's published methods: make figure4 BENCHMARK=/path/to/cofw68-benchmark [RUNS="run_dir ..."] [ARGS=...]
	@test -n "$(BENCHMARK)" || { echo "error: set BENCHMARK=a checkout of github.com/golnazghiasi/cofw68-benchmark"; exit 2; }
	$(PY) -m odn_lightning.figure4 benchmark_root=$(BENCHMARK) $(if $(RUNS),'runs=[$(subst $(space),$(comma),$(strip $(RUNS)))]') $(ARGS)

bench: install ## Speed on this machine: train step per Table-4 row, nuclear norms, data path, inference -> logs/bench/runs/<time>/<device>.json|.md [ARGS="sections=[train] repeats=5 ..."]
	$(PY) -m odn_lightning.bench $(ARGS)

# make gpu-check: on a CUDA device, into experiments/bench (the committed record); DEVICE=cpu: the
# CI-sized form (a few 64 px steps, bf16 only: fp16 AMP needs CUDA; compile by the eager backend),
# into the run's own folder.
DEVICE ?= cuda
GPU_CHECK_ARGS_cuda := output_dir=experiments/bench
GPU_CHECK_ARGS_cpu := steps=3 image_size=64 batch_size=4 num_workers=0 \
	'synthetic_sizes={train: 24, val: 8, common: 8, challenging: 4}' \
	'variants=[{precision: bf16-mixed, compile: null}, {precision: bf16-mixed, compile: {backend: eager}}]' \
	'bench_overrides=["sections=[train,inference]","batch_size=2","image_size=64","repeats=1","warmup=0","train.rows=[brnet,odn]","train.term_shares=false"]'
gpu-check: install ## The GPU check (CUDA, < 10 min): bench, 200 steps per precision/compile without host syncs, eval, export, ONNX Runtime vs eager -> experiments/bench/<gpu>-checks.json|.md; DEVICE=cpu: CI-sized
	$(PY) -m odn_lightning.gpu_check device=$(DEVICE) $(GPU_CHECK_ARGS_$(DEVICE)) $(ARGS)

reproduce-300w: install ## Tables 1-2, Fig. 3: ODN on 300W (common, challenging, full): ROOT=/path/to/300W
	$(PY) -m odn_lightning.data_check data=w300 $(ROOT_ARG)
	$(PY) -m odn_lightning.train experiment=paper_300w $(ROOT_ARG) $(ARGS)

reproduce-cofw: install ## Fig. 4: train on 300W, test on COFW-68: ROOT=/path holding 300W/ COFW/ COFW68/
	$(PY) -m odn_lightning.data_check data=cofw68 $(ROOT_ARG)
	$(PY) -m odn_lightning.train experiment=paper_cofw68 $(ROOT_ARG) $(ARGS)

reproduce-aflw: install ## Table 3, Fig. 5: ODN on AFLW, tested on full and frontal: ROOT=/path/to/AFLW
	$(PY) -m odn_lightning.data_check data=aflw $(ROOT_ARG)
	$(PY) -m odn_lightning.train experiment=paper_aflw $(ROOT_ARG) $(ARGS)

clean: ## Remove run outputs and caches (keeps data/ and .venv)
	rm -rf logs outputs multirun wandb lightning_logs .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

clean-all: clean ## Also remove generated data and the virtual environment
	rm -rf data $(VENV) src/*.egg-info
