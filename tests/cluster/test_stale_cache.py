"""The pipeline when its watch cache is behind the cluster, in-process against the real API server (issue 22,
item 13): a namespace ownership decided from a cache that does not know the namespace yet, a deletion on a cache
that never listed, the watches of a tenant namespace that is gone (namespace-scoped mode), and a take-over patch
whose resourceVersion test fails because another writer changed the object meanwhile (a real write, sent right
after each read of the object)."""

from __future__ import annotations

import uuid

import pytest

from sovereign_suite.devcluster.cluster import dev_clouds
from sovereign_suite.reconcile.cache import ClusterCache
from sovereign_suite.reconcile.context import OperatorContext, Settings
from sovereign_suite.reconcile.converge import ANN_OWNER, takeover_patch
from sovereign_suite.reconcile.apply import Applier
from sovereign_suite.reconcile.cache import strip_child
from sovereign_suite.reconcile.converge import stamp
from sovereign_suite.reconcile.kube import ApiError, Kube
from sovereign_suite.reconcile.problems import ObjectKey, Severity, SuiteKey
from sovereign_suite.reconcile.targets import LOCAL, Target
from sovereign_suite.reconcile.cleanup import cleanup
from sovereign_suite.reconcile.pipeline import CHILD_KINDS, reconcile
from sovereign_suite.reconcile.problems import from_api_error

from .conftest import wait_for
from .operator_fixture import create_referenced_secrets, suite_doc

NO_NODEPORTS = {"components": {"docs": {"enabled": False}, "jitsi": {"enabled": False}}}


def context(kube) -> OperatorContext:
    """An operator context whose cache is not started: it knows no namespace and no child (a cache behind)."""
    ctx = OperatorContext(kube, Settings(namespaces=()))
    for cloud in dev_clouds().values():  # as the dev cluster holds them: they admit the tests' namespaces
        ctx.clouds.set(cloud.name, cloud)
    return ctx


def suite_body(namespace: str, patch: dict) -> dict:
    body = suite_doc("two-countries", namespace, patch=patch)
    body["spec"]["tenants"] = [{"country": "FR", "cloud": "fr-secnumcloud"}]
    body["metadata"].update(uid=str(uuid.uuid4()), generation=1)
    return body


def test_a_namespace_a_platform_team_made_is_never_stamped_from_a_stale_cache(kube, core, namespace):
    create_referenced_secrets(core, namespace)
    body = suite_body(namespace, NO_NODEPORTS)
    name = body["metadata"]["name"]
    fr = f"{name}-fr"
    core.create_namespace({"metadata": {"name": fr, "labels": {"sovereignsuite.io/suite": name,
                                                               "sovereignsuite.io/suite-namespace": namespace}}})
    ctx = context(kube)
    try:
        reconcile(ctx, body)  # the cache never saw the namespace: the create finds it (409)
        ns = kube.get("v1", "Namespace", fr)
        assert ANN_OWNER not in (ns["metadata"].get("annotations") or {})  # adopted, never deletable by the suite
        assert ns["metadata"]["labels"].get("sovereignsuite.io/country") == "fr"  # and applied
    finally:
        ctx.shutdown()
        core.delete_namespace(fr)


def test_a_deletion_waits_for_a_cache_that_never_listed(kube, core, namespace):
    create_referenced_secrets(core, namespace)
    body = suite_body(namespace, {"deletionPolicy": "Delete", **NO_NODEPORTS})
    fr = f"{body['metadata']['name']}-fr"
    writer = context(kube)
    try:
        writer.cache.start()
        assert writer.cache.wait_synced(60)
        reconcile(writer, body)
        assert kube.get("v1", "ConfigMap", "synapse", fr) is not None
    finally:
        writer.shutdown()
    ctx = context(kube)  # a restarted operator whose watches have not listed yet
    try:
        result = cleanup(ctx, body)
        assert not result.complete  # the finalizer stays
        assert [p.reason for p in result.problems] == ["WatchFailed"]
        assert "not listed yet" in result.problems[0].message
        assert kube.get("v1", "ConfigMap", "synapse", fr) is not None
        ctx.cache.start()
        assert ctx.cache.wait_synced(60)
        wait_for(lambda: cleanup(ctx, body).complete, timeout=60, what="the cleanup once the cache listed")
        assert kube.get("v1", "ConfigMap", "synapse", fr) is None
    finally:
        ctx.shutdown()
        if kube.get("v1", "Namespace", fr) is not None:
            core.delete_namespace(fr)


def test_the_watches_of_a_tenant_namespace_stop_when_it_goes(kube, core, namespace):
    """Namespace-scoped mode (`run -n`): one watch per child kind and tenant namespace."""
    cache = ClusterCache(kube, CHILD_KINDS, namespaces=(namespace,), referenceable=False).start()
    tenant = f"t{uuid.uuid4().hex[:6]}-fr"
    try:
        core.create_namespace({"metadata": {"name": tenant, "labels": {
            "sovereignsuite.io/suite": "t", "sovereignsuite.io/suite-namespace": namespace}}})

        def watches():
            return [i for i in cache.informers() if i.namespace == tenant]

        started = wait_for(lambda: len(watches()) == len(cache.child_kinds) + 1 and watches(), timeout=30,
                           what="the tenant namespace's watches")
        core.delete_namespace(tenant)
        wait_for(lambda: not watches(), timeout=120, what="the watches of the deleted namespace forgotten")
        for inf in started:
            wait_for(lambda inf=inf: inf.done.is_set(), timeout=60, what=f"{inf!r} stopped")
    finally:
        cache.stop()


def test_a_stale_take_over_patch_is_a_conflict_not_an_invalid_child(kube, namespace):
    """The API server answers a failed JSON-patch test with 422; it means "changed meanwhile"."""
    from sovereign_suite.reconcile.apply import stale_patch  # here: the other tests of this file run on old code

    cm = kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": namespace},
                      "data": {"a": "1"}})
    kube.merge_patch("v1", "ConfigMap", "c", namespace, {"data": {"b": "2"}})  # changed after it was read
    rendered = {"f:data": {"f:a": {}}}
    patch = takeover_patch(cm, rendered)
    assert patch is not None  # the key the operator renders is handed over
    with pytest.raises(ApiError) as err:
        kube.json_patch("v1", "ConfigMap", "c", namespace, patch)
    assert err.value.status == 422 and stale_patch(err.value)
    assert from_api_error(err.value, None).reason == "InvalidChild"  # what a pass reported before: Stalled
    fresh = kube.get("v1", "ConfigMap", "c", namespace)
    kube.json_patch("v1", "ConfigMap", "c", namespace, takeover_patch(fresh, rendered))  # read again, it passes


class ChangedAfterEachRead(Kube):
    """The operator's client, and another writer that changes the object right after each of the operator's
    reads (``times`` reads): a real concurrent write between the take-over's read and its patch."""

    def __init__(self, kube: Kube, times: int):
        super().__init__(kube.api, user_agent="sovereign-suite-operator")
        self.other, self.times = kube, times

    def get(self, api_version, kind, name, namespace=None):
        obj = super().get(api_version, kind, name, namespace)
        if self.times > 0:
            self.times -= 1
            self.other.merge_patch(api_version, kind, name, namespace,
                                   {"metadata": {"annotations": {"other-writer": str(self.times)}}})
        return obj


@pytest.mark.parametrize("changes", [1, 3])
def test_a_take_over_raced_by_another_writer_is_retried_then_a_conflict(kube, namespace, changes):
    cm = stamp({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": namespace},
                "data": {"a": "rendered"}}, "uid")
    key = ObjectKey.of(cm)
    ctx = context(kube)
    target = Target(LOCAL, kube, ctx.cache, ctx.local.pools)
    try:
        first = Applier(ctx, target, SuiteKey(namespace, "s"), {}).apply_one(cm)
        assert first.problem is None
        kube.merge_patch("v1", "ConfigMap", "c", namespace, {"data": {"a": "by hand"}})  # a rendered key rewritten
        live = {key: strip_child(kube.get("v1", "ConfigMap", "c", namespace))}
        raced = Target(LOCAL, ChangedAfterEachRead(kube, changes), ctx.cache, ctx.local.pools)
        out = Applier(ctx, raced, SuiteKey(namespace, "s"), live).apply_one(cm)
        if changes < 3:  # read again after the failed test, then handed over and applied
            assert out.problem is None
            assert kube.get("v1", "ConfigMap", "c", namespace)["data"]["a"] == "rendered"
        else:  # still changing: a conflict, retried with the suite's backoff, never "the child is invalid"
            assert out.problem is not None
            assert (out.problem.severity, out.problem.reason) == (Severity.DEGRADED, "Conflict"), out.problem
    finally:
        ctx.shutdown()
