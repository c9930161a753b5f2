"""Europe-wide push mode: a hub and 27 member clusters (one per EU member state), with N two-to-four-country suites.

    python bench/eu_scale.py [--members 27] [--suites 100] [--rounds 2] [--probes 40] [--fleet tenancy|light]

What each cluster is: the hub is a full development cluster (kwokctl: etcd, kube-apiserver, controller manager,
scheduler, kwok). Each member is a light member (operator/sovereign_suite/devcluster/light_member.py): one
kube-apiserver of its own, its objects in the hub's etcd under ``/members/<name>``, with no controller manager,
scheduler or kwok: children are stored (what is measured here is the operator applying them and watching them),
never rolled out, so no suite becomes Ready and none is waited for. The hub reaches each member with the hub's
admin certificate, written as the member's kubeconfig Secret (no ``cloud join``: it needs the member's token
controller). The operator runs on the hub, drift pass every 15 s.

Measured in one run:
1. operator threads and RSS (sampled every second, peaks; and per stage);
2. a new 27-country suite: from the request creating it on the hub to the last child written in any member (the
   members' audit logs) vs 27 ``kubectl apply --server-side`` in parallel, one per member, of the same rendered
   objects; alternating rounds, a new suite each round (light members cannot delete namespaces);
3. ``--suites`` light suites of 2 to 4 countries spread over the 27 members, all applied;
4. reads per drift pass of the converged fleet, per member (gets and lists of objects in each member's audit log
   while every suite passes three times on the timer), and apart the discovery requests (``/apis/<group>/<version>``:
   the watches of kinds a light member does not serve look for them on a backoff of their own), per member per
   minute from then to the end of the run (bench/audit_reads.py);
5. pass latency per member: a child deleted in a member, the time until the operator has created it again
   (event, pass, apply), ``--probes`` times over the 26 members other than Malta's, without a fault, then with
   Malta's kube-apiserver stopped (SIGSTOP); p95 of each.

The fleet of stage 3 (``--fleet``): ``tenancy`` (the default) is suites whose tenants have every component off
(``enabled: false``): each tenant is its namespace, network policies, quotas, limit range and role binding, no
workload, so each suite becomes Ready on a light member and then passes only on the drift timer and on events, as
a converged fleet does; a probe deletes one of a tenant's NetworkPolicies. ``light`` is the earlier fleet (Matrix
and Jitsi with one replica each): its workloads never roll out on a light member, so every suite passes again
every 5 s (``SOVEREIGN_SUITE_REQUEUE``) and the latency measures that queue; a probe deletes a ConfigMap. The
27-country suites of stage 2 are ``light`` ones (they measure applies); they are deleted (``deletionPolicy:
Retain``: their children stay in the members, unwatched by any suite) before stage 3, so that they do not pass
every 5 s during it. ``--members N`` runs N of the 27 (Malta's always among them), to try the script smaller.
"""

from __future__ import annotations

import argparse
import base64
import random
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import yaml
from audit_reads import discovery, discovery_summary, object_reads
from eu_scale_probes import HUNG, PROBED, pass_latency, passes
from lib import SUITES, Bench, audit_time, log, summary, table, wait_for, write_result

from sovereign_suite.api.secret_refs import MEMBER_CREDENTIALS_LABEL
from sovereign_suite.devcluster.light_member import LightMember, stop_all
from sovereign_suite.reconcile.kube import Kube
from tests.cluster.operator_fixture import Audit, suite_doc

EU = "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split()
READ = {"get", "list"}
WRITE = {"create", "update", "patch", "delete"}
SECRETS_NS = "sovereign-suite-system"
LIGHT = {"matrix": {"elementReplicas": 1}, "jitsi": {"webReplicas": 1}, "docs": {"enabled": False},
         "llm": {"enabled": False}}
# every component off: a tenant is its tenancy (namespace, policies, quotas, role binding), nothing rolls out
TENANCY = {c: {"enabled": False} for c in ("matrix", "jitsi", "docs", "llm")}


def cloud_name(country: str) -> str:
    return f"eu-{country.lower()}"


def proc_status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM", "Threads"):
            out[k] = int(v.split()[0])
    return out


class Sampler:
    """The operator's RSS and thread count every second; the peaks since the last ``reset``."""

    def __init__(self, pid: int):
        self.pid, self.stop = pid, threading.Event()
        self.rss = self.threads = 0.0
        threading.Thread(target=self._run, daemon=True).start()

    def reset(self) -> None:
        self.rss = self.threads = 0.0

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            try:
                s = proc_status(self.pid)
            except OSError:
                continue
            if "VmRSS" not in s:  # exited (a zombie has no memory)
                return
            self.rss, self.threads = max(self.rss, s["VmRSS"] / 1024), max(self.threads, s["Threads"])

    def now(self) -> dict[str, float]:
        s = proc_status(self.pid)
        return {"rss_mib": s["VmRSS"] / 1024, "threads": s["Threads"]}


def join_members(b: Bench, members: dict[str, LightMember]) -> None:
    """Each member's kubeconfig Secret on the hub and its NationalCloud (the hub's FR cloud with another country)."""
    b.kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SECRETS_NS}}, "bench")
    spec = b.kube.get("sovereignsuite.io/v1alpha1", "NationalCloud", "fr-secnumcloud")["spec"]
    for country, m in members.items():
        secret = f"{cloud_name(country)}-kubeconfig"
        b.kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {
            "name": secret, "namespace": SECRETS_NS, "labels": {MEMBER_CREDENTIALS_LABEL: "true"}},
            "data": {"kubeconfig": base64.b64encode(yaml.safe_dump(m.kubeconfig()).encode()).decode()}}, "bench")
        b.kube.apply({"apiVersion": "sovereignsuite.io/v1alpha1", "kind": "NationalCloud",
                      "metadata": {"name": cloud_name(country)},
                      "spec": {**spec, "country": country, "cluster": "member",
                               "kubeconfigSecretRef": {"name": secret, "namespace": SECRETS_NS}}}, "bench")


class NodePorts:
    """JVB's node port for each tenant: unique within a suite (validation: node ports are cluster-wide, and it
    cannot know its tenants are in different clusters) and within each member (a port is allocated once there)."""

    def __init__(self) -> None:
        self.used: dict[str, set[int]] = {}

    def take(self, countries: list[str]) -> list[int]:
        mine: set[int] = set()
        out = []
        for c in countries:
            used = self.used.setdefault(c, set())
            port = next(p for p in range(30000, 32768) if p not in used and p not in mine)
            used.add(port)
            mine.add(port)
            out.append(port)
        return out


def tenancy_suite(ns: str, name: str, countries: list[str]) -> dict:
    doc = suite_doc("four-countries", ns, name)
    doc["spec"]["components"] = dict(TENANCY)
    doc["spec"]["tenants"] = [{"country": c, "cloud": cloud_name(c)} for c in countries]
    return doc


def light_suite(ns: str, name: str, countries: list[str], ports: list[int]) -> dict:
    doc = suite_doc("four-countries", ns, name)
    doc["spec"]["components"] = dict(LIGHT)
    doc["spec"]["tenants"] = [{"country": c, "cloud": cloud_name(c),
                               "components": {"jitsi": {"jvb": {"nodePort": p}}}} for c, p in zip(countries, ports)]
    return doc


def member_kube(m: LightMember) -> Kube:
    from kubernetes import config

    return Kube(config.new_client_from_config(config_file=str(m.write_kubeconfig())), user_agent="sovereign-suite-bench")


def rendered_by_country(b: Bench, doc: dict) -> dict[str, str]:
    """``render --generate-secrets`` of the suite with the hub's clouds, split per member."""
    from sovereign_suite.api.validation import parse_cloud, parse_suite
    from sovereign_suite.cli import _dump_all
    from sovereign_suite.render import render_suite, with_secrets
    from sovereign_suite.secretgen import missing_keys

    clouds = {c["metadata"]["name"]: parse_cloud(c) for c in b.kube.list("sovereignsuite.io/v1alpha1",
                                                                         "NationalCloud")}
    result = render_suite(parse_suite(doc), clouds)
    text = _dump_all(with_secrets(result, {(s.namespace, s.name): missing_keys(s, None) for s in result.secrets}))
    out: dict[str, list[str]] = {}
    for obj in yaml.safe_load_all(text):
        where = obj["metadata"].get("namespace") or obj["metadata"]["name"]
        out.setdefault(where.rsplit("-", 1)[1].upper(), []).append(yaml.safe_dump(obj))
    return {c: "---\n".join(d) for c, d in out.items()}


def operator_round(b: Bench, audits: dict[str, Audit], ns: str, name: str, ports: list[int]) -> dict:
    doc = light_suite(ns, name, list(audits), ports)
    marks = {c: a.mark() for c, a in audits.items()}
    start = time.time()
    b.kube.create(doc)
    wait_for(lambda: b.applied(doc), 900, 0.5, f"27-country suite {name} applied")
    writes = [e for c, a in audits.items() for e in a.events(marks[c]) if e.get("verb") in WRITE]
    return doc, max(audit_time(e) for e in writes) - start


def kubectl_round(b: Bench, members: dict[str, LightMember], ns: str, name: str, ports: list[int]) -> float:
    files = {}
    for country, text in rendered_by_country(b, light_suite(ns, name, list(members), ports)).items():
        f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        f.write(text)
        f.close()
        files[country] = f.name
    start = time.time()
    procs = [subprocess.Popen([b.kubectl, "--kubeconfig", str(members[c].write_kubeconfig()), "apply",
                               "--server-side", "--field-manager", "kubectl-bench", "-f", path],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c, path in files.items()]
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError(p.stderr.read().decode()[-2000:])
    took = time.time() - start
    for path in files.values():
        Path(path).unlink()
    return took


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suites", type=int, default=100)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--probes", type=int, default=40)
    p.add_argument("--members", type=int, default=len(EU), help="how many of the 27 (Malta's always among them)")
    p.add_argument("--fleet", choices=sorted(PROBED), default="tenancy", help="the suites of stage 3")
    p.add_argument("--result", default="eu_scale", help="bench/results/<this>.json (eu_scale_converged: the "
                   "converged fleet's pass-latency run, --rounds 0, that report.py reads apart)")
    p.add_argument("--probe-gap", type=float, default=2.0,
                   help="seconds between probes (the hung probes then span the time before and after the operator "
                   "finds the member does not answer)")
    args = p.parse_args()
    countries = [c for c in EU if c != HUNG][:max(2, args.members) - 1] + [HUNG]
    out: dict = {"members": len(countries), "suites": args.suites, "rounds": args.rounds, "probes": args.probes,
                 "fleet": args.fleet, "load_average_start": Path("/proc/loadavg").read_text().split()[:3]}
    with Bench("eu") as b:
        members = {c: LightMember(b.cluster, f"m-{c.lower()}") for c in countries}
        op = None
        try:
            t0 = time.time()
            for m in members.values():
                m.start()
            for m in members.values():
                m.wait_ready()
            out["members_up_s"] = time.time() - t0
            out["member_apiserver_rss_mib"] = summary([m.rss_mib() for m in members.values()])
            log(f"{len(members)} light members up in {out['members_up_s']:.0f} s")
            join_members(b, members)
            audits = {c: Audit(m) for c, m in members.items()}
            kubes = {c: member_kube(m) for c, m in members.items()}
            ns = b.namespace("bench")
            op = b.operator(drift_interval=15)
            op.start()
            t_op = time.time()
            wait_for(lambda: op.metric("python_info"), 60, 0.5, "operator up")
            time.sleep(5)
            sampler = Sampler(op.proc.pid)
            out["idle_no_member"] = sampler.now()

            # 2. a new 27-country suite, operator vs 27 kubectl in parallel (the first operator round also builds
            # the 27 member targets: their watches list while the suite is applied)
            results: dict[str, list[float]] = {"operator": [], "kubectl": []}
            node_ports = NodePorts()
            round_suites = []
            for i in range(args.rounds):
                for who in ("operator", "kubectl") if i % 2 == 0 else ("kubectl", "operator"):
                    name, ports = f"{who[0]}{i}", node_ports.take(countries)
                    if who == "operator":
                        doc, took = operator_round(b, audits, ns, name, ports)
                        round_suites.append(doc)
                    else:
                        took = kubectl_round(b, members, ns, name, ports)
                    results[who].append(took)
                    log(f"round {i} {who}: {took:.2f} s")
                if i == 0:
                    time.sleep(5)
                    out["after_first_27_country_suite"] = sampler.now()
            if args.rounds:
                o, k = summary(results["operator"]), summary(results["kubectl"])
                out["applied_27"] = {"operator": o, "kubectl_parallel": k,
                                     "ratio_operator_over_kubectl": o["median"] / k["median"],
                                     "operator_runs": results["operator"], "kubectl_runs": results["kubectl"]}
                write_result(args.result, out)
            # their workloads never roll out here: they would pass every 5 s through the stages below
            for doc in round_suites:
                b.kube.delete(doc)
            wait_for(lambda: all(b.kube.get(*SUITES, d["metadata"]["name"], ns) is None for d in round_suites),
                     600, 1.0, "the 27-country suites deleted")

            # 3. --suites two-to-four-country suites over the 27 members
            rng = random.Random(27)
            docs = []
            for i in range(args.suites):
                chosen = rng.sample(countries, min(len(countries), 2 + i % 3))
                docs.append(tenancy_suite(ns, f"s{i:03d}", chosen) if args.fleet == "tenancy" else
                            light_suite(ns, f"s{i:03d}", chosen, node_ports.take(chosen)))
            sampler.reset()
            start = time.time()
            for d in docs:
                b.kube.create(d)
            wait_for(lambda: all(b.applied(d) for d in docs), 3600, 5.0, f"{args.suites} suites applied")
            out["suites_applied_s"] = time.time() - start
            if args.fleet == "tenancy":  # converged: every suite Ready (nothing rolls out)
                wait_for(lambda: all(b.ready(d) for d in docs), 600, 5.0, f"{args.suites} suites Ready")
                out["suites_ready_s"] = time.time() - start
            out["tenants"] = sum(len(d["spec"]["tenants"]) for d in docs)
            time.sleep(20)
            out["suites_peak"] = {"rss_mib": sampler.rss, "threads": sampler.threads}
            out["suites_steady"] = sampler.now()
            log(f"{args.suites} suites applied in {out['suites_applied_s']:.0f} s; {out['suites_peak']}")
            write_result(args.result, out)

            # 4. reads per pass of the converged fleet, per member: as many passes as three of every suite (the
            # drift timer's; with the light fleet, no rollout ever ends in a light member, so a suite passes again
            # every 5 s, SOVEREIGN_SUITE_REQUEUE: those passes read as a drift pass would, from the caches)
            every = args.suites
            before = passes(op)
            marks = {c: a.mark() for c, a in audits.items()}
            t_reads = time.time()
            wait_for(lambda: passes(op) >= before + 3 * every, 600, 1.0, "three passes of every suite")
            out["read_window_s"] = time.time() - t_reads
            out["passes_in_read_window"] = passes(op) - before
            # the passes' reads are reads of objects; discovery requests (the backoff of the watches of kinds a
            # light member does not serve: audit_reads.py) are counted apart, per minute
            reads = {c: [e for e in a.events(marks[c]) if e.get("verb") in READ] for c, a in audits.items()}
            out["reads_per_drift_pass_per_member"] = {c: len(object_reads(r)) / 3 for c, r in reads.items()}
            out["discovery_in_read_window_per_member"] = {c: len(discovery(r)) for c, r in reads.items()}
            out["reads_in_window"] = sorted({f"{e['verb']} {e.get('requestURI', '').split('?')[0]}"
                                             for r in reads.values() for e in r})

            # 5. pass latency on the 26 other members, without then with Malta hung
            sampler.reset()
            pass_latency(op, kubes, docs, members[HUNG], rng, args, out,
                         lambda partial: write_result(args.result, {**out, **partial}))
            out["hung_peak"] = {"rss_mib": sampler.rss, "threads": sampler.threads}
            out["operator_hwm_mib"] = proc_status(op.proc.pid)["VmHWM"] / 1024
            # discovery per member from stage 4 to here (the hung member apart: it answered nothing for a while)
            t_end = time.time()
            found = {c: discovery_summary(a.events(marks[c]), t_reads, t_end) for c, a in audits.items() if c != HUNG}
            out["discovery_since_read_window"] = {"operator_age_s": [round(t_reads - t_op), round(t_end - t_op)],
                                                  "per_member": found}
            out["discovery_per_member_per_minute"] = summary([f["per_minute"] for f in found.values()])
            out["operator_peak_threads"] = max(sampler.threads, out["suites_peak"]["threads"])
            out["load_average_end"] = Path("/proc/loadavg").read_text().split()[:3]
            sampler.stop.set()
        finally:
            if op is not None and op.proc is not None and op.proc.poll() is None:
                op.stop()
            stop_all(list(members.values()))
    lat, n = out["pass_latency"], len(countries)
    rows = [
        ["measure", "measured", "target"],
        [f"operator threads, peak ({n} members, {args.fleet} suites)", f"{out['operator_peak_threads']:.0f}", "<= 64"],
        ["operator RSS, peak (MiB)", f"{out['operator_hwm_mib']:.0f}", "<= 200"],
        ["object reads per drift pass per member, max", f"{max(out['reads_per_drift_pass_per_member'].values()):.2f}",
         "0"],
        ["discovery requests per member per minute (background; median, max)",
         f"{out['discovery_per_member_per_minute']['median']:.2f}, {out['discovery_per_member_per_minute']['max']:.2f}",
         "reported"],
        [f"pass latency p95 (s), no fault / {HUNG} hung",
         f"{lat['no_fault']['p95']:.2f} / {lat['hung']['p95']:.2f} = {lat['ratio_p95_hung_over_no_fault']:.2f}",
         "<= 1.2"],
    ]
    if args.rounds:
        a27 = out["applied_27"]
        rows.insert(3, [f"{n}-country suite applied (s, median), operator / {n} kubectl",
                        f"{a27['operator']['median']:.2f} / {a27['kubectl_parallel']['median']:.2f} = "
                        f"{a27['ratio_operator_over_kubectl']:.2f}", "<= 1.0"])
    print(table(rows))
    print(f"wrote {write_result(args.result, out)}")


if __name__ == "__main__":
    main()
