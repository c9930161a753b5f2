"""Two sharded operator processes (``run --shards 4``, issue 27) on the hub, three light members
(devcluster/light_member.py: a kube-apiserver each on the hub's etcd) and six suites of two countries: each suite
is written by exactly one replica, the holder of its shard's Lease (the audit logs of the hub and the members:
every replica's writes carry its identity in their user agent); a replica SIGKILLed, the other takes its shards
once their Leases expired, converges a change of every suite, and never did a suite get writes from both replicas
in one window: the survivor's first write of a shard's suite came at least a lease duration after the dead
replica's last renewal of that shard's Lease (as the API server received them)."""

from __future__ import annotations

import base64
import datetime as dt
import re
import time
import uuid

import pytest
import yaml

from sovereign_suite.api.secret_refs import MEMBER_CREDENTIALS_LABEL
from sovereign_suite.devcluster.light_member import LightMember, stop_all
from sovereign_suite.leader.lease import LEASE, record_of
from sovereign_suite.reconcile.kube import USER_AGENT
from sovereign_suite.shard.assign import shard_of
from sovereign_suite.shard.coordinator import shard_lease_name

from .conftest import wait_for
from .leader_fixture import Replica, ReplicaAudit, describe, lease_agent, stamp, work_agent
from .operator_fixture import SUITES, WRITE_VERBS, create_referenced_secrets, suite_doc

SHARDS = 4
LEASE_NAME = "sovereign-suite-operator"
LEASE_DURATION = 10.0  # the defaults (leader/timing.py): a SIGKILLed replica's shards are taken 9 to 12.2 s later
COUNTRIES = ("LU", "SE", "AT")
SECRETS_NS = "sovereign-suite-system"  # the operator's namespace outside a cluster: where member Secrets are read
LIGHT = {"matrix": {"elementReplicas": 1}, "jitsi": {"webReplicas": 1}, "docs": {"enabled": False},
         "llm": {"enabled": False}}


class ShardReplica(Replica):
    def __init__(self, cluster, lease_namespace: str, tag: str):
        super().__init__(cluster, lease_namespace, tag)
        self.args = ("--shards", str(SHARDS), "--leader-elect-resource-namespace", lease_namespace)

    def campaigning(self) -> str:
        if not self.identity:
            m = re.search(r"sharded: \d+ shards, replica (\S+) ", self.log_text())
            self.identity = m.group(1) if m else ""
        return self.identity


@pytest.fixture(scope="module")
def members(cluster, kube):
    suffix = uuid.uuid4().hex[:4]
    made = {c: LightMember(cluster, f"sh-{c.lower()}-{suffix}").start() for c in COUNTRIES}
    try:
        for m in made.values():
            m.wait_ready()
        if kube.get("v1", "Namespace", SECRETS_NS) is None:
            kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SECRETS_NS}})
        spec = kube.get("sovereignsuite.io/v1alpha1", "NationalCloud", "fr-secnumcloud")["spec"]
        for c, m in made.items():
            secret = f"{m.name}-kubeconfig"
            kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {
                "name": secret, "namespace": SECRETS_NS, "labels": {MEMBER_CREDENTIALS_LABEL: "true"}},
                "data": {"kubeconfig": base64.b64encode(yaml.safe_dump(m.kubeconfig()).encode()).decode()}},
                "sovereign-suite-tests")
            kube.apply({"apiVersion": "sovereignsuite.io/v1alpha1", "kind": "NationalCloud",
                        "metadata": {"name": m.name},
                        "spec": {**spec, "country": c, "cluster": "member",
                                 "kubeconfigSecretRef": {"name": secret, "namespace": SECRETS_NS}}},
                       "sovereign-suite-tests")
        yield made
    finally:
        for m in made.values():
            kube.delete({"apiVersion": "sovereignsuite.io/v1alpha1", "kind": "NationalCloud",
                         "metadata": {"name": m.name}})
            kube.delete({"apiVersion": "v1", "kind": "Secret",
                         "metadata": {"name": f"{m.name}-kubeconfig", "namespace": SECRETS_NS}})
        stop_all(list(made.values()))


def suite_names(namespace: str) -> list[str]:
    """Six names, every shard holding at least one of them (so both replicas have suites to write)."""
    by_shard: dict[int, list[str]] = {}
    for i in range(200):
        by_shard.setdefault(shard_of(namespace, f"sh{i}", SHARDS), []).append(f"sh{i}")
    assert len(by_shard) == SHARDS
    names = [ns[0] for ns in by_shard.values()]
    rest = sorted(n for ns in by_shard.values() for n in ns[1:])
    return names + rest[:6 - len(names)]


def light_suite(namespace: str, name: str, index: int, clouds: list[tuple[str, str]], web: int = 1) -> dict:
    """``index``: the suite's number, which makes its JVB node ports unique in each member (a port is allocated
    once per cluster)."""
    doc = suite_doc("four-countries", namespace, name)
    doc["spec"]["components"] = {**LIGHT, "jitsi": {"webReplicas": web}}
    doc["spec"]["tenants"] = [{"country": c, "cloud": cloud,
                               "components": {"jitsi": {"jvb": {"nodePort": 30100 + 2 * index + i}}}}
                              for i, (c, cloud) in enumerate(clouds)]
    return doc


def applied(kube, doc: dict) -> bool:
    """The last pass applied every child of the current generation (light members never roll anything out)."""
    s = kube.get(*SUITES, doc["metadata"]["name"], doc["metadata"]["namespace"])
    cond = next((c for c in ((s or {}).get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), None)
    return bool(cond and cond["reason"] in ("Ready", "ComponentsNotReady")
                and s["status"].get("observedGeneration") == s["metadata"]["generation"])


def shard_holders(kube, namespace: str) -> dict[int, str]:
    out = {}
    for s in range(SHARDS):
        lease = kube.get(*LEASE, shard_lease_name(LEASE_NAME, s), namespace)
        out[s] = record_of(lease).holder if lease else ""
    return out


def suite_of(ev: dict, names: set[str]) -> str | None:
    """The suite a write is for: the suite itself (and its status), or its tenant namespaces
    (``<suite>-<country>``) and what is in them (its Events, named by the server, are not told apart)."""
    ref = ev.get("objectRef") or {}
    if ref.get("resource") == "sovereignsuites":
        return ref.get("name")
    where = ref.get("namespace") or (ref.get("name") if ref.get("resource") == "namespaces" else "")
    head = (where or "").rsplit("-", 1)[0]
    return head if head in names else None


def writes_by_suite(events: list[dict], names: set[str]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for e in events:
        if e.get("verb") in WRITE_VERBS and e["userAgent"].startswith(USER_AGENT + "/"):
            suite = suite_of(e, names)
            if suite is not None:
                out.setdefault(suite, []).append(e)
    return out


def writer(ev: dict) -> str:
    return ev["userAgent"].split("/", 1)[1]


def test_two_sharded_replicas_split_the_suites_and_one_takes_over_the_others_after_a_sigkill(
        cluster, kube, core, namespace, members):
    create_referenced_secrets(core, namespace)
    clouds = [(c, m.name) for c, m in members.items()]
    audits = [ReplicaAudit(cluster)] + [ReplicaAudit(m) for m in members.values()]
    marks = [a.mark() for a in audits]
    a, b = ShardReplica(cluster, namespace, "shard-a"), ShardReplica(cluster, namespace, "shard-b")
    started = time.monotonic()
    try:
        a.start()
        wait_for(lambda: a.campaigning() and set(shard_holders(kube, namespace).values()) == {a.identity},
                 timeout=120, what="A alone holds every shard")
        b.start()
        wait_for(b.campaigning, timeout=120, what="B up")
        # B's heartbeat seen, A hands half the shards over (fence closed, Lease released), B takes them
        wait_for(lambda: sorted(shard_holders(kube, namespace).values()).count(b.identity) == SHARDS // 2,
                 timeout=30, interval=0.2, what="the shards split two and two")
        holders = shard_holders(kube, namespace)
        assert sorted(holders.values()) == sorted([a.identity, b.identity] * (SHARDS // 2)), holders
        print(f"replicas up and shards split {time.monotonic() - started:.0f} s after the start")

        names = suite_names(namespace)
        docs = [light_suite(namespace, n, i, [clouds[i % 3], clouds[(i + 1) % 3]]) for i, n in enumerate(names)]
        for d in docs:
            kube.create(d)
        t0 = time.monotonic()
        wait_for(lambda: all(applied(kube, d) for d in docs), timeout=240, interval=1, what="six suites applied")
        print(f"six suites applied in {time.monotonic() - t0:.0f} s")
        time.sleep(3)  # a drift pass (3 s) of each replica: the other's suites stay untouched

        events = [e for au, mk in zip(audits, marks) for e in au.events(mk)]
        by_suite = writes_by_suite(events, set(names))
        for n in names:
            owner = holders[shard_of(namespace, n, SHARDS)]
            writers = {writer(e) for e in by_suite.get(n, [])}
            assert writers == {owner}, (n, owner, sorted(map(describe, by_suite.get(n, []))))
            # the children in the members too, not only the hub's suite and status
            assert any((e.get("objectRef") or {}).get("namespace", "").endswith(("-lu", "-se", "-at"))
                       for e in by_suite[n]), n
        assert {writer(e) for ws in by_suite.values() for e in ws} == {a.identity, b.identity}
        assert b.metric("sovereign_suite_shards_held") == SHARDS // 2 == a.metric("sovereign_suite_shards_held")

        # A SIGKILLed: no release, B takes its shards once their Leases expired, and converges a change
        a_shards = {s for s, h in holders.items() if h == a.identity}
        a.kill()
        killed = time.monotonic()
        wait_for(lambda: set(shard_holders(kube, namespace).values()) == {b.identity}, timeout=LEASE_DURATION + 15,
                 interval=0.1, what="B holds every shard")
        took = time.monotonic() - killed
        print(f"A's shards taken by B {took:.1f} s after the SIGKILL")
        assert took < LEASE_DURATION + 5
        changed = [light_suite(namespace, n, i, [clouds[i % 3], clouds[(i + 1) % 3]], web=2)
                   for i, n in enumerate(names)]
        for d in changed:
            kube.merge_patch(*SUITES, d["metadata"]["name"], namespace, {"spec": {"components": d["spec"]["components"]}})
        wait_for(lambda: all(applied(kube, d) for d in changed), timeout=120, interval=1, what="changes applied")
        for i, n in enumerate(names):
            k = clouds[i % 3][0].lower()
            got = ReplicaAudit(members[clouds[i % 3][0]]).events(0)
            assert any((e.get("objectRef") or {}).get("name") == "jitsi-web"
                       and (e.get("objectRef") or {}).get("namespace") == f"{n}-{k}"
                       and e["userAgent"] == work_agent(b.identity) for e in got), n
        time.sleep(2)  # the audit logs are written asynchronously

        events = [e for au, mk in zip(audits, marks) for e in au.events(mk)]
        by_suite = writes_by_suite(events, set(names))
        lease_writes = [e for e in events if e.get("verb") in WRITE_VERBS
                        and e["userAgent"] == lease_agent(a.identity)]
        for n in names:
            shard = shard_of(namespace, n, SHARDS)
            ws = sorted(by_suite[n], key=stamp)
            mine_b = [e for e in ws if writer(e) == b.identity]
            assert mine_b, f"{n}: B converged the change"
            if shard not in a_shards:
                assert {writer(e) for e in ws} == {b.identity}, n
                continue
            from_a = [e for e in ws if writer(e) == a.identity]
            assert from_a, f"{n}: A wrote it before the SIGKILL"
            # never both in one window: every write of A before every write of B ...
            assert max(map(stamp, from_a)) < min(map(stamp, mine_b)), n
            # ... and B's first a full lease duration after A's last renewal of the shard's Lease
            renewals = [e for e in lease_writes if (e.get("objectRef") or {}).get("name")
                        == shard_lease_name(LEASE_NAME, shard)]
            assert renewals, f"A's renewals of shard {shard}"
            gap = min(map(stamp, mine_b)) - max(map(stamp, renewals))
            assert gap >= dt.timedelta(seconds=LEASE_DURATION), (n, gap)
        assert [e for e in events if e.get("verb") in WRITE_VERBS and e["userAgent"].startswith("kopf/")] == []
    finally:
        for r in (a, b):
            if r.proc is not None and r.proc.poll() is None:
                r.stop()
        for n in suite_names(namespace):
            kube.merge_patch(*SUITES, n, namespace, {"metadata": {"finalizers": []}}) \
                if kube.get(*SUITES, n, namespace) else None
    print(f"test took {time.monotonic() - started:.0f} s")
