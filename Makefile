# Backend-AI: `make run` serves on $(PORT); `make test` sets everything up from nothing and runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT

.PHONY: run test lint demo bench clean image-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@ $(VENV)/.runtime-installed

run: $(VENV)/.runtime-installed
	@bash scripts/system-deps.sh runtime
	$(BIN)/flask --app wsgi db upgrade
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start -f Procfile web worker

test: lint
	@bash scripts/system-deps.sh test
	@bash scripts/ensure-redis.sh
	@url=$$(bash scripts/ensure-postgres.sh) && url=$$(printf '%s\n' "$$url" | tail -n 1) && \
	  echo "TEST_POSTGRES_URL=$$url" && TEST_POSTGRES_URL="$$url" $(BIN)/python -m pytest -n auto

# The shape holds without anyone watching: style and imports (ruff), types (mypy), layers (import-linter).
lint: $(VENV)/.dev-installed
	$(BIN)/ruff check backend tests bench config
	$(BIN)/mypy
	$(BIN)/lint-imports

demo: $(VENV)/.dev-installed
	@bash scripts/system-deps.sh runtime
	$(BIN)/python -m tests.fakes.demo

$(VENV)/.bench-installed: requirements-bench.txt $(VENV)/.dev-installed
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-bench.txt
	touch $@

bench: $(VENV)/.bench-installed
	@bash scripts/system-deps.sh bench
	@bash scripts/ensure-redis.sh
	@url=$$(bash scripts/ensure-postgres.sh) && url=$$(printf '%s\n' "$$url" | tail -n 1) && \
	  echo "TEST_POSTGRES_URL=$$url" && TEST_POSTGRES_URL="$$url" $(BIN)/python -m bench

# The container image really built (podman, a debootstrapped base) and run against the fakes: scripts/image-test.sh.
image-test: $(VENV)/.dev-installed
	bash scripts/image-test.sh

clean:
	-bash scripts/ensure-postgres.sh stop
	rm -rf $(VENV) var .pytest_cache
