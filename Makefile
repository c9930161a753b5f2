# Sovereign Suite Operator — developer entry points. Everything built lives in $(CACHE), outside the repository.
SHELL := /bin/bash
CACHE ?= $(or $(SOVEREIGN_SUITE_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/sovereign-suite)
PYTHON ?= python3
VENV := $(CACHE)/venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
EXAMPLE ?= manifests/examples/four-countries.yaml
CLOUDS ?= manifests/examples/clouds.yaml
PYTEST_ARGS ?=
export SOVEREIGN_SUITE_CACHE := $(CACHE)

.PHONY: help venv tools crds render golden test test-unit run cluster-up cluster-down clean-cache

help:
	@echo "make run     local cluster + simulated national clouds + CRDs + example suite + operator (foreground)"
	@echo "make test    every test (builds the local control plane's binaries on first use)"
	@echo "make tools   build kube-apiserver, controller-manager, scheduler, kubectl, etcd, kwok, helm into $(CACHE)/bin"
	@echo "make crds    regenerate crds/ from the pydantic models"
	@echo "make render  render $(EXAMPLE) offline"
	@echo "make golden  refresh tests/golden/ from the examples"

$(STAMP): pyproject.toml
	@echo "[make venv] creating $(VENV)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP)

tools:
	@hack/build-tools.sh >/dev/null

crds: venv
	$(VENV)/bin/sovereign-suite crds -o crds
	$(PY) -m sovereign_suite.api.docgen > docs/api.md

render: venv
	$(VENV)/bin/sovereign-suite render -f $(EXAMPLE) --clouds $(CLOUDS)

golden: venv
	$(PY) -m tests.golden_refresh

test-unit: venv
	$(PY) -m pytest -m "not cluster" $(PYTEST_ARGS)

test: venv tools
	$(PY) -m pytest $(PYTEST_ARGS)

cluster-up: venv tools
	$(VENV)/bin/sovereign-suite cluster up

cluster-down: venv
	$(VENV)/bin/sovereign-suite cluster down

run: venv tools
	@hack/run.sh "$(VENV)" "$(EXAMPLE)" "$(CLOUDS)"

clean-cache:
	rm -rf $(CACHE)
