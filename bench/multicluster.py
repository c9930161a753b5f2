"""Push mode over member clusters: a hub and one member cluster per country (FR, DE, LU, SE), each joined with
``cloud join``; the operator runs against the hub.

    python bench/multicluster.py [--rounds 3] [--suites 50]

1. Converge: the four-country suite applied by the operator (from the request creating it on the hub to the last
   child written in any member, from the members' audit logs) vs ``kubectl apply --server-side`` of the same
   rendered objects, each tenant's to its own member, the four kubectl runs in parallel. Alternating rounds.
2. Reads per drift pass of the converged suite, per member (gets and lists in each member's audit log while
   three drift passes run; watches are long requests opened once).
3. Operator RSS (sampled every second, peak) while ``--suites`` light four-country suites (one replica per
   component, no Docs, no LLM) are applied across the members, and for 30 s after.
4. Operator RSS (peak) in the 90 s after it is restarted over those suites (every cache lists at once).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time

import yaml
from lib import Bench, audit_time, log, rendered_yaml, rss_mib, suite_doc, summary, table, wait_for, write_result

from kubernetes import config

from sovereign_suite.devcluster.cluster import Cluster
from sovereign_suite.members import join
from sovereign_suite.reconcile.kube import Kube
from tests.cluster.operator_fixture import Audit

CLOUDS = {"FR": "fr-secnumcloud", "DE": "de-c5", "LU": "lu-govcloud", "SE": "se-sovereign"}
READ = {"get", "list"}


class Members:
    def __init__(self) -> None:
        self.clusters = {c: Cluster(f"bench-m{c.lower()}-{os.getpid()}") for c in CLOUDS}

    def __enter__(self) -> "Members":
        try:
            for country, c in self.clusters.items():
                c.up(progress=log, countries=[country])
        except Exception:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        for c in self.clusters.values():
            c.down()


def operator_writes(audits: dict[str, Audit], marks: dict[str, int]) -> list[dict]:
    return [e for c, a in audits.items() for e in a.events(marks[c])
            if e.get("verb") in ("create", "update", "patch", "delete")]


def member_kube(c: Cluster) -> Kube:
    return Kube(config.new_client_from_config(config_file=str(c.kubeconfig)), user_agent="sovereign-suite-bench")


def operator_round(b: Bench, members: Members, audits: dict[str, Audit], ns: str, name: str) -> dict[str, float]:
    doc = suite_doc("four-countries", ns, name, {"deletionPolicy": "Delete"})
    marks = {c: a.mark() for c, a in audits.items()}
    start = time.time()
    b.kube.create(doc)
    wait_for(lambda: b.ready(doc), 900, 0.2, "suite Ready")
    ready = time.time() - start
    writes = operator_writes(audits, marks)
    applied = max(audit_time(e) for e in writes) - start
    b.kube.delete({"apiVersion": "sovereignsuite.io/v1alpha1", "kind": "SovereignSuite", "metadata": doc["metadata"]})
    wait_for(lambda: b.kube.get("sovereignsuite.io/v1alpha1", "SovereignSuite", name, ns) is None, 600, 0.5,
             "suite deleted")
    for country, member in members.clusters.items():
        k = member_kube(member)
        wait_for(lambda: k.get("v1", "Namespace", f"{name}-{country.lower()}") is None, 600, 0.5, "namespace gone")
    return {"applied": applied, "ready": ready, "writes": len(writes)}


def kubectl_round(b: Bench, members: Members, ns: str, name: str) -> dict[str, float]:
    doc = suite_doc("four-countries", ns, name)
    by_country: dict[str, list[str]] = {c: [] for c in CLOUDS}
    for obj in yaml.safe_load_all(rendered_yaml(doc)):
        where = obj["metadata"].get("namespace") or obj["metadata"]["name"]
        by_country[where.rsplit("-", 1)[1].upper()].append(yaml.safe_dump(obj))
    files, procs = [], []
    for country, docs in by_country.items():
        f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        f.write("---\n".join(docs))
        f.close()
        files.append((country, f.name))
    start = time.time()
    for country, path in files:
        procs.append(subprocess.Popen([b.kubectl, "--kubeconfig", str(members.clusters[country].kubeconfig),
                                       "apply", "--server-side", "--field-manager", "kubectl-bench", "-f", path],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError(p.stderr.read().decode()[-2000:])
    applied = time.time() - start
    for country, path in files:  # gone before the next round (JVB's NodePort is cluster-wide)
        os.unlink(path)
        subprocess.run([b.kubectl, "--kubeconfig", str(members.clusters[country].kubeconfig), "delete", "namespace",
                        f"{name}-{country.lower()}", "--timeout=600s"], capture_output=True)
    return {"applied": applied, "objects": sum(len(d) for d in by_country.values())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--suites", type=int, default=50)
    args = p.parse_args()
    with Bench("hub") as b, Members() as members:
        for country, cloud in CLOUDS.items():
            join.join(cloud, str(members.clusters[country].kubeconfig), str(b.cluster.kubeconfig),
                      "sovereign-suite-system")
        audits = {c: Audit(m) for c, m in members.clusters.items()}
        ns = b.namespace("bench")
        op = b.operator(drift_interval=5)
        op.start()
        wait_for(lambda: op.metric("python_info"), 60, 0.5, "operator up")
        results: dict[str, list[dict[str, float]]] = {"operator": [], "kubectl": []}
        for i in range(args.rounds):
            for who in (("operator", "kubectl") if i % 2 == 0 else ("kubectl", "operator")):
                r = operator_round(b, members, audits, ns, f"o{i}") if who == "operator" else \
                    kubectl_round(b, members, ns, f"k{i}")
                results[who].append(r)
                log(f"round {i} {who}: {json.dumps({k: round(v, 2) for k, v in r.items()})}")

        # reads per drift pass of a converged suite, per member
        doc = suite_doc("four-countries", ns, "steady")
        b.kube.create(doc)
        wait_for(lambda: b.ready(doc), 900, 0.5, "steady suite Ready")
        time.sleep(6)
        before = op.metric("sovereign_suite_reconcile_total", trigger="timer")
        marks = {c: a.mark() for c, a in audits.items()}
        wait_for(lambda: op.metric("sovereign_suite_reconcile_total", trigger="timer") >= before + 3, 120, 0.5,
                 "three drift passes")
        reads = {c: sum(1 for e in a.events(marks[c]) if e.get("verb") in READ) / 3 for c, a in audits.items()}

        # RSS while --suites suites converge across the four members
        peak, stop = [0.0], threading.Event()

        def sample() -> None:
            while not stop.wait(1.0):
                peak[0] = max(peak[0], rss_mib(op.proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # as bench/many.py: light suites (Matrix and Jitsi with one replica each, no Docs, no LLM), so that 50
        # four-country suites fit the simulated clouds' CPUs; one JVB NodePort per tenant (cluster-wide ports)
        docs = [suite_doc("four-countries", ns, f"m{i:03d}") for i in range(args.suites)]
        for i, d in enumerate(docs):
            d["spec"]["components"] = {"matrix": {"elementReplicas": 1}, "jitsi": {"webReplicas": 1},
                                       "docs": {"enabled": False}, "llm": {"enabled": False}}
            for j, t in enumerate(d["spec"]["tenants"]):
                t.pop("components", None)
                t["components"] = {"jitsi": {"jvb": {"nodePort": 31000 + 4 * i + j}}}
        start = time.time()
        for d in docs:
            b.kube.create(d)
        # every child applied: each suite's pass ran to its end (Ready, or waiting only for its pods). Not all
        # can become Ready: 50 tenants' pods need more CPU than Luxembourg's and Sweden's simulated clouds have
        # (two 32-CPU nodes each), and the scheduler says so (the suites report Unschedulable)
        wait_for(lambda: all(b.applied(d) for d in docs), 1800, 2.0, f"{args.suites} suites applied")
        many_applied = time.time() - start
        time.sleep(30)  # the passes following the rollout (status), sampled too
        many_ready = sum(1 for d in docs if b.ready(d))
        stop.set()
        sampler.join()
        op.stop()

        # 4. the same operator restarted over them: its caches list everything at once, then every suite passes
        op.start()
        restart_peak = 0.0
        t0 = time.time()
        while time.time() - t0 < 90:
            time.sleep(1.0)
            restart_peak = max(restart_peak, rss_mib(op.proc.pid))
        restart_passes = op.metric("sovereign_suite_reconcile_total")
        op.stop()
    out = {"rounds": args.rounds, "suites": args.suites, "members": len(CLOUDS)}
    o, k = summary([r["applied"] for r in results["operator"]]), summary([r["applied"] for r in results["kubectl"]])
    out["applied"] = {"operator": o, "kubectl_parallel": k, "ratio_operator_over_kubectl": o["median"] / k["median"]}
    out["operator_ready"] = summary([r["ready"] for r in results["operator"]])
    out["objects_rendered"] = results["kubectl"][0]["objects"]
    out["reads_per_drift_pass_per_member"] = reads
    out["rss_mib_peak"] = peak[0]
    out["rss_mib_peak_restart_90s"] = restart_peak
    out["passes_in_90s_after_restart"] = restart_passes
    out["many_suites_applied_s"] = many_applied
    out["many_suites_ready_at_end"] = many_ready
    print(table([
        ["measure", "operator", "kubectl (4 in parallel)", "target"],
        ["four-country suite applied (s, median)", f"{o['median']:.2f} ({o['min']:.2f}-{o['max']:.2f})",
         f"{k['median']:.2f} ({k['min']:.2f}-{k['max']:.2f})", "ratio <= 1.0"],
        ["reads per drift pass, per member", ", ".join(f"{c} {v:.2f}" for c, v in reads.items()), "", "<= 2"],
        [f"RSS peak, {args.suites} suites, 4 members (MiB)", f"{peak[0]:.0f}", "", "<= 150"],
        ["RSS peak, 90 s after a restart over them (MiB)", f"{restart_peak:.0f}", "", "<= 150"],
        [f"{args.suites} suites applied (s); Ready at the end", f"{many_applied:.0f}; {many_ready}", "", ""],
    ]))
    print(f"wrote {write_result('multicluster', out)}")


if __name__ == "__main__":
    main()
