"""The operator's metrics, alerts and dashboard on a real Prometheus.

The cluster serves the Prometheus Operator's real ServiceMonitor/PodMonitor/PrometheusRule CRDs (fetched by
hack/install-prometheus.sh). The operator runs as a process with two suites: a two-country suite with
spec.monitoring.serviceMonitors whose LLM model asks for a GPU product only France has (so DE's model is
Unschedulable on the real scheduler), and a suite on an unknown cloud (Stalled: reconcile errors). A drift is
provoked so that drift corrections are counted. A real Prometheus (Debian's package) scrapes the operator every
second on loopback and loads manifests/monitoring/rules.yaml.

Checked: the monitoring objects are applied as rendered and pass the CRDs' schemas strictly; every query of
every dashboard panel returns data; every rule evaluates without error; the alerts that should be pending are;
a deleted suite's series disappear.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from sovereign_suite.api.validation import parse_suite
from sovereign_suite.devcluster.cluster import bin_dir, cache_dir, dev_clouds
from ..compare import contains, first_difference
from sovereign_suite.reconcile.kube import ApiError, Kube, ref
from sovereign_suite.render import render_suite

from .conftest import wait_crds, wait_for
from ..processes import stop_process
from .operator_fixture import SUITES, OperatorProcess, condition, create_referenced_secrets, free_port, suite_doc

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests" / "monitoring"
DASHBOARD = MANIFESTS / "dashboard.json"
RULES = MANIFESTS / "rules.yaml"
MONITORING = "monitoring.coreos.com/v1"
JOB = "sovereign-suite-operator"  # the job name SovereignSuiteOperatorDown expects
H100 = "NVIDIA-H100-80GB-HBM3"  # FR's simulated cloud has H100 nodes, DE's has none
GPU_METRICS = ("sovereign_suite_gpus_requested", "sovereign_suite_gpus_allocatable")
# the labels podmonitor-finetune.yaml gives a training pod's series (its relabelling)
TRAINER_LABELS = {"namespace": "eu-fr", "pod": "ft-summaries-0a1b2c3d-x", "finetune_namespace": "justice",
                  "finetune": "summaries", "country": "FR"}
# the operator's series of a FineTune's run result exist once a run reported one (a Job's pod that ended with the
# trainer's termination message): no run ends in this module, so their panels are checked to evaluate, not to have
# data; tests/test_metrics.py checks their values and tests/cluster/test_finetune_operator.py the operator
# exporting them from a real status
RESULT_ONLY = ("sovereign_suite_finetune_eval_loss", "sovereign_suite_finetune_base_eval_loss",
               "sovereign_suite_finetune_duration_seconds")


class Prometheus:
    """A throwaway Prometheus on 127.0.0.1: a free port, a temporary data directory, 1 s scrape interval."""

    def __init__(self, workdir: Path, targets: list[str], jobs: dict[str, list[str]] | None = None):
        self.port = free_port()
        self.workdir = workdir
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": targets}]}] + [
                {"job_name": job, "static_configs": [{"targets": t, "labels": TRAINER_LABELS}]}
                for job, t in (jobs or {}).items()],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log_path = cache_dir() / "test-logs" / f"prometheus-{os.getpid()}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None

    def start(self, binary: str) -> None:
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={self.workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.workdir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._ready, timeout=60, what=f"Prometheus ready (log: {self.log_path})")

    def _ready(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, f"Prometheus exited, see {self.log_path}"
        try:
            return urllib.request.urlopen(f"{self.url}/-/ready", timeout=2).status == 200
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self.proc)

    def api(self, path: str, **params: str) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data["resultType"])
        return data["result"]


def missing_tool(msg: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        missing_tool("prometheus not found: run hack/install-prometheus.sh (Debian's prometheus package)")
    return path


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, query) of every target of every panel, with the template variables set to "All"."""
    dash = json.loads(DASHBOARD.read_text())
    values = {v["name"]: v["allValue"] for v in dash["templating"]["list"] if v["type"] == "query"}

    def expand(expr: str) -> str:
        for name, value in values.items():
            expr = re.sub(rf"\$\{{{name}\}}|\${name}\b", value, expr)
        assert "$" not in expr, f"unknown variable in {expr}"
        return expr

    out = []
    for panel in dash["panels"]:
        for sub in [panel] + panel.get("panels", []):
            out += [(sub["title"], expand(t["expr"])) for t in sub.get("targets", [])]
    return out


def has_data(result: list[dict]) -> bool:
    return any(math.isfinite(float(r["value"][1])) for r in result)


@pytest.fixture(scope="module")
def monitoring_crds(cluster, kube):
    """The Prometheus Operator's CRDs in the test cluster while this module runs (the operator discovers the
    API once, at its first pass: it starts after them)."""
    crds = Path(subprocess.run([str(ROOT / "hack" / "install-prometheus.sh"), "--print-crds"], check=True,
                               capture_output=True, text=True).stdout.strip())
    if not (crds / ".complete").exists():
        missing_tool(f"Prometheus Operator CRDs not in {crds}: run hack/install-prometheus.sh")
    kubectl = [str(bin_dir() / "kubectl"), "--kubeconfig", str(cluster.kubeconfig)]
    wait_crds(kube, crds, established=False)
    subprocess.run(kubectl + ["apply", "--server-side", "-f", str(crds)], check=True, capture_output=True)
    wait_crds(kube, crds)
    yield
    subprocess.run(kubectl + ["delete", "--ignore-not-found", "-f", str(crds)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def operator(cluster, monitoring_crds):
    op = OperatorProcess(cluster, drift_interval=3.0)
    op.start()
    yield op
    op.stop()


@pytest.fixture(scope="module")
def trainer_metrics():
    """The trainer's own metrics server (finetune/progress.py, what a training pod serves on port 9400) with the
    values of a run in progress, on loopback: the dashboard's live training panels read it."""
    from sovereign_suite.finetune.progress import Progress

    progress, port = Progress(), free_port()
    progress.total_steps.set(100)
    progress.step.set(40)
    progress.loss.set(2.5)
    progress.tokens_per_second.set(900)
    progress.serve(port, addr="127.0.0.1")
    yield f"127.0.0.1:{port}"
    progress.close()


@pytest.fixture(scope="module")
def prometheus(operator, trainer_metrics, tmp_path_factory):
    prom = Prometheus(tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{operator.metrics_port}"],
                      {"sovereign-suite-finetune": [trainer_metrics]})
    prom.start(prometheus_binary())
    yield prom
    prom.stop()


@pytest.fixture()
def refused_finetune(kube, suites):
    """A FineTune of the healthy suite whose base model declares no licence: Pending (LicenceNotOpen), which is
    enough for the operator's per-FineTune phase series."""
    healthy, _ = suites
    meta = healthy["metadata"]
    doc = {"apiVersion": "sovereignsuite.io/v1alpha1", "kind": "FineTune",
           "metadata": {"name": "summaries", "namespace": meta["namespace"]},
           "spec": {"suite": {"name": meta["name"]}, "country": "FR", "baseModel": "small",
                    "dataset": {"uri": f"s3://fr-suite-data/fine-tuning/{meta['namespace']}/d.jsonl"},
                    "lora": {"rank": 16}, "training": {"steps": 10}, "consumers": [{"name": "greffe-app"}]}}
    kube.create(doc)
    yield doc
    kube.delete(doc)


@pytest.fixture()
def suites(kube, core, namespace):
    """A two-country suite (DE's model cannot be placed) and a suite on an unknown cloud (Stalled)."""
    create_referenced_secrets(core, namespace)
    model = {"name": "small", "modelId": "org/small", "gpusPerReplica": 1, "gpuProducts": [H100]}
    healthy = suite_doc("two-countries", namespace, patch={
        # one sync worker: the per-worker-type gauges and the workers' ServiceMonitor exist (dashboard panel)
        "components": {"docs": {"enabled": False}, "llm": {"enabled": True, "models": [model]},
                       "matrix": {"workers": {"sync": 1}}},
        "monitoring": {"serviceMonitors": True}, "deletionPolicy": "Delete"})
    stalled = suite_doc("two-countries", namespace, patch={"deletionPolicy": "Delete"})
    stalled["spec"]["tenants"] = [{"country": "FR", "cloud": "nowhere"}]
    for doc in (healthy, stalled):
        kube.create(doc)
    yield healthy, stalled
    for doc in (healthy, stalled):
        kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
    for doc in (healthy, stalled):  # the operator removes the children before the CRDs go
        wait_for(lambda: kube.get(*SUITES, doc["metadata"]["name"], namespace) is None, timeout=120,
                 what=f"suite {doc['metadata']['name']} deleted")


def strict_dry_run(kube: Kube, obj: dict, namespace: str) -> None:
    """Create ``obj`` (renamed) with dryRun and fieldValidation=Strict: the API server refuses any field its
    schema does not know, where an apply would silently drop it."""
    obj = copy.deepcopy(obj)
    obj["metadata"] = {"name": obj["metadata"]["name"] + "-strict", "namespace": namespace}
    kind = kube.require(obj["apiVersion"], obj["kind"])
    kube.request("POST", kind.path(namespace), body=obj, query={"dryRun": "All", "fieldValidation": "Strict"},
                 what=ref(obj))


def check_monitoring_objects(kube: Kube, doc: dict) -> None:
    rendered = render_suite(parse_suite(doc), dev_clouds(), frozenset({MONITORING})).manifests
    want = [o for o in rendered if o["apiVersion"] == MONITORING or o["metadata"]["name"] == "allow-monitoring"]
    assert {(o["kind"], o["metadata"]["name"]) for o in want if o["metadata"]["namespace"].endswith("-fr")} == {
        ("ServiceMonitor", "synapse"), ("ServiceMonitor", "jitsi-jvb"), ("PodMonitor", "matrix-postgres"),
        ("PodMonitor", "vllm"), ("NetworkPolicy", "allow-monitoring"), ("ServiceMonitor", "synapse-workers")}
    for obj in want:  # applied, and nothing of it dropped by the CRDs' schemas
        live = wait_for(lambda: kube.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"],
                                         obj["metadata"]["namespace"]), timeout=60, what=ref(obj))
        assert contains(live, obj), f"{ref(obj)}: {first_difference(live, obj)}"
    ns = doc["metadata"]["namespace"]
    own = [yaml.safe_load((MANIFESTS / f).read_text())
           for f in ("podmonitor.yaml", "prometheusrule.yaml", "podmonitor-finetune.yaml")]
    for obj in [o for o in want if o["apiVersion"] == MONITORING] + own:
        strict_dry_run(kube, obj, ns)
    with pytest.raises(ApiError) as err:  # the strict check does refuse what the schema does not know
        strict_dry_run(kube, {**own[0], "spec": {**own[0]["spec"], "podMetricEndpoints": []}}, ns)
    assert err.value.status in (400, 422) and "podMetricEndpoints" in err.value.message
    # the embedded database runs with its exporter sidecar
    sts = wait_for(lambda: (lambda s: s if s and (s.get("status") or {}).get("readyReplicas") == 1 else None)(
        kube.get("apps/v1", "StatefulSet", "matrix-postgres", f"{doc['metadata']['name']}-fr")), timeout=120,
        what="matrix-postgres ready")
    assert [c["name"] for c in sts["spec"]["template"]["spec"]["containers"]] == ["postgres", "metrics"]


def test_dashboard_alerts_and_rules_on_a_real_prometheus(operator, prometheus, kube, core, suites, refused_finetune):
    healthy, stalled = suites
    name, bad = healthy["metadata"]["name"], stalled["metadata"]["name"]
    get = lambda doc: kube.get(*SUITES, doc["metadata"]["name"], doc["metadata"]["namespace"])  # noqa: E731

    # the operator has observed both suites: DE's model Unschedulable, the other suite Stalled
    wait_for(lambda: (condition(get(stalled), "Stalled") or {}).get("reason") == "UnknownCloud", timeout=60,
             what="second suite Stalled on its unknown cloud")
    wait_for(lambda: operator.metric("sovereign_suite_component_reason", suite=name, country="DE",
                                     component="llm", reason="Unschedulable") == 1,
             timeout=120, what="DE's LLM component Unschedulable")
    check_monitoring_objects(kube, healthy)
    # the refused FineTune's phase (a state set) in the operator's metrics
    wait_for(lambda: operator.metric("sovereign_suite_finetune_phase", finetune="summaries", phase="Pending") == 1,
             timeout=60, what="the FineTune's phase exported")
    # a drift the timer repairs
    fr = f"{name}-fr"
    wait_for(lambda: kube.get("v1", "Service", "synapse", fr), timeout=120, what="Service synapse in FR")
    # a repair counts as drift once every child of the generation was applied; the JVB media Services come last
    # when an earlier module's suite, still being deleted, holds their cluster-wide NodePorts
    for ns in (fr, f"{name}-de"):
        wait_for(lambda ns=ns: kube.get("v1", "Service", "jitsi-jvb-media", ns), timeout=180,
                 what=f"Service jitsi-jvb-media in {ns}")
    time.sleep(2)  # the pass that applied them ends (and records the generation as complete)
    core.delete_namespaced_service("synapse", fr)
    wait_for(lambda: operator.metric("sovereign_suite_drift_corrections_total", suite=name) >= 1, timeout=60,
             what="a drift correction counted")

    # The GPU gauges come from the GPU placement module: say so plainly when they are not exported at all.
    scraped = urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).read().decode()
    missing = [m for m in GPU_METRICS if f"\n{m}{{" not in scraped]
    assert not missing, f"the operator does not export {missing}: the dashboard's GPU panels would stay empty"

    # every query of every panel returns data in Prometheus (rates need a few scrapes: wait for them)
    queries = dashboard_queries()
    assert len(queries) >= 15

    def empty() -> list[str]:
        return [f"{title}: {expr}" for title, expr in queries if not has_data(prometheus.query(expr))
                and not any(m in expr for m in RESULT_ONLY)]  # RESULT_ONLY: prometheus.query checks they evaluate

    try:
        wait_for(lambda: not empty(), timeout=90, interval=2, what="data for every dashboard query")
    except AssertionError:
        pytest.fail("dashboard queries without data:\n" + "\n".join(empty()), pytrace=False)
    # the template variables list the suites and countries
    values = prometheus.api("label/country/values", **{"match[]": "sovereign_suite_component_ready"})
    assert {"FR", "DE"} <= set(values)
    assert {name, bad} <= set(prometheus.api("label/suite/values", **{"match[]": "sovereign_suite_ready"}))

    # every rule of rules.yaml is loaded and evaluates without error
    expected = sum(len(g["rules"]) for g in yaml.safe_load(RULES.read_text())["groups"])

    def evaluated() -> list[dict] | None:
        rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        return rules if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules) else None

    rules = wait_for(evaluated, timeout=30, what="every rule evaluated once")
    assert len(rules) == expected
    print(f"{len(queries)} dashboard queries with data; {len(rules)} rules evaluated")
    assert [(r["name"], r["health"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []

    # the alerts follow the operator's real output: pending for what is wrong, nothing for what is not
    def pending() -> set[tuple]:
        return {tuple(a["labels"].get(k) for k in ("alertname", "suite", "country", "component", "reason"))
                for a in prometheus.api("alerts")["alerts"]}

    want = {("SovereignSuiteLLMModelUnschedulable", name, "DE", "llm", "Unschedulable"),
            ("SovereignSuiteReconcileErrors", bad, None, None, "UnknownCloud"),
            ("SovereignSuiteNotReady", bad, None, None, None)}
    got = wait_for(lambda: (lambda p: p if want <= p else None)(pending()), timeout=60,
                   what=f"pending alerts {want}")
    assert [a for a in got if a[0] == "SovereignSuiteLLMModelUnschedulable"] == [
        ("SovereignSuiteLLMModelUnschedulable", name, "DE", "llm", "Unschedulable")]
    assert not [a for a in got if a[0] == "SovereignSuiteOperatorDown"]
    print("pending alerts:", *sorted(got, key=str), sep="\n  ")
    # DE's LLM has its own alert, not ComponentDown
    assert not [a for a in got if a[0] == "SovereignSuiteComponentDown" and a[1:4] == (name, "DE", "llm")]

    # a deleted suite's series disappear from the operator's metrics (a gauge would otherwise report it forever)
    kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": stalled["metadata"]})
    wait_for(lambda: get(stalled) is None, timeout=60, what="stalled suite deleted")
    wait_for(lambda: operator.metric("sovereign_suite_ready", suite=bad) == 0
             and f'suite="{bad}"' not in urllib.request.urlopen(
                 f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).read().decode(),
             timeout=30, what=f"series of suite {bad} removed")
