"""Stage 5 of bench/eu_scale.py: the pass latency of the members other than the hung one, without then with it
hung (SIGSTOP). A probe deletes a child of a tenant in a member other than the hung one and times the operator's
create of it again; each phase also records what the operator did meanwhile (passes by trigger, CPU seconds) and the
machine's load, since the machine is shared."""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path
from typing import Any, Callable

from lib import cpu_seconds, log, summary

from sovereign_suite.devcluster.light_member import LightMember
from sovereign_suite.reconcile.kube import Kube

HUNG = "MT"
# what a probe deletes, per fleet: (apiVersion, kind)
PROBED = {"tenancy": ("networking.k8s.io/v1", "NetworkPolicy"), "light": ("v1", "ConfigMap")}


def probe(kubes: dict[str, Kube], suites: list[dict], rng: random.Random, kind: tuple[str, str]) -> tuple[float, bool]:
    """A child (``kind``) of one tenant deleted in its member: seconds until the operator created it again, and
    whether the suite also has a tenant in the hung member's country (its pass also writes there)."""
    doc = rng.choice(suites)
    with_hung = any(t["country"] == HUNG for t in doc["spec"]["tenants"])
    country = rng.choice([t["country"] for t in doc["spec"]["tenants"] if t["country"] != HUNG])
    k, tenant_ns = kubes[country], f"{doc['metadata']['name']}-{country.lower()}"
    found = sorted(k.list(*kind, "app.kubernetes.io/managed-by=sovereign-suite-operator", tenant_ns),
                   key=lambda o: o["metadata"]["name"])
    victim = rng.choice(found)
    name, uid = victim["metadata"]["name"], victim["metadata"]["uid"]
    start = time.monotonic()
    k.delete(victim)
    while True:
        now = k.get(*kind, name, tenant_ns)
        if now is not None and now["metadata"]["uid"] != uid:
            return time.monotonic() - start, with_hung
        if time.monotonic() - start > 120:
            raise TimeoutError(f"{tenant_ns}/{name} not re-created in 120 s")
        time.sleep(0.05)


def passes(op) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in op.series("sovereign_suite_reconcile_total"))


def passes_by(op) -> dict[str, float]:
    """The operator's passes so far by trigger and result (its reconcile counter's labels)."""
    out: dict[str, float] = {}
    for line in op.series("sovereign_suite_reconcile_total"):
        labels, value = line.rsplit(" ", 1)
        trig = next((kv.split("=", 1)[1].strip('"') for kv in labels.split("{", 1)[-1].rstrip("}").split(",")
                     if kv.startswith("trigger=")), "?")
        res = next((kv.split("=", 1)[1].strip('"') for kv in labels.split("{", 1)[-1].rstrip("}").split(",")
                    if kv.startswith("result=")), "?")
        out[f"{trig}/{res}"] = out.get(f"{trig}/{res}", 0.0) + float(value)
    return out


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) >= 2 else values[0]


def load_average() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


def pass_latency(op, kubes: dict[str, Kube], suites: list[dict], hung: LightMember, rng: random.Random, args: Any,
                 out: dict, partial: Callable[[dict], Any]) -> None:
    """``args.probes`` probes ``args.probe_gap`` s apart without a fault, then as many with ``hung`` stopped; the
    results into ``out``, ``partial`` called after each probe (the script writes what it has)."""
    latency: dict[str, list[float]] = {"no_fault": [], "hung": []}
    detail: dict[str, list[dict]] = {"no_fault": [], "hung": []}  # each probe: when, how long, the hung one's suite
    windows: dict[str, dict] = {}  # what the operator did in each phase: passes, CPU, the machine's load

    def run_probes(phase: str, since: float) -> None:
        passes0, cpu0, by0 = passes(op), cpu_seconds(op.proc.pid), passes_by(op)
        for _ in range(args.probes):
            took, with_hung = probe(kubes, suites, rng, PROBED[args.fleet])
            latency[phase].append(took)
            detail[phase].append({"at_s": round(time.time() - since, 1), "took_s": round(took, 3),
                                  "suite_has_hung_tenant": with_hung})
            log(f"probe, {phase}: {took:.1f} s" + (f" (the suite also has a tenant in {HUNG})" if with_hung else ""))
            partial({"pass_latency_partial": latency, "probes_detail": detail})
            time.sleep(args.probe_gap)
        windows[phase] = {"seconds": round(time.time() - since, 1), "passes": passes(op) - passes0,
                          "operator_cpu_s": round(cpu_seconds(op.proc.pid) - cpu0, 1),
                          "passes_by_trigger": {k: v - by0.get(k, 0.0) for k, v in passes_by(op).items()
                                                if v - by0.get(k, 0.0)},
                          "load_average_end": load_average()}
        log(f"{phase}: {windows[phase]}")

    run_probes("no_fault", time.time())
    hung.pause()
    try:
        hung_at = time.time()
        log(f"{HUNG} hung (SIGSTOP)")
        run_probes("hung", hung_at)
        out["hung_probe_window_s"] = time.time() - hung_at
    finally:
        hung.resume()
    out["probes_detail"], out["probe_windows"] = detail, windows
    out["pass_latency"] = {k: {"p95": p95(v), **summary(v)} for k, v in latency.items()}
    out["pass_latency"]["ratio_p95_hung_over_no_fault"] = \
        out["pass_latency"]["hung"]["p95"] / out["pass_latency"]["no_fault"]["p95"]
    # the probes whose suite has no tenant in the hung member's country, apart
    apart = {k: [d["took_s"] for d in v if not d["suite_has_hung_tenant"]] for k, v in detail.items()}
    if all(apart.values()):
        out["pass_latency_suites_without_hung"] = {k: {"p95": p95(v), **summary(v)} for k, v in apart.items()}
