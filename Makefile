# trialwatch: `make run` starts the daemon, `make test` runs the tests. Both set everything up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config/trialwatch.toml
STAMP  := $(VENV)/.installed

.PHONY: run test install migrate check lint bench soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/trialwatch --config $(CONFIG) db upgrade

run: migrate
	$(BIN)/trialwatch --config $(CONFIG) run

check: install
	$(BIN)/trialwatch --config $(CONFIG) check

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check watcher tests
	$(BIN)/ruff format --check watcher tests
	$(BIN)/mypy watcher

bench: install
	$(BIN)/python -m tests.benchmarks.bench

# the daemon's jobs for SOAK_DAYS simulated days over SOAK_STUDIES studies (tests/benchmarks/soak.py)
SOAK_DAYS    ?= 30
SOAK_STUDIES ?= 3000
soak: install
	$(BIN)/python -m tests.benchmarks.soak $(SOAK_DAYS) $(SOAK_STUDIES)

clean:
	rm -rf $(VENV) var .pytest_cache
