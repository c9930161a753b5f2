"""Prints the comparison of the last results in bench/results/*.json against the targets of the benchmarks.

    python bench/report.py
"""

from __future__ import annotations

import json
import statistics

from audit_reads import DISCOVERY_PATH
from lib import RESULTS, table


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    rows = [["target", "measured", "", "date"]]
    c, m, a, r = load("converge"), load("many"), load("api_cost"), load("render")
    # every issue-27 target in one run (2026-12-04, eu_scale.py --result eu_scale_1204); else the earlier run
    mc, eu = load("multicluster"), load("eu_scale_1204pm") or load("eu_scale_1204") or load("eu_scale")
    if c:
        for metric in ("applied", "ready"):
            ratio = c[metric]["ratio_operator_over_kubectl"]
            rows.append([f"converge ratio ({metric}) <= 1.0, four-country suite",
                         f"{ratio:.2f} (operator {c[metric]['operator']['median']:.2f} s, "
                         f"kubectl {c[metric]['kubectl']['median']:.2f} s, {c['rounds']} rounds)",
                         verdict(ratio <= 1.0), c["date"]])
    if m:
        ratio = m["ratio_operator_over_kubectl_objects_per_second"]
        rows.append([f">= 1.0x kubectl objects/s, {m['suites']} suites",
                     f"{ratio:.2f} ({m['operator']['objects_per_second']:.0f} vs "
                     f"{m['kubectl']['objects_per_second']:.0f} objects/s)", verdict(ratio >= 1.0), m["date"]])
        rows.append([f"RSS <= 150 MiB at {m['suites']} suites", f"peak {m['operator']['rss_peak_mib']:.0f} MiB",
                     verdict(m["operator"]["rss_peak_mib"] <= 150), m["date"]])
    if a:
        rows.append(["mutating requests per fresh suite <= children + 3",
                     f"{a['fresh']['mutating']} for {a['children']} children",
                     verdict(a["fresh"]["mutating"] <= a["children"] + 3), a["date"]])
        rows.append(["0 writes on resync", str(a["resync_3_passes"]["mutating"]),
                     verdict(a["resync_3_passes"]["mutating"] == 0), a["date"]])
        rows.append(["0 writes on restart", str(a["restart"]["mutating"]), verdict(a["restart"]["mutating"] == 0),
                     a["date"]])
    if r:
        rows.append(["render <= 50 ms, four-country suite",
                     f"{r['warm_ms']['median']:.1f} ms (first in a process {r['first_ms']['median']:.0f} ms)",
                     verdict(r["warm_ms"]["median"] <= 50), r["date"]])
    if mc:
        ratio = mc["applied"]["ratio_operator_over_kubectl"]
        rows.append([f"four members: applied <= 1.0x {mc['members']} kubectl runs in parallel",
                     f"{ratio:.2f} (operator {mc['applied']['operator']['median']:.2f} s, kubectl "
                     f"{mc['applied']['kubectl_parallel']['median']:.2f} s, {mc['rounds']} rounds)",
                     verdict(ratio <= 1.0), mc["date"]])
        worst = max(mc["reads_per_drift_pass_per_member"].values())
        rows.append(["four members: reads per drift pass <= 2 per member", f"at most {worst:.2f}",
                     verdict(worst <= 2), mc["date"]])
        rows.append([f"four members: RSS <= 150 MiB at {mc['suites']} suites", f"peak {mc['rss_mib_peak']:.0f} MiB",
                     verdict(mc["rss_mib_peak"] <= 150), mc["date"]])
        if "rss_mib_peak_restart_90s" in mc:
            rows.append(["four members: RSS <= 150 MiB, restarted over them",
                         f"peak {mc['rss_mib_peak_restart_90s']:.0f} MiB",
                         verdict(mc["rss_mib_peak_restart_90s"] <= 150), mc["date"]])
    f = load("failover")
    if f:
        t = f["takeover_seconds"]
        rows.append([f"failover after a SIGKILL of the leader < 15 s (median of {f['rounds']})",
                     f"{t['median']:.1f} s ({t['min']:.1f}-{t['max']:.1f}); change converged "
                     f"{f['converged_seconds']['median']:.1f} s after the kill", verdict(t["max"] < 15), f["date"]])
    if eu:
        n = f"{eu['members']} members, {eu['suites']} {eu.get('fleet', 'light')} suites"
        rows.append([f"{n}: operator threads <= 64", f"peak {eu['operator_peak_threads']:.0f}",
                     verdict(eu["operator_peak_threads"] <= 64), eu["date"]])
        rows.append([f"{n}: operator RSS <= 200 MiB", f"peak {eu['operator_hwm_mib']:.0f} MiB",
                     verdict(eu["operator_hwm_mib"] <= 200), eu["date"]])
        rows += read_rows(eu, n)
        a27 = eu.get("applied_27")  # not measured in a run with --rounds 0
        if a27:
            rows.append([f"{eu['members']}-country suite applied <= 1.0x {eu['members']} kubectl runs in parallel",
                         f"{a27['ratio_operator_over_kubectl']:.2f} (operator {a27['operator']['median']:.2f} s, "
                         f"kubectl {a27['kubectl_parallel']['median']:.2f} s, {eu['rounds']} rounds)",
                         verdict(a27["ratio_operator_over_kubectl"] <= 1.0), eu["date"]])
        lat = eu["pass_latency"]
        rows.append([f"a member hung among {eu['members']}: the others' p95 pass latency <= 1.2x no fault",
                     f"{lat['ratio_p95_hung_over_no_fault']:.2f} ({lat['hung']['p95']:.2f} s vs "
                     f"{lat['no_fault']['p95']:.2f} s; {lat['hung']['n']} and {lat['no_fault']['n']} probes)",
                     verdict(lat["ratio_p95_hung_over_no_fault"] <= 1.2), eu["date"]])
    conv = load("eu_scale_converged")  # eu_scale.py --fleet tenancy --rounds 0 --result eu_scale_converged
    if conv:
        lat = conv["pass_latency"]
        rows.append([f"a member hung among {conv['members']}, {conv['suites']} Ready suites: others' p95 <= 1.2x",
                     f"{lat['ratio_p95_hung_over_no_fault']:.2f} ({lat['hung']['p95']:.2f} s vs "
                     f"{lat['no_fault']['p95']:.2f} s; {lat['hung']['n']} and {lat['no_fault']['n']} probes)",
                     verdict(lat["ratio_p95_hung_over_no_fault"] <= 1.2), conv["date"]])
    db = load("discovery_backoff")  # bench/discovery_backoff.py: one member cache left alone, minutes long
    if db:
        late, gaps = db["second_half"], sorted({g for v in db["whole"]["gaps_s"].values() for g in v})
        rows.append([f"discovery of groups a member does not serve: backoff {db['base_s']:g} s to {db['cap_s']:g} s "
                     "(no target)", f"{late['per_minute']:.2f} requests per minute over the last "
                     f"{late['window_s'] / 60:.0f} of {db['minutes']:g} minutes; gaps {gaps} s", "measured",
                     db["date"]])
    rows += shard_rows(load("shard_scale"))
    rows += finetune_rows(load("finetune_cost"))
    for sl in (load("synapse_load"), load("synapse_load_poisson")):
        rows += synapse_rows(sl)
    rows += synapse_sweep_rows(load("synapse_load_sweep"))  # lockstep arrivals (2026-12-04)
    rows += synapse_sweep_rows(load("synapse_load_sweep_poisson"))
    for name in TOPOLOGY_RUNS:  # bench/synapse_load.py --workers: which workers cost latency (2026-12-04, night)
        rows += synapse_sweep_rows(load(name), topology=True)
    print(table(rows))


TOPOLOGY_RUNS = ("synapse_load_sync_only", "synapse_load_persisters_only", "synapse_load_no_persisters",
                 "synapse_load_small", "synapse_load_small_main_persists", "synapse_load_lab_night",
                 "synapse_load_lab_night_6", "synapse_load_cpu_wait", "synapse_load_one_cpu",
                 "synapse_load_two_cpus", "synapse_load_small_cpu_wait")


def synapse_rows(sl: dict | None) -> list[list[str]]:
    """bench/synapse_load.py at one rate: the p95 ratio against the issue's 1.2 x, and messages lost."""
    rows = []
    if sl:
        s, n = sl["summary"], (f"{sl['clients']} clients x {sl['rate_per_client']:g} msg/s "
                               f"{sl.get('arrivals', 'lockstep')}, {sl['seconds']:.0f} s")
        mono, work = s["monolith"], s["workers"]
        rows.append([f"Synapse workers vs monolith ({n}): p95 send->sync <= 1.2x",
                     f"{s['ratio_p95_workers_over_monolith']:.2f} ({work['latency_p95_s']:.3f} s vs "
                     f"{mono['latency_p95_s']:.3f} s; {work['accepted_per_second']:.1f} vs "
                     f"{mono['accepted_per_second']:.1f} msg/s, {sl['rounds']} rounds)",
                     verdict(s["ratio_p95_workers_over_monolith"] <= 1.2), sl["date"]])
        lost = mono["lost_messages_total"] + work["lost_messages_total"]
        rows.append([f"Synapse under load ({n}): no message lost", f"{lost} lost", verdict(lost == 0), sl["date"]])
    return rows


def read_rows(eu: dict, n: str) -> list[list[str]]:
    """The converged fleet's reads per member: the passes' (reads of objects: the target) and, apart, the
    background discovery requests of the watches of kinds a member does not serve (bench/audit_reads.py). A run
    from before eu_scale.py split them has only all reads per pass and the paths read in the window: when every
    path is a discovery document, the passes read nothing and its reads were all discovery."""
    passes = eu["reads_per_drift_pass_per_member"]
    window = eu["read_window_s"]
    if "discovery_in_read_window_per_member" in eu:
        d, age = eu["discovery_per_member_per_minute"], eu["discovery_since_read_window"]["operator_age_s"]
        disc = (f"median {d['median']:.2f}, max {d['max']:.2f} ({d['n']} members, over the operator's minutes "
                f"{age[0] / 60:.1f} to {age[1] / 60:.1f}; backoff 30 s doubling to 300 s)")
    elif all(DISCOVERY_PATH.match(r.split(" ", 1)[1]) for r in eu["reads_in_window"]):
        rates = sorted(v * 3 / (window / 60) for v in passes.values())
        disc = (f"median {statistics.median(rates):.2f}, max {rates[-1]:.2f} (before the backoff: every 30 s per "
                f"group; over the {window:.0f} s read window)")
        passes = {c: 0.0 for c in passes}
    else:
        disc = "not told apart in this run"
    worst = max(passes.values())
    return [[f"{n}: reads per drift pass per member = 0 (the passes' reads of objects)", f"at most {worst:.2f}",
             verdict(worst == 0), eu["date"]],
            [f"{n}: discovery requests per member per minute (background, no target)", disc, "measured",
             eu["date"]]]


def synapse_sweep_rows(sw: dict | None, topology: bool = False) -> list[list[str]]:
    """bench/synapse_load.py --rates: the issue's target (p95 send->sync with workers <= 1.2 x the monolith's at
    the same load) per offered rate, and messages lost over the whole sweep. ``topology``: the label names the
    worker topology compared (the runs of ``--workers``)."""
    if not sw:
        return []
    rows, lost, arrivals = [], 0, sw.get("arrivals", "lockstep")  # the first sweeps had no choice: lockstep
    if topology:
        preset = (sw.get("workers") or {}).get("size")
        counts = {k: v for k, v in sw["topology"].items() if k != "main"}
        # a preset's meaning changed (small lost its event persister on 2026-12-04): its counts say which one
        arrivals += (f", preset {preset}: {sum(counts.values())} workers, {counts.get('event_persister', 0)} event "
                     "persisters" if preset and len(sw["workers"]) == 1 else
                     ", main + " + " + ".join(f"{v} {k}" for k, v in counts.items()))
    if "cpu_affinity" in sw:  # recorded since 2026-12-05: a run pinned with taskset says on how many CPUs
        arrivals += f", on {len(sw['cpu_affinity'])} CPU{'s' if len(sw['cpu_affinity']) > 1 else ''}"
    for point in sw["sweep"]:
        s = point["summary"]
        mono, work = s["monolith"], s["workers"]
        lost += mono["lost_messages_total"] + work["lost_messages_total"]
        rows.append([f"Synapse sweep ({arrivals}), {sw['clients']} clients x {point['rate_per_client']:g} msg/s "
                     f"({point['offered_per_second']:g} offered): p95 send->sync <= 1.2x",
                     f"{s['ratio_p95_workers_over_monolith']:.2f} ({work['latency_p95_s']:.3f} s vs "
                     f"{mono['latency_p95_s']:.3f} s; {work['accepted_per_second']:.1f} vs "
                     f"{mono['accepted_per_second']:.1f} msg/s, {sw['rounds']} rounds{cpu_wait(mono, work)})",
                     verdict(s["ratio_p95_workers_over_monolith"] <= 1.2), sw["date"]])
    rows.append([f"Synapse sweep ({arrivals}, {len(sw['sweep'])} rates): no message lost", f"{lost} lost",
                 verdict(lost == 0),
                 sw["date"]])
    return rows


def cpu_wait(mono: dict, work: dict) -> str:
    """The run-queue wait per accepted message, for the runs that measured it (2026-12-05 and later)."""
    if "cpu_wait_ms_per_message" not in work:
        return ""
    return (f"; waiting for a CPU {work['cpu_wait_ms_per_message']:.0f} vs {mono['cpu_wait_ms_per_message']:.0f} ms "
            "per message")


def shard_rows(s: dict | None) -> list[list[str]]:
    """bench/shard_scale.py against the issue's words: "Measure one replica vs two on the same fleet" (issue 27,
    whose fleet is 27 members). No figure is set for it, so the first row says whether that measurement exists (both
    configurations on the same members and suites, on the 27 members); the others give the figures, "measured"."""
    if not s:
        return [["one replica vs two measured on the same fleet (issue 27)", "not run", "MISSED", ""]]
    tenants = f", {s['tenants']} tenants" if "tenants" in s else ""
    fleet = f"{s['members']} members, {s['suites']} {s.get('fleet', 'light')} suites{tenants}, {s['shards']} shards"
    both = "one" in s and "two" in s
    rows = [[f"one replica vs two measured on the same fleet (issue 27: 27 members): {fleet}",
             ("both measured, same members and suites" if both else "only one replica measured")
             + ("" if s["members"] >= 27 else f"; on {s['members']} of the 27 members"),
             verdict(both and s["members"] >= 27), s["date"]]]
    if not both:
        return rows
    rows.append([f"sharding, {fleet}: every suite changed, all applied", f"1 replica {s['one']['change_all_s']:.1f} s, "
                 f"2 replicas {s['two']['change_all_s']:.1f} s", "measured", s["date"]])
    lat = {k: s[k]["pass_latency"] for k in ("one", "two")}
    rows.append([f"sharding, {fleet}: pass latency p50 / p95 ({s['probes']} probes)",
                 f"1 replica {lat['one']['median']:.2f} / {lat['one']['p95']:.2f} s, 2 replicas "
                 f"{lat['two']['median']:.2f} / {lat['two']['p95']:.2f} s", "measured", s["date"]])
    for what, unit, fmt in (("rss_mib", "MiB", "{:.0f}"), ("threads", "threads", "{:.0f}")):
        one = ", ".join(fmt.format(r[what]) for r in s["one"]["peak"])
        two = " and ".join(fmt.format(r[what]) for r in s["two"]["peak"])
        rows.append([f"sharding, {fleet}: peak {unit} per replica", f"1 replica {one}, 2 replicas {two}",
                     "measured", s["date"]])
    return rows


def finetune_rows(f: dict | None) -> list[list[str]]:
    """bench/finetune_cost.py: what FineTunes add to a pass's CPU (the issue asks it measured, with no target)."""
    if not f:
        return []
    render = f["render"]
    most = max(render, key=int)
    rows = [[f"suite render with 0 vs {most} served adapters (min)",
             f"{render['0']['min_ms']:.1f} vs {render[most]['min_ms']:.1f} ms", "measured", f["date"]]]
    select = f["select"]
    most = max(select, key=int)
    rows.append([f"served adapters chosen among {most} FineTunes per suite pass (min)",
                 f"{select[most]['min_ms']:.2f} ms", "measured", f["date"]])
    rows.append(["one FineTune pass: check + render (min)", f"{f['finetune_pass']['min_ms']:.2f} ms", "measured",
                 f["date"]])
    return rows


if __name__ == "__main__":
    main()
