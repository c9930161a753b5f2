# Sovereign Suite Operator — developer entry points. Everything built lives in $(CACHE), outside the repository.
SHELL := /bin/bash
CACHE ?= $(or $(SOVEREIGN_SUITE_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/sovereign-suite)
PYTHON ?= python3
VENV := $(CACHE)/venv
PY := $(VENV)/bin/python
# The editable install points at this checkout: another checkout (a CI clone) installs itself again, or the
# operator processes the tests start would import the other checkout's code.
STAMP := $(VENV)/.installed-$(shell (sha256sum pyproject.toml; pwd) | sha256sum | cut -c1-12)
EXAMPLE ?= manifests/examples/four-countries.yaml
CLOUDS ?= manifests/examples/clouds.yaml
PYTEST_ARGS ?=
export SOVEREIGN_SUITE_CACHE := $(CACHE)

.PHONY: bench help venv tools real-node-tools real-node-images operator-image prometheus federation-tools backup-tools trainer-tools crds render golden test test-unit run run-multicluster cluster-up cluster-down cluster-down-multicluster clean-cache

help:
	@echo "make run     local cluster + simulated national clouds + CRDs + example suite + operator (foreground)"
	@echo "make run-multicluster  a hub + France's and Germany's member clusters, joined; the operator in push mode"
	@echo "make test    every test (builds the local control plane's binaries on first use)"
	@echo "make tools   build kube-apiserver, controller-manager, scheduler, kubectl, etcd, kwok, helm into $(CACHE)/bin"
	@echo "make real-node-tools  kubelet, kube-proxy, containerd, kube-router (Go) + runc, CNI plugins, iptables (Debian)"
	@echo "make operator-image  the operator's OCI image archive (no container engine; root, mmdebstrap)"
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

crds: venv tools
	$(VENV)/bin/sovereign-suite crds -o crds
	$(PY) -m sovereign_suite.api.docgen > docs/api.md
	@hack/gen-manifests.sh

render: venv
	$(VENV)/bin/sovereign-suite render -f $(EXAMPLE) --clouds $(CLOUDS)

golden: venv
	$(PY) -m tests.golden_refresh

test-unit: venv
	$(PY) -m pytest -m "not cluster" $(PYTEST_ARGS)

test: venv tools real-node-tools operator-image prometheus federation-tools backup-tools trainer-tools
	$(PY) -m pytest $(PYTEST_ARGS)

# The real node (sovereign-suite cluster up --real-node; tests/cluster/test_real_node*.py)
real-node-tools: tools
	@hack/build-tools.sh node >/dev/null
	@hack/install-real-node-deps.sh

# Stand-in images for the real node, into $(CACHE)/images (rebuilt only when a recipe changes)
real-node-images: venv real-node-tools
	$(PY) -m sovereign_suite.devcluster.realnode.build

# The operator's own image, without a container engine (Debian + the project's wheel, the Dockerfile's equivalent;
# reproducible), into $(CACHE)/images: rebuilt only when its sources change. docs/install.md, "Install on a cluster".
operator-image: venv real-node-tools
	$(PY) -m sovereign_suite.devcluster.realnode.operator_image

prometheus:
	@hack/install-prometheus.sh
	@hack/fetch-test-crds.sh

# Debian's postgresql and nginx for the Matrix federation test (tests/cluster/test_matrix_federation.py)
federation-tools:
	@hack/install-federation-tools.sh

# Debian's age and moto's S3 server (its own venv in the cache) for the backup program's test
# (tests/test_backup_program.py)
backup-tools:
	@hack/install-backup-tools.sh

# The LoRA trainer's own venv (torch, transformers, peft; wheels cached by key, about 2.9 GiB) for
# tests/test_trainer_run.py and bench/trainer_throughput.py (docs/llm-finetuning.md, "The trainer")
trainer-tools:
	@hack/install-trainer-venv.sh

cluster-up: venv tools
	$(VENV)/bin/sovereign-suite cluster up

cluster-down: venv
	$(VENV)/bin/sovereign-suite cluster down

run: venv tools
	@hack/run.sh "$(VENV)" "$(EXAMPLE)" "$(CLOUDS)"

# push mode on three local clusters: a hub, France's and Germany's member clusters (docs/multi-cluster.md)
HUB_NAME ?= suite-hub
run-multicluster: venv tools
	@HUB_NAME=$(HUB_NAME) hack/run-multicluster.sh "$(VENV)" manifests/examples/two-countries.yaml "$(CLOUDS)"

cluster-down-multicluster: venv
	for n in $(HUB_NAME) $(HUB_NAME)-fr $(HUB_NAME)-de; do $(VENV)/bin/sovereign-suite cluster down --name $$n; done

clean-cache:
	rm -rf $(CACHE)

# ---- Install packaging (docs/install.md) ------------------------------------------------------------------
# `make image` and `make kind-deploy` need a container engine and kind (https://kind.sigs.k8s.io); the
# development machine of this repository has neither, so they are not part of `make test`.
IMAGE ?= sovereign-suite-operator:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
CONTAINER_ENGINE ?= docker
KIND ?= kind
KIND_CLUSTER ?= sovereign-suite-kind
KIND_EXAMPLE ?= manifests/examples/two-countries.yaml
HELM_BIN = $(shell hack/build-tools.sh --print)/helm
KUBECTL_BIN = $(shell hack/build-tools.sh --print)/kubectl

.PHONY: manifests image kind-deploy

manifests: tools
	@hack/gen-manifests.sh

image:
	$(CONTAINER_ENGINE) build -t $(IMAGE) .

# A kind cluster with one worker per region of the two-country example (tenants are pinned to their
# cloud's regions), the image loaded into it, the chart installed from this repository, the example applied.
kind-deploy: image tools
	@command -v $(KIND) >/dev/null || { echo "kind not found: https://kind.sigs.k8s.io"; exit 1; }
	@$(KIND) get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)' || printf '%s\n' \
	  'kind: Cluster' 'apiVersion: kind.x-k8s.io/v1alpha4' 'nodes:' '- role: control-plane' \
	  '- role: worker' '  labels: {topology.kubernetes.io/region: eu-west-2, topology.kubernetes.io/zone: eu-west-2a}' \
	  '- role: worker' '  labels: {topology.kubernetes.io/region: eu01, topology.kubernetes.io/zone: eu01-1}' \
	  | $(KIND) create cluster --name $(KIND_CLUSTER) --config /dev/stdin
	$(KIND) load docker-image $(IMAGE) --name $(KIND_CLUSTER)
	$(HELM_BIN) --kube-context kind-$(KIND_CLUSTER) upgrade --install sovereign-suite-operator \
	  charts/sovereign-suite-operator --namespace sovereign-suite-system --create-namespace \
	  --set image.repository=$(firstword $(subst :, ,$(IMAGE))) --set image.tag=$(lastword $(subst :, ,$(IMAGE))) \
	  --set image.pullPolicy=Never --wait
	$(KUBECTL_BIN) --context kind-$(KIND_CLUSTER) apply --server-side -f $(CLOUDS)
	$(KUBECTL_BIN) --context kind-$(KIND_CLUSTER) create namespace sovereign-suite --dry-run=client -o yaml \
	  | $(KUBECTL_BIN) --context kind-$(KIND_CLUSTER) apply --server-side -f -
	for s in "oidc-client client-secret" "docs-s3 AWS_S3_ACCESS_KEY_ID AWS_S3_SECRET_ACCESS_KEY" "hf-token token"; do \
	  set -- $$s; name=$$1; shift; args=""; \
	  for k in "$$@"; do args="$$args --from-literal=$$k=demo-$$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"; done; \
	  $(KUBECTL_BIN) --context kind-$(KIND_CLUSTER) -n sovereign-suite get secret $$name >/dev/null 2>&1 || \
	  $(KUBECTL_BIN) --context kind-$(KIND_CLUSTER) -n sovereign-suite create secret generic $$name $$args; \
	  $(KUBECTL_BIN) --context kind-$(KIND_CLUSTER) -n sovereign-suite label --overwrite secret $$name \
	    sovereignsuite.io/referenceable=true; done
	$(KUBECTL_BIN) --context kind-$(KIND_CLUSTER) apply --server-side -f $(KIND_EXAMPLE)
	@echo "watch it: $(KUBECTL_BIN) --context kind-$(KIND_CLUSTER) get suites -A -o wide -w"

# Benchmarks on throwaway local clusters (docs/performance.md); about an hour on 2 cores (eu_scale.py starts 27
# member API servers: about 8 GiB of memory).
bench: venv tools
	cd bench && $(PY) render_time.py && $(PY) converge.py --rounds 5 && $(PY) api_cost.py && \
	  $(PY) many.py --suites 200 && $(PY) multicluster.py --rounds 3 --suites 50 && $(PY) failover.py --rounds 5 && \
	  $(PY) eu_scale.py --suites 100 --rounds 2 --probes 40 && $(PY) report.py
