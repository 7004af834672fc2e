# The two commands of the README: `make demo` (the main job) and `make test`.
# Each creates the virtual environment it needs on first use.

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test bench clean cluster

# The clustered broker of host_tests/test_failover.py: aedes + Redis, npm packages pinned in
# host_tests/cluster/package-lock.json (installed with npm ci, never vendored). Without npm
# the test skips and says why.
CLUSTER := host_tests/cluster/node_modules/.installed-stamp
NPM := $(shell command -v npm 2>/dev/null)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/streetnode sim --nodes 3 --duration 60

$(CLUSTER): host_tests/cluster/package-lock.json
	npm ci --prefix host_tests/cluster --no-audit --no-fund --loglevel=error
	touch $(CLUSTER)

cluster: $(CLUSTER)

test: $(STAMP) $(if $(NPM),$(CLUSTER))
	$(PY) -m pytest

bench: $(STAMP)
	$(VENV)/bin/streetnode bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis host_tests/cluster/node_modules
