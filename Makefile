# The two commands of the README: `make demo` (the main job) and `make test`.
# Each creates the virtual environment it needs on first use.

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
RUNTIME_STAMP := $(VENV)/.runtime-stamp

.PHONY: demo test bench screenshots clean cluster ha

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

# The demo needs only the runtime (no test extra): a smaller, quicker first install.
# `make test` later adds the test extra to the same venv.
$(RUNTIME_STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(RUNTIME_STAMP)

demo: $(RUNTIME_STAMP)
	$(VENV)/bin/streetnode sim --nodes 3 --duration 60

$(CLUSTER): host_tests/cluster/package-lock.json
	npm ci --prefix host_tests/cluster --no-audit --no-fund --loglevel=error
	touch $(CLUSTER)

cluster: $(CLUSTER)

# Home Assistant's own code, which host_tests/ha_validate.py checks the bridge's discovery
# configs with: homeassistant==2024.3.3 and its dependencies, pinned in
# host_tests/ha-requirements.txt, in a venv of their own (their pins are not ours). Installed
# by uv (pinned), which takes about 20 s here with an empty cache where pip took 14 minutes.
HA_VENV := .venv-ha
HA_STAMP := $(HA_VENV)/.installed-stamp
UV_VERSION := 0.13.8

$(HA_STAMP): host_tests/ha-requirements.txt
	python3 -m venv $(HA_VENV)
	$(HA_VENV)/bin/python -m pip install --quiet uv==$(UV_VERSION)
	$(HA_VENV)/bin/uv pip install --quiet --python $(HA_VENV)/bin/python -r host_tests/ha-requirements.txt
	touch $(HA_STAMP)

ha: $(HA_STAMP)

test: $(STAMP) $(HA_STAMP) $(if $(NPM),$(CLUSTER))
	$(PY) -m pytest

bench: $(STAMP)
	$(VENV)/bin/streetnode bench

# The crew page's screenshots in docs/img/ (docs/field.md), taken by its browser test; a plain
# `make test` writes them to the test's temporary directory and leaves the tree as it was.
screenshots: $(STAMP)
	STREETNODE_SHOTS=docs/img $(PY) -m pytest -q host_tests/test_serve.py

clean:
	rm -rf $(VENV) $(HA_VENV) .pytest_cache .hypothesis host_tests/cluster/node_modules
