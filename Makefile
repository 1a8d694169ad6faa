# hkd: `make experiment NAME=quickstart` and `make test` work on a fresh clone.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# torch/torchvision pins: the newest releases this project is tested with (CPU or CUDA build).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed
NAME ?= quickstart
ARGS ?=
PYTEST_ARGS ?=

RUN ?=
INPUT ?=
PORT ?= 8765

.PHONY: help install experiment cv predict config results evidence bench bench-gpu review compare test test-unit test-full test-ddp lint sync clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install hkd with its dev extras

experiment: $(STAMP)  ## train: make experiment NAME=quickstart ARGS="trainer.max_epochs=3"
	$(PY) -m hkd train $(NAME) $(ARGS)

cv: $(STAMP)  ## all K folds + mean/spread: make cv NAME=covid_cxr_baseline ARGS="data.root=... data.folds=5"
	$(PY) -m hkd cv $(NAME) $(ARGS)

predict: $(STAMP)  ## classify images: make predict RUN=runs/NAME/RUN_ID INPUT="scans/ labels.csv" [ARGS="--cam"]
	$(PY) -m hkd predict $(RUN) $(INPUT) $(ARGS)

review: $(STAMP)  ## serve the IMIL review page: make review RUN=runs/NAME/RUN_ID [PORT=8765]
	$(PY) -m hkd review $(RUN) --port $(PORT)

compare: $(STAMP)  ## markdown table of runs: make compare RUN="runs/a runs/b" [ARGS="--against baseline"]
	$(PY) -m hkd compare $(RUN) $(ARGS)

test: $(STAMP)  ## the test suite without the slow tests (what CI runs)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-unit: $(STAMP)  ## only the fast unit tests of every layer (tests/unit, under a minute)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-full: $(STAMP)  ## every test, the slow ones included
	$(PY) -m pytest $(PYTEST_ARGS)

test-ddp: $(STAMP)  ## only the multi-process DDP tests
	$(PY) -m pytest -m ddp $(PYTEST_ARGS)

config: $(STAMP)  ## regenerate experiments/base.yaml and docs/configuration.md from hkd/config/schema.py
	$(PY) -m hkd.config.reference

results: $(STAMP)  ## regenerate every benchmark table and figure from benchmarks/results/*.jsonl (no training)
	$(PY) -m benchmarks.results

TEN_SEEDS := 0 1 2 3 4 5 6 7 8 9
evidence: $(STAMP)  ## train every benchmark behind the docs (many CPU hours; resumable), then make results
	$(PY) -m benchmarks.matrix calibration
	$(PY) -m benchmarks.matrix methods
	$(PY) -m benchmarks.matrix methods_lung
	$(PY) -m benchmarks.matrix methods_lung --only baseline hkd --seeds $(TEN_SEEDS)
	$(PY) -m benchmarks.matrix no_augmentation --seeds $(TEN_SEEDS)
	$(PY) -m benchmarks.matrix hkd_boxes --seeds 0 1 2 3 4
	$(PY) -m benchmarks.matrix prior
	$(PY) -m benchmarks.matrix imil
	$(PY) -m benchmarks.matrix imil --only baseline "imil b=0.04 + propagate, inpaint" \
	  "imil b=1.0 start=1, inpaint" --seeds $(TEN_SEEDS)
	$(PY) -m benchmarks.matrix imil_propagation --seeds 0 1 2 3 4
	$(PY) -m benchmarks.matrix imil_propagation --only baseline "imil b=0.04 + propagate, inpaint" \
	  "... 60 updates" "... narrower, stops once it reproduces the marks" \
	  "... narrower, stops once it reproduces the marks, 8 a batch" "shortcut-free (ceiling)" --seeds 5 6 7 8 9
	$(PY) -m benchmarks.propagation_trace --seeds 0 1 2 --updates 120
	$(PY) -m benchmarks.tune
	$(PY) -m benchmarks.matrix methods_tuned --seeds 0 1 2 3 4
	$(PY) -m benchmarks.matrix kermany
	$(PY) -m benchmarks.matrix kermany_shortcut
	$(PY) -m benchmarks.matrix kermany_shortcut_fair
	$(PY) -m benchmarks.matrix kermany_shortcut_cf
	$(PY) -m benchmarks.audits kermany_shortcut_cf --only baseline "shortcut-free (ceiling)"
	$(PY) -m benchmarks.audits kermany_shortcut_cf --only baseline "shortcut-free (ceiling)" --split val \
		--data data.shortcut.bias=0.95 --save kermany_shortcut_cf_val
	$(PY) -m benchmarks.matrix synthetic_cf
	$(PY) -m benchmarks.audits synthetic_cf --only baseline "shortcut-free (ceiling)" --split val \
		--data data.synthetic.shortcut_bias=0.95 --save synthetic_cf_val
	$(PY) -m benchmarks.matrix kermany_cf
	$(PY) -m benchmarks.clinical
	$(PY) -m benchmarks.matrix kermany_corner_tag_cf
	$(PY) -m benchmarks.edit_coverage kermany_corner_tag_cf --only "hkd (lung prior) + imil (propagate, inpaint), cf selection"
	$(PY) -m benchmarks.matrix kermany_kd_all_epochs
	$(PY) -m benchmarks.matrix kermany_learning_curve --seeds 0 1 2 3 4
	$(PY) -m benchmarks.external kermany_to_covid
	$(PY) -m benchmarks.matrix covid_cv --seeds 0
	$(PY) -m benchmarks.results

bench: $(STAMP)  ## speed and memory ratios against their targets (benchmarks/speed.py)
	$(PY) -m benchmarks.speed $(ARGS)

bench-gpu: $(STAMP)  ## GPU images/s, HKD step ratio, memory, mining, loader at 224 px (benchmarks/gpu.py; ~8 min)
	$(PY) -m benchmarks.gpu $(ARGS)

lint: $(STAMP)  ## ruff
	$(VENV)/bin/ruff check hkd tests benchmarks

sync: $(STAMP)  ## upload offline W&B runs under runs/
	$(VENV)/bin/wandb sync --sync-all runs/*/*/wandb 2>/dev/null || \
	  find runs -type d -name 'offline-run-*' -exec $(VENV)/bin/wandb sync {} \;

clean:  ## remove caches (keeps .venv and runs/)
	rm -rf .cache .pytest_cache .ruff_cache
