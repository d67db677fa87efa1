# Two commands a newcomer needs: `make run` and `make test`. Everything else installs itself.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test lint typecheck install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/relance dev

# A living console within a minute: `relance dev` on a fast clock (a day lasts 30 s), and a
# demo portfolio loaded into it once the API answers. Ctrl-C stops everything.
demo: $(STAMP)
	RELANCE_DAY_SECONDS=30 $(BIN)/relance dev & \
	DEV=$$!; trap 'kill $$DEV' INT TERM; \
	for i in $$(seq 60); do $(BIN)/python -c "import httpx,sys; httpx.get('http://127.0.0.1:8000/healthz').raise_for_status()" 2>/dev/null && break; sleep 1; done; \
	$(BIN)/relance demo; wait $$DEV

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .relance .pytest_cache .mypy_cache .ruff_cache
