"""Parked watches (informer.py, ``park``): a member cache's watch of a kind with nothing of the operator's in it
holds no connection, and watches again as soon as the operator writes that kind, against the session's real API
server. The member's cache is built as context.py builds it (``park=True``, tenant Secrets per namespace once
the operator's Secret-reader RoleBinding is seen), on a client of its own whose writes wake it (``Kube.on_write``);
``park_after`` is cut from 120 s to 1 s so that parking again is seen within the test."""

from __future__ import annotations

import uuid
from typing import Any

from sovereign_suite.components.base import LABEL_SUITE, LABEL_SUITE_NS, MANAGED_BY
from sovereign_suite.members.rbac import secret_reader_binding
from sovereign_suite.reconcile.cache import MANAGED_SELECTOR, ClusterCache, strip_child
from sovereign_suite.reconcile.informer import Informer
from sovereign_suite.reconcile.kube import Kube
from sovereign_suite.reconcile.problems import SuiteKey
from sovereign_suite.reconcile.watchloop import WatchLoop

from .conftest import wait_for

RBAC = ("rbac.authorization.k8s.io/v1", "RoleBinding")


def labelled(suite: SuiteKey) -> dict[str, str]:
    return {LABEL_SUITE: suite.name, LABEL_SUITE_NS: suite.namespace, "app.kubernetes.io/managed-by": MANAGED_BY}


def secret(namespace: str, suite: SuiteKey) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "generated", "namespace": namespace,
                                                               "labels": labelled(suite)},
            "data": {"k": "dg=="}}


def test_a_parked_watch_lists_and_watches_again_when_its_kind_is_written_and_parks_once_empty(api, kube, namespace):
    writer = Kube(api, user_agent="sovereign-suite-tests-parking")
    selector = f"{MANAGED_SELECTOR},parking-test={uuid.uuid4().hex[:8]}"
    loop = WatchLoop("test-parking")
    inf = Informer(writer, "v1", "ConfigMap", strip=strip_child, namespace=namespace, label_selector=selector,
                   park=True, park_after=1.0, watch_timeout=3, watches=loop)
    writer.on_write = lambda api_version, kind, ns: inf.wake() if (kind, ns) == ("ConfigMap", namespace) else None
    inf.start()
    try:
        assert inf.synced.wait(30), "first listing"
        wait_for(lambda: inf.parked, 10, 0.1, "parked after listing nothing")
        assert loop.sessions() == 1 and inf.items() == []
        labels = {"app.kubernetes.io/managed-by": MANAGED_BY, "parking-test": selector.rsplit("=", 1)[1]}
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": namespace,
                                                                    "labels": labels}, "data": {"v": "1"}}
        writer.apply(cm, "sovereign-suite-tests")
        wait_for(lambda: inf.get(namespace, "c") is not None, 30, 0.1, "the written ConfigMap in the store")
        assert not inf.parked
        # watching now: a change made by another client (no wake) arrives as a watch event
        rv = kube.apply({**cm, "data": {"v": "2"}}, "someone-else")["metadata"]["resourceVersion"]
        wait_for(lambda: (inf.get(namespace, "c") or {}).get("metadata", {}).get("resourceVersion") == rv, 30, 0.1,
                 "another writer's change in the store")
        assert not inf.parked  # something stored: it keeps watching (drift is seen)
        kube.delete(cm)
        wait_for(lambda: inf.get(namespace, "c") is None, 30, 0.1, "the deletion in the store")
        # empty again and nothing written for park_after: it parks at the end of its watch period (3 s)
        wait_for(lambda: inf.parked, 20, 0.1, "parked again once empty")
    finally:
        inf.stop()
        loop.stop()


def test_a_member_cache_parks_tenant_secrets_and_kinds_it_does_not_use_and_wakes_them_on_write(api, namespace):
    writer = Kube(api, user_agent="sovereign-suite-tests-parking")
    # the kinds of this test only (other tests' managed objects elsewhere in the cluster are cluster-wide here)
    cache = ClusterCache(writer, (RBAC, ("v1", "Secret"), ("batch/v1", "CronJob"), ("batch/v1", "Job")),
                         referenceable=False, secrets_by_namespace=True, park=True, park_after=1.0,
                         watches=WatchLoop("test-parking-cache"))
    assert writer.on_write is not None  # the cache hears of the member's writes
    cache.start()
    suite = SuiteKey("t-parking", f"s{uuid.uuid4().hex[:5]}")
    try:
        assert cache.wait_synced(60)
        jobs = next(i for i in cache.informers() if i.kind == "Job")
        # the Secret-reader binding, as a pass writes it: the Secrets of the namespace are then watched
        writer.apply(secret_reader_binding("c-lu", namespace, labelled(suite)), "sovereign-suite-tests")
        wait_for(lambda: any(k.kind == "RoleBinding" for k in cache.children(suite)), 30, 0.1, "binding seen")
        tenant = cache._tenant_secrets[namespace]
        assert tenant.synced.wait(30)
        wait_for(lambda: tenant.parked, 10, 0.1, "no Secret there: its watch parked")
        writer.apply(secret(namespace, suite), "sovereign-suite-tests")
        wait_for(lambda: any(k.kind == "Secret" for k in cache.children(suite)), 30, 0.1, "written Secret seen")
        assert not tenant.parked
        # a CronJob written wakes the Jobs its cluster makes from it (MADE_FROM), not only the CronJobs
        was_parked = jobs.parked
        writer.apply({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {
            "name": "cj", "namespace": namespace, "labels": labelled(suite)},
            "spec": {"schedule": "0 0 1 1 *", "suspend": True, "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}},
            "sovereign-suite-tests")
        wait_for(lambda: any(k.kind == "CronJob" for k in cache.children(suite)), 30, 0.1, "CronJob seen")
        if was_parked:  # (another test's Job labelled for the operator may keep it watching: nothing to see)
            wait_for(lambda: not jobs.parked, 10, 0.1, "the Jobs' watch woken by the CronJob")

        # a Secret written before the binding (its watch does not exist yet): the watch made on the binding's
        # event must not park over it, even if its first list ran before the write landed
        other = f"{namespace}-b"[:63]
        writer.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
        try:
            writer.apply(secret(other, suite), "sovereign-suite-tests")
            writer.apply(secret_reader_binding("c-lu", other, labelled(suite)), "sovereign-suite-tests")
            wait_for(lambda: other in cache._tenant_secrets, 30, 0.1, "the second namespace's Secret watch")
            wait_for(lambda: cache._tenant_secrets[other].get(other, "generated") is not None, 30, 0.1,
                     "the Secret written before the watch existed")
            assert not cache._tenant_secrets[other].parked
        finally:
            writer.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
    finally:
        cache.stop()
        cache.watches.stop()
