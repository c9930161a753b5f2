"""One sharded replica vs two on the same fleet (issue 27): a hub, ``--members`` light members and ``--suites``
two-to-three-country suites.

    python bench/shard_scale.py [--members 9] [--suites 30] [--probes 20]

The clusters are those of bench/eu_scale.py (a full dev cluster as the hub; each member a light member: a
kube-apiserver on the hub's etcd, no controller manager, so children are stored and never roll out, and every
suite passes again every 5 s, SOVEREIGN_SUITE_REQUEUE). The operator runs with ``--shards 4`` in both
configurations (one replica holds the 4 shards; two hold 2 each), drift pass every 15 s.

For each configuration, on the same members and the same suites: every suite changed at once (Jitsi's web
replicas) and the time until every suite's change is applied; each replica's RSS and threads (peak during the
change, and steady 20 s after); pass latency: ``--probes`` times a child ConfigMap deleted in a member and the
time until the operator created it again (eu_scale.probe), p50 and p95.
"""

from __future__ import annotations

import argparse
import random
import time

from eu_scale import EU, NodePorts, Sampler, join_members, light_suite, member_kube, p95, probe
from lib import Bench, log, summary, table, wait_for, write_result

from sovereign_suite.devcluster.light_member import LightMember, stop_all
from sovereign_suite.shard.coordinator import shard_lease_name
from sovereign_suite.leader.lease import LEASE, record_of
from tests.cluster.operator_fixture import SUITES, OperatorProcess

SHARDS = 4


def holders(b: Bench, ns: str) -> list[str]:
    out = []
    for s in range(SHARDS):
        lease = b.kube.get(*LEASE, shard_lease_name("sovereign-suite-operator", s), ns)
        out.append(record_of(lease).holder if lease else "")
    return out


def change_all(b: Bench, docs: list[dict], web: int) -> float:
    """Every suite's Jitsi web replicas set to ``web``: seconds until every suite applied its new generation."""
    start = time.time()
    for d in docs:
        b.kube.merge_patch(*SUITES, d["metadata"]["name"], d["metadata"]["namespace"],
                           {"spec": {"components": {"jitsi": {"webReplicas": web}}}})
    wait_for(lambda: all(b.applied(d) for d in docs), 1800, 1.0, f"web replicas {web} applied")
    return time.time() - start


def run_config(b: Bench, replicas: int, ns: str, docs: list[dict], kubes: dict, web: int, probes: int,
               rng: random.Random) -> dict:
    ops = [OperatorProcess(b.cluster, drift_interval=15, tag=f"shard{replicas}-{i}",
                           args=("--shards", str(SHARDS), "--leader-elect-resource-namespace", ns))
           for i in range(replicas)]
    out: dict = {"replicas": replicas}
    try:
        for op in ops:
            op.start()
            wait_for(lambda op=op: op.metric("sovereign_suite_shards_held") > 0 or
                     (op is not ops[0] and op.metric("python_info")), 120, 0.5, "replica up")
        wait_for(lambda: all(o.metric("sovereign_suite_shards_held") == SHARDS // replicas for o in ops),
                 120, 0.5, "shards split")
        out["holders"] = holders(b, ns)
        wait_for(lambda: all(b.applied(d) for d in docs), 1800, 2.0, "fleet applied")
        samplers = [Sampler(o.proc.pid) for o in ops]
        time.sleep(10)
        out["change_all_s"] = change_all(b, docs, web)
        out["change_peak"] = [{"rss_mib": s.rss, "threads": s.threads} for s in samplers]
        log(f"{replicas} replica(s): every suite's change applied in {out['change_all_s']:.1f} s; "
            f"{out['change_peak']}")
        time.sleep(20)
        out["steady"] = [s.now() for s in samplers]
        lat = [probe(kubes, docs, rng) for _ in range(probes)]
        out["pass_latency"] = {"p95": p95(lat), **summary(lat), "runs": lat}
        log(f"{replicas} replica(s): pass latency p50 {out['pass_latency']['median']:.2f} s, "
            f"p95 {out['pass_latency']['p95']:.2f} s")
        out["peak"] = [{"rss_mib": s.rss, "threads": s.threads} for s in samplers]
        for s in samplers:
            s.stop.set()
    finally:
        for op in ops:
            if op.proc is not None and op.proc.poll() is None:
                op.stop()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=9)
    p.add_argument("--suites", type=int, default=30)
    p.add_argument("--probes", type=int, default=20)
    args = p.parse_args()
    countries = EU[:args.members]
    out: dict = {"members": args.members, "suites": args.suites, "probes": args.probes, "shards": SHARDS}
    with Bench("shard") as b:
        members = {c: LightMember(b.cluster, f"m-{c.lower()}") for c in countries}
        try:
            for m in members.values():
                m.start()
            for m in members.values():
                m.wait_ready()
            join_members(b, members)
            kubes = {c: member_kube(m) for c, m in members.items()}
            ns = b.namespace("bench")  # a namespace the dev clouds admit (their suiteNamespaces)
            rng = random.Random(27)
            ports = NodePorts()
            docs = []
            for i in range(args.suites):
                cs = rng.sample(countries, 2 + i % 2)
                docs.append(light_suite(ns, f"s{i:03d}", cs, ports.take(cs)))
            for d in docs:
                b.kube.create(d)
            out["tenants"] = sum(len(d["spec"]["tenants"]) for d in docs)
            out["one"] = run_config(b, 1, ns, docs, kubes, 2, args.probes, rng)
            write_result("shard_scale", out)
            out["two"] = run_config(b, 2, ns, docs, kubes, 3, args.probes, rng)
            write_result("shard_scale", out)
        finally:
            stop_all(list(members.values()))
    one, two = out["one"], out["two"]
    print(table([
        ["measure", "1 replica", "2 replicas"],
        ["every suite changed: all applied (s)", f"{one['change_all_s']:.1f}", f"{two['change_all_s']:.1f}"],
        ["pass latency p50 / p95 (s)", f"{one['pass_latency']['median']:.2f} / {one['pass_latency']['p95']:.2f}",
         f"{two['pass_latency']['median']:.2f} / {two['pass_latency']['p95']:.2f}"],
        ["RSS per replica, peak (MiB)", " ".join(f"{x['rss_mib']:.0f}" for x in one["peak"]),
         " ".join(f"{x['rss_mib']:.0f}" for x in two["peak"])],
        ["RSS per replica, steady (MiB)", " ".join(f"{x['rss_mib']:.0f}" for x in one["steady"]),
         " ".join(f"{x['rss_mib']:.0f}" for x in two["steady"])],
        ["threads per replica, peak", " ".join(f"{x['threads']:.0f}" for x in one["peak"]),
         " ".join(f"{x['threads']:.0f}" for x in two["peak"])],
    ]))


if __name__ == "__main__":
    main()
