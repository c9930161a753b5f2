"""API discovery as the operator caches it (reconcile/kube.py, ``Kube.kind``), against the real API server: a
kind whose CRD is established after its group was first read is found once the discovery TTL has passed. The
Prometheus Operator's CRDs are established one by one, and a group read between two of them used to be cached
as served without the second kind for good (the operator then never rendered its ServiceMonitors).

And the watch of a kind not served (reconcile/unserved.py): it asks discovery again with a backoff (counted in
the API server's audit log), finds a CRD installed later by that retry, and at once when a request of a pass finds
it first (``Kube.require``, what a pass's apply calls)."""

from __future__ import annotations

import time
import uuid

from kubernetes import config

from sovereign_suite.reconcile.informer import Informer
from sovereign_suite.reconcile.kube import Kube
from sovereign_suite.reconcile.strip import keep_whole
from sovereign_suite.reconcile.watchloop import WatchLoop

from .conftest import wait_for
from .operator_fixture import Audit


def crd(group: str, kind: str) -> dict:
    plural = kind.lower() + "s"
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {"type": "object",
                                                                  "x-kubernetes-preserve-unknown-fields": True}}}]}}


def test_a_kind_added_to_a_served_group_is_found_after_the_ttl(cluster, kube):
    group = f"d{uuid.uuid4().hex[:6]}.sovereignsuite.test"
    api_version = f"{group}/v1"
    ttl = 1.0
    fresh = Kube(config.new_client_from_config(config_file=str(cluster.kubeconfig)), discovery_ttl=ttl)
    probe = Kube(config.new_client_from_config(config_file=str(cluster.kubeconfig)), discovery_ttl=0)
    first, second = crd(group, "Alpha"), crd(group, "Beta")
    try:
        kube.create(first)
        wait_for(lambda: fresh.kind(api_version, "Alpha"), 60, 0.3, "the first kind served")
        assert fresh.kind(api_version, "Beta") is None  # the group is cached as served, without Beta
        kube.create(second)
        wait_for(lambda: probe.kind(api_version, "Beta"), 60, 0.3, "the second kind in discovery")
        time.sleep(ttl)
        assert fresh.kind(api_version, "Beta") is not None
        assert fresh.kind(api_version, "Alpha") is not None
    finally:
        for c in (first, second):
            kube.delete(c)


def discovery_gets(audit: Audit, since: int, api_version: str) -> list[float]:
    """When the client of ``audit.agents`` asked discovery for ``api_version`` (the API server's own clock)."""
    from datetime import datetime

    return [datetime.fromisoformat(e["requestReceivedTimestamp"].replace("Z", "+00:00")).timestamp()
            for e in audit.events(since)
            if e.get("verb") == "get" and e.get("requestURI", "").split("?")[0] == f"/apis/{api_version}"]


def watching(cluster, ttl: float, base: float, cap: float, api_version: str, kind: str,
             also: tuple[str, ...] = ()) -> tuple:
    """A client of its own user agent (told apart in the audit log), its watch loop, and an informer of ``kind``
    started on it with the backoff ``base``..``cap`` (and one of each kind of ``also``, same group, same
    backoff); the informers have listed (found their kinds not served)."""
    agent = f"sovereign-suite-disc-{uuid.uuid4().hex[:6]}"
    kube = Kube(config.new_client_from_config(config_file=str(cluster.kubeconfig)), discovery_ttl=ttl,
                user_agent=agent)
    audit = Audit(cluster)
    audit.agents = (agent,)
    mark = audit.mark()
    loop = WatchLoop(name=f"disc-{agent}")
    infs = [Informer(kube, api_version, k, strip=keep_whole, unserved_retry=base, unserved_retry_max=cap,
                     watches=loop).start() for k in (kind, *also)]
    for inf in infs:
        assert inf.synced.wait(30), "the informer's first list"
        assert not inf.served
    return kube, audit, mark, loop, infs


def test_an_unserved_kind_is_asked_again_with_a_backoff_and_found_by_it(cluster, kube):
    group = f"b{uuid.uuid4().hex[:6]}.sovereignsuite.test"
    api_version = f"{group}/v1"
    alpha, beta = crd(group, "Alpha"), crd(group, "Beta")
    # two watches of the group (like ServiceMonitor and PodMonitor): they wake together, one request answers both
    _, audit, mark, loop, infs = watching(cluster, ttl=1.0, base=1.0, cap=4.0, api_version=api_version,
                                          kind="Alpha", also=("Beta",))
    inf = infs[0]
    try:
        time.sleep(14)
        asked = discovery_gets(audit, mark, api_version)
        gaps = [round(b - a, 1) for a, b in zip(asked, asked[1:])]
        # asked at about 0, 1, 3, 7, 11 s (waits of 1, 2, 4, 4): 5, where every second would be 14 (28 for the two)
        assert 4 <= len(asked) <= 6, (asked, gaps)
        assert gaps[:3] == sorted(gaps[:3]) and max(gaps) <= 4.0 + 1.0 and gaps[2] >= 3.0, gaps
        kube.create(alpha)
        kube.create(beta)
        # found by the backoff's next look (at most the cap later, once the CRDs are established)
        wait_for(lambda: all(i.served for i in infs), 30, 0.2,
                 "the informers find the CRDs installed after they looked")
        obj = {"apiVersion": api_version, "kind": "Alpha", "metadata": {"name": "one", "namespace": "default"}}
        kube.create(obj)
        wait_for(lambda: inf.get("default", "one"), 30, 0.2, "the informer watches the kind now")
        served_at = len(discovery_gets(audit, mark, api_version))
        time.sleep(6)
        assert len(discovery_gets(audit, mark, api_version)) == served_at, "served: discovery is not asked again"
    finally:
        for i in infs:
            i.stop()
        loop.stop()
        kube.delete(alpha)
        kube.delete(beta)


def test_a_pass_needing_the_kind_finds_it_at_once_and_wakes_the_watch(cluster, kube):
    group = f"p{uuid.uuid4().hex[:6]}.sovereignsuite.test"
    api_version = f"{group}/v1"
    alpha = crd(group, "Alpha")
    probe = Kube(config.new_client_from_config(config_file=str(cluster.kubeconfig)), discovery_ttl=0)
    # the watch would look again only after 120 s
    member, audit, mark, loop, (inf,) = watching(cluster, ttl=1.0, base=120.0, cap=600.0,
                                                 api_version=api_version, kind="Alpha")
    try:
        kube.create(alpha)
        wait_for(lambda: probe.kind(api_version, "Alpha"), 60, 0.3, "the kind in discovery")
        time.sleep(1.0)  # the client's cached "not served" is older than its discovery interval
        start = time.monotonic()
        assert member.require(api_version, "Alpha").plural == "alphas"  # a pass applying an Alpha
        wait_for(lambda: inf.served, 10, 0.1, "the watch woken by the pass's discovery answer")
        assert time.monotonic() - start < 10
        # the watch listed on the pass's answer: one discovery request in all since the first list's
        assert len(discovery_gets(audit, mark, api_version)) == 2
    finally:
        inf.stop()
        loop.stop()
        kube.delete(alpha)


def test_a_pass_asking_for_an_api_its_suite_wants_finds_it_before_the_watch(cluster, kube):
    """``ClusterCache.served(ask=True)``: what a pass calls for the optional APIs its suite asks for
    (child_kinds.wanted_apis: serviceMonitors, a cloudnative-pg database). Without ``ask`` it answers from the
    watch (which would look again only after 120 s); with it, from discovery, and the watch is woken."""
    from sovereign_suite.reconcile.cache import ClusterCache

    group = f"c{uuid.uuid4().hex[:6]}.sovereignsuite.test"
    api_version = f"{group}/v1"
    alpha = crd(group, "Alpha")
    probe = Kube(config.new_client_from_config(config_file=str(cluster.kubeconfig)), discovery_ttl=0)
    member = Kube(config.new_client_from_config(config_file=str(cluster.kubeconfig)), discovery_ttl=1.0,
                  user_agent=f"sovereign-suite-disc-{uuid.uuid4().hex[:6]}")
    loop = WatchLoop(name="disc-cache")
    cache = ClusterCache(member, ((api_version, "Alpha"),), (), unserved_retry=120.0, unserved_retry_max=600.0,
                         referenceable=False, secrets_by_namespace=True, log_text=False, watches=loop).start()
    try:
        assert cache.wait_synced(60)
        assert not cache.served(api_version, "Alpha") and not cache.served(api_version, "Alpha", ask=True)
        kube.create(alpha)
        wait_for(lambda: probe.kind(api_version, "Alpha"), 60, 0.3, "the kind in discovery")
        time.sleep(1.0)  # the client's cached "not served" is older than its discovery interval
        assert not cache.served(api_version, "Alpha")  # the watch has not looked again (its wait is 120 s)
        assert cache.served(api_version, "Alpha", ask=True)
        (inf,) = [i for i in cache.informers() if i.kind == "Alpha"]
        wait_for(lambda: inf.served, 10, 0.1, "the watch woken by the pass's answer")
        assert cache.served(api_version, "Alpha")
    finally:
        cache.stop()
        loop.stop()
        kube.delete(alpha)
