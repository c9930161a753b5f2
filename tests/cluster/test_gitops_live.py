"""A live suite's status, as the operator writes it, read by Argo CD's health check and by Flux's kstatus
(both through their own code, see tests/test_gitops.py): Ready is Healthy/Current, paused is Suspended."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sovereign_suite.reconcile.kube import Kube

from ..test_gitops import argo_health, gitops_bin, kstatus
from .conftest import wait_for
from .operator_fixture import SUITES, condition, create_referenced_secrets, suite_doc


@pytest.fixture(scope="module")
def tools() -> Path:
    return gitops_bin()


def observed(kube: Kube, doc, check) -> dict:
    """The live suite once the operator has observed its current generation and ``check(suite)`` holds."""
    def current():
        s = kube.get(*SUITES, doc["metadata"]["name"], doc["metadata"]["namespace"])
        ok = s and (s.get("status") or {}).get("observedGeneration") == s["metadata"]["generation"] and check(s)
        return s if ok else None

    return wait_for(current, timeout=120, what=f"suite {doc['metadata']['name']} observed")


def dump(suite: dict, path: Path) -> Path:
    """As `kubectl get -o yaml` would hand it to a GitOps tool (managedFields are not part of the health)."""
    suite = {**suite, "metadata": {k: v for k, v in suite["metadata"].items() if k != "managedFields"}}
    path.write_text(yaml.safe_dump(suite))
    return path


def test_live_status_is_healthy_current_then_suspended(tools, operator, kube, core, namespace, tmp_path):
    create_referenced_secrets(core, namespace)
    doc = suite_doc("two-countries", namespace, patch={"deletionPolicy": "Delete"})
    kube.create(doc)
    try:
        ready = observed(kube, doc, lambda s: (condition(s, "Ready") or {}).get("status") == "True")
        components = sum(len(t["components"]) for t in ready["status"]["tenants"])
        [argo] = argo_health(tools, dump(ready, tmp_path / "ready.yaml"))
        assert (argo["status"], argo["message"]) == ("Healthy", f"{components} components ready")
        [flux] = kstatus(tools, tmp_path / "ready.yaml")
        assert flux["status"] == "Current", flux

        kube.merge_patch(*SUITES, doc["metadata"]["name"], namespace, {"spec": {"paused": True}})
        paused = observed(kube, doc, lambda s: (condition(s, "Reconciling") or {}).get("reason") == "Paused")
        [argo] = argo_health(tools, dump(paused, tmp_path / "paused.yaml"))
        assert argo["status"] == "Suspended", argo
        assert argo["message"] == condition(paused, "Reconciling")["message"]
        # Flux has no "suspended": a paused suite whose components are all ready stays Current
        [flux] = kstatus(tools, tmp_path / "paused.yaml")
        assert flux["status"] == "Current", flux
    finally:
        kube.merge_patch(*SUITES, doc["metadata"]["name"], namespace, {"spec": {"paused": False}})
        kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
        wait_for(lambda: kube.get(*SUITES, doc["metadata"]["name"], namespace) is None, timeout=120,
                 what="suite deleted")
