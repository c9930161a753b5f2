"""One sharded replica vs two on the same fleet of light members (issue 27).

Issue 27 asks to "measure one replica vs two on the same fleet": a hub, ``--members`` light members and
``--suites`` two-to-four-country suites, the same for both configurations.

    python bench/shard_scale.py [--members 27] [--suites 100] [--probes 20] [--fleet tenancy|light]

The clusters are those of bench/eu_scale.py (a full dev cluster as the hub; each member a light member,
operator/sovereign_suite/devcluster/light_member.py: a kube-apiserver of its own on the hub's etcd under
``/members/<name>``, no controller manager, so children are stored and never roll out). The operator runs with
``--shards 4`` in both configurations (one replica holds the 4 shards; two hold 2 each), drift pass every 15 s.

The fleet (``--fleet``), as eu_scale.py's: ``tenancy`` (the default) is suites whose components are all off, so
each becomes Ready on a light member and passes only on the drift timer and on events, as a converged fleet does;
the change is every tenant's ``quota.pods`` (one ResourceQuota written per tenant); a probe deletes a
NetworkPolicy. ``light`` is the fleet of the 2026-12-03 run (Matrix and Jitsi, one replica each, never rolled out:
every suite passes again every 5 s); the change is Jitsi's web replicas; a probe deletes a ConfigMap.

For each configuration, on the same members and the same suites: every suite changed at once and the time until
every suite's change is applied; each replica's RSS, threads and CPU seconds (peak during the change, and steady
20 s after); pass latency: ``--probes`` times a child deleted in a member and the time until the operator created it
again (eu_scale_probes.probe), p50 and p95. Memory on this machine: each light member's kube-apiserver holds about
290 MiB (27 of them 7.5 GiB, bench/results/eu_scale*.json), the hub about 1 GiB, each replica 150 to 250 MiB; the
replicas of one configuration are stopped before the next starts.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from eu_scale import EU, NodePorts, Sampler, join_members, light_suite, member_kube, tenancy_suite
from eu_scale_probes import PROBED, p95, probe
from lib import Bench, cpu_seconds, log, summary, table, wait_for, write_result

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


def change_all(b: Bench, docs: list[dict], value: int, fleet: str) -> float:
    """Every suite changed (tenancy: every tenant's quota.pods set to ``value``; light: Jitsi's web replicas):
    seconds until every suite applied its new generation."""
    start = time.time()
    for d in docs:
        if fleet == "tenancy":  # a merge patch replaces the list: every tenant as it was, with the new quota
            change = {"tenants": [{**t, "quota": {"pods": value}} for t in d["spec"]["tenants"]]}
        else:
            change = {"components": {"jitsi": {"webReplicas": value}}}
        b.kube.merge_patch(*SUITES, d["metadata"]["name"], d["metadata"]["namespace"], {"spec": change})
    wait_for(lambda: all(b.applied(d) for d in docs), 1800, 1.0, f"change {value} applied")
    return time.time() - start


def run_config(b: Bench, replicas: int, ns: str, docs: list[dict], kubes: dict, value: int, args: argparse.Namespace,
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
        if args.fleet == "tenancy":  # converged: nothing rolls out, every suite Ready
            wait_for(lambda: all(b.ready(d) for d in docs), 900, 2.0, "fleet Ready")
        samplers = [Sampler(o.proc.pid) for o in ops]
        time.sleep(10)
        cpu0 = [cpu_seconds(o.proc.pid) for o in ops]
        out["load_average_before_change"] = Path("/proc/loadavg").read_text().split()[:3]
        out["change_all_s"] = change_all(b, docs, value, args.fleet)
        out["change_cpu_s"] = [round(cpu_seconds(o.proc.pid) - c, 1) for o, c in zip(ops, cpu0)]
        out["change_peak"] = [{"rss_mib": s.rss, "threads": s.threads} for s in samplers]
        log(f"{replicas} replica(s): every suite's change applied in {out['change_all_s']:.1f} s; "
            f"{out['change_peak']}")
        time.sleep(20)
        out["steady"] = [s.now() for s in samplers]
        lat = [probe(kubes, docs, rng, PROBED[args.fleet])[0] for _ in range(args.probes)]
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
    p.add_argument("--members", type=int, default=len(EU), help="how many of the 27 EU members")
    p.add_argument("--suites", type=int, default=100)
    p.add_argument("--probes", type=int, default=20)
    p.add_argument("--fleet", choices=sorted(PROBED), default="tenancy")
    p.add_argument("--result", default="shard_scale", help="bench/results/<this>.json (report.py reads shard_scale)")
    args = p.parse_args()
    countries = EU[:max(2, min(args.members, len(EU)))]
    out: dict = {"members": len(countries), "suites": args.suites, "probes": args.probes, "shards": SHARDS,
                 "fleet": args.fleet, "load_average_start": Path("/proc/loadavg").read_text().split()[:3]}
    with Bench("shard") as b:
        members = {c: LightMember(b.cluster, f"m-{c.lower()}") for c in countries}
        try:
            for m in members.values():
                m.start()
            t0 = time.time()
            for m in members.values():
                m.wait_ready()
            out["members_up_s"] = time.time() - t0
            out["member_apiserver_rss_mib"] = summary([m.rss_mib() for m in members.values()])
            log(f"{len(members)} light members up in {out['members_up_s']:.0f} s, "
                f"{out['member_apiserver_rss_mib']['median']:.0f} MiB each (median)")
            join_members(b, members)
            kubes = {c: member_kube(m) for c, m in members.items()}
            ns = b.namespace("bench")  # a namespace the dev clouds admit (their suiteNamespaces)
            rng = random.Random(27)
            ports = NodePorts()
            docs = []
            for i in range(args.suites):
                cs = rng.sample(countries, min(len(countries), 2 + i % 3))
                docs.append(tenancy_suite(ns, f"s{i:03d}", cs) if args.fleet == "tenancy" else
                            light_suite(ns, f"s{i:03d}", cs, ports.take(cs)))
            for d in docs:
                b.kube.create(d)
            out["tenants"] = sum(len(d["spec"]["tenants"]) for d in docs)
            # the same members and suites for both configurations: the "on the same fleet"
            out["same_fleet"] = True
            out["one"] = run_config(b, 1, ns, docs, kubes, 201 if args.fleet == "tenancy" else 2, args, rng)
            write_result(args.result, out)
            out["two"] = run_config(b, 2, ns, docs, kubes, 202 if args.fleet == "tenancy" else 3, args, rng)
            out["load_average_end"] = Path("/proc/loadavg").read_text().split()[:3]
            write_result(args.result, out)
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
        ["CPU s per replica during the change", " ".join(f"{x:.1f}" for x in one["change_cpu_s"]),
         " ".join(f"{x:.1f}" for x in two["change_cpu_s"])],
        ["threads per replica, peak", " ".join(f"{x['threads']:.0f}" for x in one["peak"]),
         " ".join(f"{x['threads']:.0f}" for x in two["peak"])],
    ]))


if __name__ == "__main__":
    main()
