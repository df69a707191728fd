# Two commands (see README): `make run` and `make test`. Both set themselves up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run replay test check setup clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

## the main job: the daemon on its embedded sandbox cluster, the real programme at a day per second
run: $(STAMP)
	$(BIN)/gpu-scheduler validate --policy policies
	$(BIN)/gpu-scheduler run --policy policies --simulate --start 2025-08-03 --time-scale 86400 --reconcile-every 5

## the real programme replayed offline, one plan per change point (no daemon, no API)
replay: $(STAMP)
	$(BIN)/gpu-scheduler simulate --policy policies --from 2025-08-01 --to 2027-01-31 -o table

## every check: the layer contracts, lint, format and types of scheduler/, then every test (unit,
## property-based, golden, CLI, sandbox API with the real kubectl, Helm, Prometheus, soak, the
## container image built and run with buildah)
test: $(STAMP) check
	bash tests/tools/install.sh
	bash tests/tools/install-image-tools.sh
	$(BIN)/python -m pytest -q

## the code's own checks (docs/design.md): one-way layers, ruff lint and format, mypy --strict
check: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check scheduler
	$(BIN)/ruff format --check scheduler
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache .mypy_cache
