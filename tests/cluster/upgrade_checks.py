"""What a chart upgrade or rollback must not disturb (tests/cluster/test_real_node_upgrade.py): the suite's
Ready condition sampled throughout, the children's content and writes (the API server's audit log), the pods'
identities and restarts, and the operator replicas' leadership."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.request
from typing import Any

from kubernetes import config

from .operator_fixture import WRITE_VERBS

# the children's kinds in a tenant namespace (reconcile/pipeline.py CHILD_KINDS, those the real-node suite renders)
KINDS = ("configmaps,secrets,services,persistentvolumeclaims,resourcequotas,limitranges,networkpolicies,ingresses,"
         "rolebindings,deployments,statefulsets,jobs,poddisruptionbudgets,horizontalpodautoscalers")
PLURAL = {"ConfigMap": "configmaps", "Secret": "secrets", "Service": "services",
          "PersistentVolumeClaim": "persistentvolumeclaims", "ResourceQuota": "resourcequotas",
          "LimitRange": "limitranges", "NetworkPolicy": "networkpolicies", "Ingress": "ingresses",
          "RoleBinding": "rolebindings", "Deployment": "deployments", "StatefulSet": "statefulsets", "Job": "jobs",
          "PodDisruptionBudget": "poddisruptionbudgets", "HorizontalPodAutoscaler": "horizontalpodautoscalers"}
# written by Kubernetes itself, not by a render: the controllers' annotations
VOLATILE_ANNOTATIONS = ("deployment.kubernetes.io/revision",)


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def content(obj: dict[str, Any]) -> str:
    """What a render decides about an object: labels, annotations, spec, data (no status, no bookkeeping)."""
    meta = obj["metadata"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in VOLATILE_ANNOTATIONS}
    return digest([meta.get("labels") or {}, annotations, obj.get("spec"), obj.get("data"), obj.get("type")])


class Snapshot:
    """The suite's children and pods in its tenant namespaces at one moment."""

    def __init__(self, r, namespaces: list[str]):
        self.children: dict[tuple[str, str, str], str] = {}
        self.templates: dict[tuple[str, str, str], str] = {}  # (kind, ns, name) of Deployments, StatefulSets
        self.pods: dict[tuple[str, str], tuple[str, int, tuple[str, str, str]]] = {}
        for ns in namespaces:
            items = json.loads(r.kubectl("-n", ns, "get", KINDS, "-o", "json"))["items"]
            for obj in items:
                key = (PLURAL[obj["kind"]], ns, obj["metadata"]["name"])
                self.children[key] = content(obj)
                if obj["kind"] in ("Deployment", "StatefulSet"):
                    self.templates[key] = digest(obj["spec"]["template"])
            owners = {rs["metadata"]["name"]: next((o for o in rs["metadata"].get("ownerReferences") or []), None)
                      for rs in json.loads(r.kubectl("-n", ns, "get", "replicasets", "-o", "json"))["items"]}
            for pod in json.loads(r.kubectl("-n", ns, "get", "pods", "-o", "json"))["items"]:
                meta = pod["metadata"]
                if meta.get("deletionTimestamp"):
                    continue
                owner = next(iter(meta.get("ownerReferences") or []), {"kind": "", "name": ""})
                if owner["kind"] == "ReplicaSet" and owners.get(owner["name"]):
                    owner = owners[owner["name"]]
                restarts = sum(c.get("restartCount", 0) for c in pod["status"].get("containerStatuses") or [])
                self.pods[(ns, meta["name"])] = (meta["uid"], restarts,
                                                 (PLURAL.get(owner["kind"], owner["kind"]), ns, owner["name"]))

    def changed(self, after: "Snapshot") -> set[tuple[str, str, str]]:
        """Children whose content differs (or that appeared or went) between this snapshot and ``after``."""
        keys = self.children.keys() | after.children.keys()
        return {k for k in keys if self.children.get(k) != after.children.get(k)}

    def disturbed_pods(self, after: "Snapshot") -> list[str]:
        """Pods replaced or restarted although their workload's pod template is the same."""
        out = []
        for key, (uid, restarts, owner) in self.pods.items():
            if owner in self.templates and self.templates[owner] != after.templates.get(owner):
                continue  # its template changed: a new pod is expected
            now = after.pods.get(key)
            if now is None or now[0] != uid or now[1] != restarts:
                out.append(f"{key[0]}/{key[1]}: {uid}/{restarts} -> {now[:2] if now else 'gone'} (owner {owner})")
        return out


def child_writes(events: list[dict[str, Any]], user: str, namespaces: list[str]) -> dict[tuple[str, str, str], list[str]]:
    """The operator's writes (as the chart's ServiceAccount) to objects in the tenant namespaces, by object."""
    out: dict[tuple[str, str, str], list[str]] = {}
    for ev in events:
        ref = ev.get("objectRef") or {}
        if (ev.get("verb") in WRITE_VERBS and ev["user"]["username"] == user and ref.get("namespace") in namespaces
                and not ref.get("subresource")):
            out.setdefault((ref.get("resource"), ref["namespace"], ref.get("name", "")), []).append(
                f"{ev['requestReceivedTimestamp']} {ev['verb']} {ev.get('responseStatus', {}).get('code')} "
                f"{ev.get('userAgent', '')}")
    return out


class ReadyWatch:
    """Samples the suite's Ready condition every ``interval`` seconds in a thread of its own (its own client)."""

    def __init__(self, kubeconfig, namespace: str, name: str, interval: float = 0.5):
        from sovereign_suite.reconcile.kube import Kube

        self.kube = Kube(config.new_client_from_config(config_file=str(kubeconfig)), user_agent="upgrade-watch")
        self.namespace, self.name, self.interval = namespace, name, interval
        self.samples: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                suite = self.kube.get("sovereignsuite.io/v1alpha1", "SovereignSuite", self.name, self.namespace)
                ready = next((c["status"] for c in (suite or {}).get("status", {}).get("conditions", [])
                              if c["type"] == "Ready"), "absent")
            except Exception as err:  # noqa: BLE001 - an unreadable suite is a sample too, reported as such
                ready = f"error: {err}"
            self.samples.append((time.monotonic(), ready))
            self._stop.wait(self.interval)

    def __enter__(self) -> "ReadyWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def not_ready(self) -> list[str]:
        return [f"{t:.1f}: {s}" for t, s in self.samples if s != "True"]


def lease_holder(r, namespace: str, name: str) -> str:
    lease = json.loads(r.kubectl("-n", namespace, "get", "lease", name, "-o", "json"))
    return lease["spec"].get("holderIdentity") or ""


def passes(pod: dict[str, Any]) -> float:
    """The reconcile passes a replica has run (its /metrics, from the node: pod IPs are routed here)."""
    port = pod["metadata"]["annotations"]["prometheus.io/port"]
    body = urllib.request.urlopen(f"http://{pod['status']['podIP']}:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line.startswith("sovereign_suite_reconcile_total{"))
