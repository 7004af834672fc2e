# The two commands of the README: `make demo` (the main job) and `make test`.
# Each creates the virtual environment it needs on first use.

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
RUNTIME_STAMP := $(VENV)/.runtime-stamp

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The demo needs only the runtime (no test extra): a smaller, quicker first install.
# `make test` later adds the test extra to the same venv.
$(RUNTIME_STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(RUNTIME_STAMP)

demo: $(RUNTIME_STAMP)
	$(VENV)/bin/streetnode sim --nodes 3 --duration 60

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(VENV)/bin/streetnode bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
