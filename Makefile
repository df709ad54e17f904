# Two commands do all the set-up on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
DEMO_INDEX := .ragline-demo
DEMO_QUESTION := How often should I descale the Aurora 2 espresso machine?

.PHONY: demo test install install-test clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned to the CPU build, so nothing pulls a CUDA build.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PIP) -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(VENV)/bin/ragline --index $(DEMO_INDEX) ingest demo_docs
	$(VENV)/bin/ragline --index $(DEMO_INDEX) ask -k 5 "$(DEMO_QUESTION)"

# The house's import contracts (pyproject.toml), lint, formatting and types fail the test command too.
test: install-test
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check pipeline connectors ragline tests bench
	$(VENV)/bin/ruff format --check pipeline connectors ragline tests bench
	$(VENV)/bin/mypy
	$(PY) -m pytest -n 2 --dist loadfile

clean:
	rm -rf $(VENV) $(DEMO_INDEX) .pytest_cache .mypy_cache
