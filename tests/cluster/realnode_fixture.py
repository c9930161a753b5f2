"""A cluster of its own with the machine's real node (tests/cluster/test_real_node*.py).

The real node needs root (it changes iptables, mounts, cgroups and sysctls) and is one per machine. When it
cannot start here the tests fail with the reason under CI=true and are skipped otherwise."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest
from kubernetes import client, config

from sovereign_suite.devcluster.cluster import Cluster, ClusterError, bin_dir
from sovereign_suite.devcluster.realnode import NODE_NAME, REGION
from sovereign_suite.imageref import rewrite



def need_real_node() -> None:
    reason = None
    if os.geteuid() != 0:
        reason = "the real node needs root"
    else:
        from sovereign_suite.devcluster.realnode.node import host_tools, node_bin_dir

        try:
            node_bin_dir(build=True)
            host_tools(install=True)
        except Exception as err:  # noqa: BLE001 - any build or install failure is reported the same way
            reason = f"real node unavailable: {err}"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def start(name: str, **kwargs) -> Cluster:
    c = Cluster(name)
    try:
        c.up(progress=lambda m: print(f"[cluster] {m}"), real_node=True, **kwargs)
    except (ClusterError, Exception):
        c.down()
        raise
    return c


def local_volume(namespace: str, claim: str, root: Path, size: str = "50Gi") -> dict:
    """A PersistentVolume on the real node, bound in advance to ``namespace/claim`` (static provisioning). Its
    capacity must be at least the claim's request, or the claim is not bound to it (the default, 50Gi, holds every
    claim the suite renders: Synapse's media asks 20Gi; with 10Gi the media claim went to the provisioner).
    The hostPath provisioner makes its folders root-only (0750), which the suite's non-root pods cannot write;
    these are world-writable (the pods' own files inside keep their owners)."""
    path = root / namespace / claim
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": f"{namespace}-{claim}"[:63], "labels": {"sovereignsuite.io/test": "real-node"}},
        "spec": {
            "capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
            "persistentVolumeReclaimPolicy": "Retain", "claimRef": {"namespace": namespace, "name": claim},
            "hostPath": {"path": str(path), "type": "Directory"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["real-node"]}]}]}},
        },
    }


REGISTRY = "registry.fr.local"
SUITE = "rn"
FR_NS = f"{SUITE}-fr"
INGRESS_NS = "ingress-nginx"
FR_CLOUD = {
    "apiVersion": "sovereignsuite.io/v1alpha1", "kind": "NationalCloud", "metadata": {"name": "fr-real"},
    "spec": {"country": "FR", "provider": "local real node", "regions": [REGION], "storageClass": "standard",
             "ingressClass": "nginx", "imageRegistry": REGISTRY, "suiteNamespaces": ["rn-suites"]},
}
PATCH = {
    "deletionPolicy": "Retain",
    "tenants": [{"country": "FR", "cloud": "fr-real"}, {"country": "DE", "cloud": "de-c5"}],
    "components": {
        "docs": {"enabled": False}, "jitsi": {"enabled": False},
        # the gateway runs on the real node; the model has no replica (vLLM needs a GPU: simulated nodes only)
        "llm": {"enabled": True, "huggingFaceTokenSecretRef": {"name": "hf-token", "key": "token"},
                "models": [{"name": "small", "modelId": "mistralai/Mistral-7B-Instruct-v0.3", "servedName": "albert",
                            "parametersBillion": 7.2, "gpuProducts": ["NVIDIA-L40S", "NVIDIA-H100-80GB-HBM3"],
                            "replicas": 0}]},
    },
}
CLAIMS = ("data-matrix-postgres-0", "synapse-media")


class Real:
    """The cluster with the real node, seen from the tests: kubectl, pods, Secrets, HTTP from inside a pod."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        self.core = client.CoreV1Api(self.api)
        from sovereign_suite.reconcile.kube import Kube

        self.kube = Kube(self.api, user_agent="sovereign-suite-tests")

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120) -> str:
        proc = subprocess.run([str(bin_dir() / "kubectl"), "--kubeconfig", str(self.cluster.kubeconfig), *args],
                              input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr or proc.stdout}")
        return proc.stdout

    def apply(self, *objs: dict) -> None:
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                     input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}))

    def pod(self, ns: str, app: str) -> dict:
        pods = json.loads(self.kubectl("-n", ns, "get", "pods", "-l", f"app.kubernetes.io/name={app}", "-o",
                                       "json"))["items"]
        return next(p for p in pods if not p["metadata"].get("deletionTimestamp"))

    def secret(self, ns: str, name: str, key: str) -> str:
        return base64.b64decode(self.core.read_namespaced_secret(name, ns).data[key]).decode()

    def client_pod(self, ns: str, name: str = "client", ns_labels: dict | None = None) -> str:
        """A pod with Python on the real node in ``ns`` (the Synapse stand-in image: it has python3), within
        the Pod Security "restricted" level."""
        self.kubectl("create", "namespace", ns, check=False)
        if ns_labels:
            self.kubectl("label", "--overwrite", "namespace", ns, *(f"{k}={v}" for k, v in ns_labels.items()))
        self.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns,
                                                                     "labels": {"app": name}},
                    "spec": {"nodeName": NODE_NAME, "restartPolicy": "Never", "containers": [{
                        "name": "c", "image": rewrite("ghcr.io/element-hq/synapse:v1.163.2", REGISTRY),
                        "imagePullPolicy": "Never", "command": ["sleep", "3600"],
                        "securityContext": {"runAsUser": 991, "runAsNonRoot": True, "allowPrivilegeEscalation": False,
                                            "capabilities": {"drop": ["ALL"]},
                                            "seccompProfile": {"type": "RuntimeDefault"}}}]}})
        from .conftest import wait_for

        wait_for(lambda: self.kubectl("-n", ns, "get", "pod", name, "-o", "jsonpath={.status.phase}") == "Running",
                 timeout=120, what=f"client pod {ns}/{name} running")
        return name

    def http(self, ns: str, pod: str, url: str, timeout: float = 5) -> tuple[int, str]:
        """GET ``url`` from inside ``pod``: (status, body), status 0 when the connection fails."""
        code = ("import sys,urllib.request,urllib.error\n"
                "try:\n r=urllib.request.urlopen(sys.argv[1],timeout=float(sys.argv[2])); print(r.status); "
                "print(r.read().decode())\n"
                "except urllib.error.HTTPError as e: print(e.code); print(e.read().decode())\n"
                "except Exception as e: print(0); print(repr(e))\n")
        out = self.kubectl("-n", ns, "exec", pod, "--", "python3", "-c", code, url, str(timeout))
        status, _, body = out.partition("\n")
        return int(status), body.strip()


@pytest.fixture(scope="module")
def real():
    need_real_node()
    build_all(["postgres", "synapse", "element-web", "litellm"], progress=lambda m: print(f"[images] {m}"))
    c = start(f"rn-suite-{os.getpid()}", countries=["DE"])
    try:
        node = RealNode(c)
        node.alias_images(REGISTRY)
        r = Real(c)
        r.apply(FR_CLOUD)
        op = OperatorProcess(c, drift_interval=3.0)
        op.start()
        r.operator = op
        yield r
        op.stop()
    finally:
        c.down()



def ensure_suite(r: "Real") -> dict:
    """The suite with FR on the real node, Ready (created when absent: its PVs bound in advance)."""
    from sovereign_suite.devcluster.realnode.configs import Layout

    from .operator_fixture import create_referenced_secrets, suite_doc, wait_ready

    doc = suite_doc("two-countries", "rn-suites", name=SUITE, patch=PATCH)
    if r.kubectl("-n", "rn-suites", "get", f"sovereignsuites.sovereignsuite.io/{SUITE}", "--ignore-not-found", "-o", "name").strip():
        return wait_ready(r.kube, doc, timeout=600)
    r.apply(*(local_volume(FR_NS, claim, Layout().base / "volumes") for claim in CLAIMS))
    r.kubectl("create", "namespace", "rn-suites", check=False)
    create_referenced_secrets(r.core, "rn-suites")
    r.apply(doc)
    return wait_ready(r.kube, doc, timeout=900)


def call(r: "Real", ns: str, pod: str, method: str, url: str, body=None, token: str | None = None):
    """An HTTP request with a JSON body from inside ``pod``: (status, decoded JSON or text)."""
    code = ("import json,sys,urllib.request,urllib.error\n"
            "m,u,b,t=sys.argv[1:5]\n"
            "req=urllib.request.Request(u,method=m,data=b.encode() if b else None,"
            "headers={'Content-Type':'application/json',**({'Authorization':'Bearer '+t} if t else {})})\n"
            "try:\n r=urllib.request.urlopen(req,timeout=30); print(r.status); print(r.read().decode())\n"
            "except urllib.error.HTTPError as e: print(e.code); print(e.read().decode())\n")
    out = r.kubectl("-n", ns, "exec", pod, "--", "python3", "-c", code, method, url,
                    json.dumps(body) if body is not None else "", token or "")
    status, _, text = out.partition("\n")
    try:
        return int(status), json.loads(text)
    except ValueError:
        return int(status), text


@pytest.fixture(scope="module")
def real():
    """One cluster with the real node for the real-node suite tests (DE simulated; FR on the real node), the
    stand-in images imported and tagged under FR's registry, and the operator as a process."""
    from sovereign_suite.devcluster.realnode import RealNode
    from sovereign_suite.devcluster.realnode.build import build_all

    from .operator_fixture import OperatorProcess

    need_real_node()
    build_all(["postgres", "synapse", "element-web", "litellm"], progress=lambda m: print(f"[images] {m}"))
    c = start(f"rn-suite-{os.getpid()}", countries=["DE"])
    try:
        RealNode(c).alias_images(REGISTRY)
        r = Real(c)
        r.apply(FR_CLOUD)
        r.operator = OperatorProcess(c, drift_interval=3.0)
        r.operator.start()
        yield r
        r.operator.stop()
    finally:
        c.down()
