"""A member whose API server hangs: its kube-apiserver process frozen (SIGSTOP) keeps its port open, the kernel
accepts connections and acknowledges requests, and nothing is ever answered (a hung server, a black-holed route).
Hub + France + Germany as in test_push_mode.py (its fixtures), eight two-country suites, the operator with its
default member deadlines (docs/multi-cluster.md, "When a member hangs")."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from sovereign_suite.components.base import MANAGED_BY
from .conftest import wait_for
from .operator_fixture import OperatorProcess, condition, create_referenced_secrets, get_suite
from .test_push_mode import (GENERATED, SUITES, clouds, member_kube, members, ready, tenant,  # noqa: F401
                             two_country_suite)

MANAGED = f"app.kubernetes.io/managed-by={MANAGED_BY}"
SUITE_COUNT = 8
FR_CONVERGES = 30.0  # seconds after the spec change
DE_UNREACHABLE = 90.0  # seconds after the freeze


@pytest.fixture(scope="module")
def hub_operator(cluster):
    op = OperatorProcess(cluster, drift_interval=30.0, tag="hang-operator")
    op.start()
    yield op
    op.stop()


def german_objects(de, names: list[str]) -> dict[tuple[str, str, str], tuple[str, object]]:
    """(namespace, kind, name) -> (uid, data) of the suites' Secrets, ConfigMaps and Services in Germany, to find
    duplicates (three requests: read at the moment of the freeze)."""
    namespaces = {f"{n}-de" for n in names}
    return {(o["metadata"]["namespace"], kind, o["metadata"]["name"]): (o["metadata"]["uid"], o.get("data"))
            for kind in ("Secret", "ConfigMap", "Service") for o in de.list("v1", kind, MANAGED)
            if o["metadata"]["namespace"] in namespaces}


def test_a_member_that_hangs_holds_back_only_its_own_tenants(members, clouds, hub_operator, kube, core, namespace):
    create_referenced_secrets(core, namespace)
    docs = []
    for i in range(SUITE_COUNT):
        doc = two_country_suite(namespace, clouds)
        doc["metadata"]["name"] = f"h{i}{uuid.uuid4().hex[:4]}"
        doc["spec"]["components"]["jitsi"] = {"enabled": False}
        kube.create(doc)
        docs.append(doc)
    names = [d["metadata"]["name"] for d in docs]
    fr, de = member_kube(members["FR"]), member_kube(members["DE"])
    # mid-convergence: Germany's API server freezes as soon as the first suite's generated Secrets are there, while
    # the operator is still writing the others there
    wait_for(lambda: de.list("v1", "Secret", GENERATED, f"{names[0]}-de"), timeout=180, what="Germany's first Secrets",
             interval=0.2)
    before = german_objects(de, names)
    members["DE"].pause_component("kube-apiserver")
    frozen = time.monotonic()
    try:
        # a spec change to the French tenants (a per-tenant override) reaches France while Germany hangs
        for doc in docs:
            tenants = [{"country": "FR", "cloud": clouds["FR"],
                        "components": {"matrix": {"federation": {"extraDomains": ["example.org"]}}}},
                       {"country": "DE", "cloud": clouds["DE"]}]
            kube.merge_patch(*SUITES, doc["metadata"]["name"], namespace, {"spec": {"tenants": tenants}})
        changed = time.monotonic()

        def french_done():
            return all("example.org" in json.dumps(fr.get("v1", "ConfigMap", "synapse", f"{n}-fr") or {})
                       for n in names)

        wait_for(french_done, timeout=FR_CONVERGES, what="the French tenants' change applied while Germany hangs")
        print(f"France converged {time.monotonic() - changed:.1f} s after the change")

        def german_unreachable():
            suites = [get_suite(kube, d) for d in docs]
            for s in suites:
                t = tenant(s, "DE") if (s or {}).get("status", {}).get("tenants") else None
                c = condition(s, "Degraded")
                if not (t and t["clusterReachable"] is False and not t["ready"] and t["components"]
                        and all(comp["reason"] == "ClusterUnreachable" for comp in t["components"])
                        and c and c["status"] == "True" and clouds["DE"] in c["message"]):
                    return None
            return suites

        left = DE_UNREACHABLE - (time.monotonic() - frozen)
        suites = wait_for(german_unreachable, timeout=left, what="every German tenant ClusterUnreachable")
        print(f"Germany reported unreachable {time.monotonic() - frozen:.1f} s after the freeze")
        for s in suites:
            assert condition(s, "Ready")["status"] == "False"  # never a stale Ready
            assert tenant(s, "FR")["clusterReachable"] is True
    finally:
        members["DE"].resume_component("kube-apiserver")
    for doc in docs:  # no restart of the operator: its watches found the member again
        ready(kube, doc, 240)
    assert hub_operator.proc.poll() is None
    # nothing duplicated: what Germany held before the freeze is the same object, generated values unchanged
    after = german_objects(de, names)
    for key, (uid, data) in before.items():
        assert key in after and after[key][0] == uid, key
        if key[1] == "Secret":  # generated values (and copies of referenced Secrets) unchanged
            assert after[key][1] == data, key
    assert any(k[1] == "Secret" for k in before)  # the freeze came after Germany's first generated Secrets
    for n in names:
        assert "example.org" not in json.dumps(de.get("v1", "ConfigMap", "synapse", f"{n}-de"))  # France's only
    for doc in docs:
        kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
    wait_for(lambda: all(get_suite(kube, d) is None for d in docs), timeout=180, what="suites deleted")
