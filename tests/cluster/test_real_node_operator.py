"""The operator as a platform team runs it: its own image (operator_image.py, no container engine), installed by
the Helm chart with the real helm, running as a pod on the real node, converging a suite from inside the cluster.
docs/install.md, "Install on a cluster", lists exactly these steps.

- The image is reproducible: built a second time from the same sources (no cache), it has the same digest.
- The pod runs the image under the chart's ServiceAccount (the audit log's user for its writes) and RBAC, reaching
  the API server at the ``kubernetes`` Service (kube-apiserver advertises the machine's address; its certificate
  names 10.96.0.1: kwok_config.kwokctl_config); the two-country suite of the real-node tests (FR on the real node,
  DE simulated) becomes Ready.
- A real Prometheus scrapes the pod's metrics through the chart's prometheus.io annotations and the usual
  annotation-driven relabelling (the pods listed by the test: Debian's Prometheus has no Kubernetes discovery).
- Wedged (SIGSTOP of the operator's process, from the node), kubelet's readiness probe takes it out of its
  Service and the liveness probe gets it restarted; it answers again and the suite stays Ready.
- Pull mode is the same chart: helm upgrade with localClouds gives the pod `--local-cloud` per cloud, it says so
  at start, and the suite is Ready from it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from sovereign_suite.devcluster.cluster import EXAMPLE_CLOUDS, bin_dir, dev_suite_namespaces
from sovereign_suite.devcluster.realnode import NODE_NAME, RealNode
from sovereign_suite.devcluster.realnode import operator_image

from ..helpers import ROOT
from .conftest import wait_for
from .operator_fixture import free_port
from .realnode_fixture import FR_CLOUD, FR_NS, REGISTRY, SUITE, Real, ensure_suite, need_real_node, start

pytestmark = [pytest.mark.realnode, pytest.mark.slow]

CHART = ROOT / "charts" / "sovereign-suite-operator"
NAMESPACE = "sovereign-suite-system"
RELEASE = "sovereign-suite-operator"
SA_USER = f"system:serviceaccount:{NAMESPACE}:{RELEASE}"


def helm(r: Real, *args: str, timeout: float = 600) -> str:
    proc = subprocess.run([str(bin_dir() / "helm"), "--kubeconfig", str(r.cluster.kubeconfig), *args],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"helm {' '.join(args[:2])}: {proc.stderr or proc.stdout}"
    return proc.stdout


def operator_pod(r: Real) -> dict:
    pods = json.loads(r.kubectl("-n", NAMESPACE, "get", "pods", "-l", f"app.kubernetes.io/instance={RELEASE}",
                                "-o", "json"))["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert len(live) == 1, [p["metadata"]["name"] for p in pods]
    return live[0]


def container_pid(r: Real, pod: dict) -> int:
    """The operator's process as the node sees it: the container's task in containerd (ctr tasks ls)."""
    cid = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    node = RealNode(r.cluster)
    for line in node._ctr("tasks", "ls", timeout=30).stdout.splitlines()[1:]:
        task, pid, _status = line.split()
        if task == cid:
            return int(pid)
    raise AssertionError(f"no task for container {cid}")


def config_digest(archive: Path) -> str:
    """The digest of the image's config (its ID, as containerd reports it in a pod's imageID)."""
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile(f"blobs/sha256/{operator_image.digest(archive).split(':')[1]}"))
    return manifest["config"]["digest"]


def memory(pod: dict, pid: int) -> tuple[int, int]:
    """(bytes the pod's memory cgroup charges, resident bytes of the operator's process)."""
    uid = pod["metadata"]["uid"]
    cgroup = next(Path("/sys/fs/cgroup/memory/kubepods").rglob(f"pod{uid}"))
    charged = int((cgroup / "memory.usage_in_bytes").read_text())
    rss = next(int(line.split()[1]) * 1024 for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    return charged, rss


@pytest.fixture(scope="module")
def installed():
    """The cluster with the real node, the operator's image imported into its containerd, the chart installed
    (CRDs from the chart), the clouds applied and the suite Ready."""
    from sovereign_suite.devcluster import seed
    from sovereign_suite.devcluster.realnode.build import build_all

    need_real_node()
    build_all(["postgres", "synapse", "element-web", "litellm"], progress=lambda m: print(f"[images] {m}"))
    started = time.monotonic()
    archive = operator_image.build(progress=lambda m: print(f"[image] {m}"))
    print(f"operator image: {archive.name} in {time.monotonic() - started:.0f} s "
          f"({archive.stat().st_size / 2**20:.1f} MiB)")
    c = start(f"rn-op-{os.getpid()}", countries=["DE"], crds=False)
    try:
        node = RealNode(c)
        node.import_image(archive)  # ctr -n k8s.io images import
        node.alias_images(REGISTRY)
        r = Real(c)
        r.archive = archive
        began = time.monotonic()
        helm(r, "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace",
             "--set", "image.pullPolicy=Never", "--set", f"nodeSelector.kubernetes\\.io/hostname={NODE_NAME}",
             # one replica: the wedge test watches one pod lose its endpoint; two replicas with leader election
             # are proven with operator processes (tests/cluster/test_leader_failover.py)
             "--set", "replicaCount=1",
             "--set", "operator.driftInterval=10", "--wait", "--timeout", "5m")
        r.helm_installed = time.monotonic() - began
        seed.apply_national_clouds(c.kubeconfig, EXAMPLE_CLOUDS, countries={"DE"},
                                   suite_namespaces=dev_suite_namespaces())
        r.apply(FR_CLOUD)
        ensure_suite(r)
        r.install_to_ready = time.monotonic() - began
        print(f"helm install --wait: {r.helm_installed:.0f} s; install to a Ready suite: {r.install_to_ready:.0f} s")
        yield r
    finally:
        c.down()


def test_image_build_is_reproducible(tmp_path: Path):
    """Two builds from the same sources: the cached one (make operator-image, or built now) and one from
    scratch; the same manifest digest, byte for byte the same archive."""
    if os.geteuid() != 0 or not shutil.which("mmdebstrap"):
        need_real_node()  # skips (or fails under CI) with the reason
    first = operator_image.build(progress=print)
    started = time.monotonic()
    second = operator_image.build(tmp_path / "again.oci.tar", progress=print, cache=False)
    print(f"operator image: rebuilt from scratch in {time.monotonic() - started:.0f} s")
    assert operator_image.digest(second) == operator_image.digest(first)
    assert second.read_bytes() == first.read_bytes()


def test_chart_runs_the_operator_on_the_real_node(installed: Real):
    r = installed
    pod = operator_pod(r)
    spec, status = pod["spec"], pod["status"]
    assert spec["nodeName"] == NODE_NAME and spec["serviceAccountName"] == RELEASE
    ctr = spec["containers"][0]
    assert ctr["image"] == f"sovereign-suite-operator:{operator_image.version()}"
    assert ctr["securityContext"]["readOnlyRootFilesystem"] is True and spec["securityContext"]["runAsNonRoot"]
    state = status["containerStatuses"][0]
    # containerd reports the image by its config's digest
    assert state["ready"] and state["imageID"] == config_digest(r.archive), state["imageID"]
    # the image's user, not root
    pid = container_pid(r, pod)
    uids = next(line.split()[1:] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("Uid:"))
    assert set(uids) == {"65532"}, uids
    # the suite's writes came from the pod, as the chart's ServiceAccount
    suite = json.loads(r.kubectl("-n", "rn-suites", "get", f"sovereignsuites.sovereignsuite.io/{SUITE}", "-o",
                                 "json"))
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in suite["status"]["conditions"])
    writers = set()
    for line in r.cluster.audit_log.read_text(errors="replace").splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        ref = ev.get("objectRef") or {}
        if ev.get("verb") in ("create", "patch", "update") and ref.get("namespace") == FR_NS:
            writers.add(ev["user"]["username"])
    assert SA_USER in writers, writers
    charged, rss = memory(pod, pid)
    print(f"operator pod: {charged / 2**20:.0f} MiB charged to its cgroup, process resident {rss / 2**20:.0f} MiB; "
          f"helm install to Ready suite {r.install_to_ready:.0f} s")


def test_prometheus_scrapes_the_pod_by_its_annotations(installed: Real, tmp_path: Path):
    from .test_prometheus import Prometheus, prometheus_binary

    r = installed
    prom = Prometheus(tmp_path, [])
    # Debian's Prometheus (2.42) is built without Kubernetes discovery (kubernetes_sd_configs is refused): the
    # test lists the namespace's pods itself and hands Prometheus each one with the __meta_kubernetes_pod_*
    # labels kubernetes_sd_configs (role pod) would give it, through file_sd_configs; Prometheus then applies
    # the common annotation-driven relabelling (its documentation/examples/prometheus-kubernetes.yml,
    # "kubernetes-pods"): keep pods with prometheus.io/scrape=true, use their port and path annotations.
    def meta(key: str) -> str:
        return "__meta_kubernetes_pod_annotation_" + "".join(c if c.isalnum() else "_" for c in key)

    targets = []
    for p in json.loads(r.kubectl("-n", NAMESPACE, "get", "pods", "-o", "json"))["items"]:
        labels = {meta(k): v for k, v in (p["metadata"].get("annotations") or {}).items()}
        labels.update({"__meta_kubernetes_pod_ip": p["status"]["podIP"],
                       "__meta_kubernetes_pod_name": p["metadata"]["name"]})
        targets.append({"targets": [p["status"]["podIP"]], "labels": labels})
    (tmp_path / "pods.json").write_text(json.dumps(targets))
    job = {
        "job_name": "kubernetes-pods",
        "file_sd_configs": [{"files": [str(tmp_path / "pods.json")]}],
        "relabel_configs": [
            {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], "action": "keep",
             "regex": "true"},
            {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"], "action": "replace",
             "target_label": "__metrics_path__", "regex": "(.+)"},
            {"source_labels": ["__meta_kubernetes_pod_ip", "__meta_kubernetes_pod_annotation_prometheus_io_port"],
             "action": "replace", "regex": "(.+);(\\d+)", "replacement": "$1:$2", "target_label": "__address__"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ],
    }
    config = {"global": {"scrape_interval": "2s", "evaluation_interval": "2s"}, "scrape_configs": [job]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prom.start(prometheus_binary())
    try:
        pod = operator_pod(r)["metadata"]["name"]
        wait_for(lambda: prom.query(f'up{{job="kubernetes-pods",pod="{pod}"}} == 1'), timeout=60,
                 what="Prometheus scraping the operator pod")
        ready = prom.query(f'sovereign_suite_ready{{pod="{pod}"}}')
        assert [s["value"][1] for s in ready] == ["1"], ready
    finally:
        prom.stop()


def test_wedged_operator_is_restarted_by_kubelet(installed: Real):
    r = installed
    pod = operator_pod(r)
    name, restarts = pod["metadata"]["name"], pod["status"]["containerStatuses"][0]["restartCount"]
    pid = container_pid(r, pod)
    os.kill(pid, signal.SIGSTOP)  # the whole process, its loop and its health endpoint: a wedged operator
    try:
        wait_for(lambda: not operator_pod(r)["status"]["containerStatuses"][0]["ready"], timeout=90,
                 what="readiness probe failing on the wedged operator")

        def out_of_service() -> bool:  # the endpoints controller follows the pod's Ready condition
            endpoints = json.loads(r.kubectl("-n", NAMESPACE, "get", "endpoints", f"{RELEASE}-metrics", "-o",
                                             "json"))
            return not any(s.get("addresses") for s in endpoints.get("subsets") or [])

        wait_for(out_of_service, timeout=30, what="the wedged operator out of its metrics Service")
        started = time.monotonic()
        wait_for(lambda: operator_pod(r)["status"]["containerStatuses"][0]["restartCount"] > restarts,
                 timeout=240, what="kubelet restarting the wedged operator")
        print(f"wedged operator restarted {time.monotonic() - started:.0f} s after it stopped being ready")
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    wait_for(lambda: operator_pod(r)["status"]["containerStatuses"][0]["ready"], timeout=120,
             what="operator ready again")
    pod = operator_pod(r)
    assert pod["metadata"]["name"] == name  # the same pod: kubelet restarted its container
    events = r.kubectl("-n", NAMESPACE, "get", "events", "--field-selector", f"involvedObject.name={name}", "-o",
                       "json")
    messages = [e["message"] for e in json.loads(events)["items"]]
    assert any("Liveness probe failed" in m for m in messages), messages
    suite = json.loads(r.kubectl("-n", "rn-suites", "get", f"sovereignsuites.sovereignsuite.io/{SUITE}", "-o",
                                 "json"))
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in suite["status"]["conditions"])


def test_pull_mode_is_the_same_chart_with_local_clouds(installed: Real):
    """helm upgrade with localClouds: the pod runs `--local-cloud` for each (sovereign pull mode,
    docs/multi-cluster.md), and with both of the suite's clouds local the suite is Ready again from it."""
    from .operator_fixture import wait_ready, suite_doc
    from .realnode_fixture import PATCH

    r = installed
    helm(r, "upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE, "--reuse-values",
         "--set", "localClouds={fr-real,de-c5}", "--wait", "--timeout", "5m")
    wait_for(lambda: len(json.loads(r.kubectl("-n", NAMESPACE, "get", "pods", "-l",
                                              f"app.kubernetes.io/instance={RELEASE}", "-o", "json"))["items"]) == 1,
             timeout=120, what="the old operator pod gone (Recreate)")
    pod = operator_pod(r)
    args = pod["spec"]["containers"][0]["args"]
    assert "--local-cloud=fr-real" in args and "--local-cloud=de-c5" in args, args
    assert pod["status"]["containerStatuses"][0]["ready"]
    log = r.kubectl("-n", NAMESPACE, "logs", pod["metadata"]["name"])
    assert "pull mode, local clouds: fr-real, de-c5" in log, log[-2000:]
    wait_ready(r.kube, suite_doc("two-countries", "rn-suites", name=SUITE, patch=PATCH), timeout=300)
