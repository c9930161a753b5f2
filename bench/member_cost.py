"""What one empty member cluster costs the operator: memory and threads of a process holding an ``OperatorContext``
on a hub, before and after the targets of N light members (devcluster/light_member.py) are built and their
caches have listed and are watching. No suite: the member's own cost (its client, its ~20 watches and their
connections, its cache of Nodes and Namespaces, its share of nothing else).

    MALLOC_ARENA_MAX=2 python bench/member_cost.py [--members 27] [--tenants 0] [--settle 20] [--result NAME]

``--tenants N``: then N tenant namespaces per member, each as a tenancy-only pass leaves it for the member cache
(the Namespace labelled for its suite, the operator's Secret-reader RoleBinding, a NetworkPolicy; written with the
member's own client, as a pass writes), and the RSS again once their Secret watches have listed: what a tenant
costs in a member's cache. ``--settle``: seconds before each reading.

(``sovereign-suite run`` caps malloc arenas at 2 itself; this script runs the context in its own process, so the
variable is set by hand, as in the operator.)
"""

from __future__ import annotations

import argparse
import base64
import gc
import os
import time

import yaml
from eu_scale import EU, SECRETS_NS, proc_status
from lib import Bench, log, write_result

from sovereign_suite.api.secret_refs import MEMBER_CREDENTIALS_LABEL
from sovereign_suite.api.validation import parse_cloud
from sovereign_suite.components.base import LABEL_SUITE, LABEL_SUITE_NS, MANAGED_BY
from sovereign_suite.devcluster.light_member import LightMember, stop_all
from sovereign_suite.members.rbac import secret_reader_binding
from sovereign_suite.reconcile.context import OperatorContext, Settings
from sovereign_suite.reconcile.targets import Target


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=27)
    p.add_argument("--tenants", type=int, default=0, help="tenant namespaces per member, after the empty members")
    p.add_argument("--settle", type=float, default=20.0)
    p.add_argument("--result", default="member_cost")
    args = p.parse_args()
    countries = EU[:args.members]
    out: dict = {"members": len(countries)}
    with Bench("members") as b:
        members = [LightMember(b.cluster, f"c-{c.lower()}").start() for c in countries]
        try:
            for m in members:
                m.wait_ready()
            log(f"{len(members)} light members up")
            b.kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SECRETS_NS}}, "bench")
            ctx = OperatorContext(b.kube, Settings(namespaces=()))
            ctx.cache.start()
            assert ctx.cache.wait_synced(60)
            time.sleep(5)
            gc.collect()
            before = proc_status(os.getpid())
            targets = []
            for c, m in zip(countries, members):
                secret = f"c-{c.lower()}-kubeconfig"
                b.kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {
                    "name": secret, "namespace": SECRETS_NS, "labels": {MEMBER_CREDENTIALS_LABEL: "true"}},
                    "data": {"kubeconfig": base64.b64encode(yaml.safe_dump(m.kubeconfig()).encode()).decode()}},
                    "bench")
                cloud = parse_cloud({"apiVersion": "sovereignsuite.io/v1alpha1", "kind": "NationalCloud",
                                     "metadata": {"name": f"c-{c.lower()}"},
                                     "spec": {"country": c, "provider": "light", "regions": ["r1"],
                                              "cluster": "member",
                                              "kubeconfigSecretRef": {"name": secret, "namespace": SECRETS_NS}}})
                t = ctx.members.target(cloud)
                assert isinstance(t, Target), t
                targets.append(t)
            for t in targets:
                assert t.cache.wait_synced(120), t
            time.sleep(args.settle)  # the watches opened, a few events, the allocator settled
            gc.collect()
            after = proc_status(os.getpid())
            out["watches"] = sum(len(t.cache.informers()) for t in targets)
            out["parked"] = sum(bool(getattr(i, "parked", False)) for t in targets for i in t.cache.informers())
            out["before"] = {"rss_mib": before["VmRSS"] / 1024, "threads": before["Threads"]}
            out["after"] = {"rss_mib": after["VmRSS"] / 1024, "threads": after["Threads"]}
            out["rss_mib_per_member"] = (after["VmRSS"] - before["VmRSS"]) / 1024 / len(countries)
            out["threads_added"] = after["Threads"] - before["Threads"]
            if args.tenants:
                out["tenants"] = tenants(targets, args.tenants, args.settle, after)
            ctx.shutdown()
        finally:
            stop_all(members)
    print(out)
    print(f"wrote {write_result(args.result, out)}")


def tenants(targets: list[Target], n: int, settle: float, empty: dict) -> dict:
    """``n`` tenancy-only tenants in each member, written with the member's client; the RSS they add."""
    for t in targets:
        for i in range(n):
            ns = f"bench-{t.name}-{i}"
            labels = {LABEL_SUITE: f"s{i}", LABEL_SUITE_NS: "bench", "app.kubernetes.io/managed-by": MANAGED_BY}
            t.kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}},
                         "bench")
            t.kube.apply(secret_reader_binding(t.name, ns, labels), "bench")
            t.kube.apply({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {
                "name": "deny", "namespace": ns, "labels": labels}, "spec": {"podSelector": {}}}, "bench")
    deadline = time.monotonic() + 300
    for t in targets:
        while time.monotonic() < deadline and not (
                len(t.cache._tenant_secrets) >= n and all(i.synced.is_set() for i in t.cache._tenant_secrets.values())):
            time.sleep(0.5)
    time.sleep(settle)
    gc.collect()
    after = proc_status(os.getpid())
    informers = [i for t in targets for i in t.cache.informers()]
    return {"per_member": n, "watches": len(informers), "parked": sum(bool(getattr(i, "parked", False))
                                                                      for i in informers),
            "rss_mib": after["VmRSS"] / 1024, "threads": after["Threads"],
            "rss_mib_per_tenant": (after["VmRSS"] - empty["VmRSS"]) / 1024 / (n * len(targets))}


if __name__ == "__main__":
    main()
