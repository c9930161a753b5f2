"""Multiplexed watches (issue 27): the operator's thread count does not grow as member clusters are added, and their
watches still bring every change. In-process, an ``OperatorContext`` on the session's cluster (the hub) and four
light members (devcluster/light_member.py: a kube-apiserver each on the hub's etcd under a prefix of its own),
reached through their kubeconfig Secrets on the hub as the operator reaches any member (``Members.target``)."""

from __future__ import annotations

import base64
import threading
import uuid

import pytest
import yaml

from sovereign_suite.api.secret_refs import MEMBER_CREDENTIALS_LABEL
from sovereign_suite.api.validation import parse_cloud
from sovereign_suite.devcluster.light_member import LightMember, stop_all
from sovereign_suite.reconcile.context import OperatorContext, Settings
from sovereign_suite.reconcile.problems import SuiteKey
from sovereign_suite.reconcile.targets import Target

from .conftest import wait_for

COUNTRIES = ("LU", "SE", "AT", "BE")


@pytest.fixture(scope="module")
def light_members(cluster):
    suffix = uuid.uuid4().hex[:5]
    made = [LightMember(cluster, f"lm-{c.lower()}-{suffix}").start() for c in COUNTRIES]
    try:
        for m in made:
            m.wait_ready()
        yield made
    finally:
        stop_all(made)


def join(ctx: OperatorContext, kube, member: LightMember, country: str) -> Target:
    """The member's kubeconfig Secret on the hub (as `cloud join` writes it) and its NationalCloud; the target the
    operator builds for it (its cache started)."""
    ns = ctx.settings.member_secrets
    if kube.get("v1", "Namespace", ns) is None:
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    secret = f"{member.name}-kubeconfig"
    kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": secret, "namespace": ns, "labels": {MEMBER_CREDENTIALS_LABEL: "true"}},
        "data": {"kubeconfig": base64.b64encode(yaml.safe_dump(member.kubeconfig()).encode()).decode()}},
        "sovereign-suite-tests")
    cloud = parse_cloud({"apiVersion": "sovereignsuite.io/v1alpha1", "kind": "NationalCloud",
                         "metadata": {"name": member.name},
                         "spec": {"country": country, "provider": "light", "regions": ["r1"], "cluster": "member",
                                  "kubeconfigSecretRef": {"name": secret, "namespace": ns}}})
    target = ctx.members.target(cloud)
    assert isinstance(target, Target), target
    return target


def test_the_thread_count_stays_fixed_as_members_are_added_and_their_watches_bring_every_change(
        cluster, kube, light_members):
    ctx = OperatorContext(kube, Settings(namespaces=()))
    ctx.cache.start()
    try:
        assert ctx.cache.wait_synced(60)
        before = threading.active_count()
        targets = [join(ctx, kube, light_members[0], COUNTRIES[0])]
        assert targets[0].cache.wait_synced(60)
        one = threading.active_count()
        for member, country in zip(light_members[1:], COUNTRIES[1:]):
            targets.append(join(ctx, kube, member, country))
        for t in targets:
            assert t.cache.wait_synced(60), f"{t} listed"
        four = threading.active_count()
        watches = sum(len(t.cache.informers()) for t in targets)
        assert watches >= 4 * 15  # a watch per child kind and member, each on a connection of its own
        # with a thread per watch, four members added about 20 threads each; now only the list pool's threads,
        # started as lists need them, up to its size
        assert four - before <= ctx.watches.lists.threads, (before, one, four, watches)
        assert four - one <= ctx.watches.lists.threads - 1

        # every member's watches still bring creations, changes and deletions, to the cache and as suite events
        seen: list[tuple[SuiteKey, str]] = []
        for t in targets:
            t.cache.on_suite_change = lambda key, what: seen.append((key, what))
        suite = SuiteKey("t-multiplexed", f"s{uuid.uuid4().hex[:5]}")
        labels = {"sovereignsuite.io/suite": suite.name, "sovereignsuite.io/suite-namespace": suite.namespace,
                  "app.kubernetes.io/managed-by": "sovereign-suite-operator"}
        for t in targets:
            ns = f"{suite.name}-{t.name}"[:63]
            t.kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}})
            t.kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
                "name": "probe", "namespace": ns, "labels": labels}, "data": {"v": "1"}}, "sovereign-suite-tests")
        for t in targets:
            wait_for(lambda t=t: any(k.kind == "ConfigMap" for k in t.cache.children(suite)), 30, 0.2,
                     f"{t.name}: the ConfigMap in the cache")
        for t in targets:
            ns = f"{suite.name}-{t.name}"[:63]
            rv = t.kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
                "name": "probe", "namespace": ns, "labels": labels}, "data": {"v": "2"}},
                "sovereign-suite-tests")["metadata"]["resourceVersion"]
            wait_for(lambda t=t, rv=rv: any(o["metadata"].get("resourceVersion") == rv
                                            for k, o in t.cache.children(suite).items() if k.kind == "ConfigMap"),
                     30, 0.2, f"{t.name}: the change in the cache")
            t.kube.delete({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe", "namespace": ns}})
            wait_for(lambda t=t: not any(k.kind == "ConfigMap" for k in t.cache.children(suite)), 30, 0.2,
                     f"{t.name}: the deletion in the cache")
        assert {what.split()[0] for key, what in seen if key == suite} >= {"ADDED", "MODIFIED", "DELETED"}
        assert threading.active_count() <= four  # and the events added no thread
    finally:
        ctx.shutdown()
        ns = ctx.settings.member_secrets
        for m in light_members:
            kube.delete({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{m.name}-kubeconfig",
                                                                         "namespace": ns}})
