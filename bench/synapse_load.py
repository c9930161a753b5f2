"""Synapse under load (issue 26): a tenant's Synapse as a monolith vs the worker topology, with real Synapse,
PostgreSQL, Redis and nginx processes in the Matrix lab's own network namespace, from what the operator applied.

    python bench/synapse_load.py --clients 12 --seconds 60 --rounds 2 [--rate 2] [--rooms 3]

Needs root (network namespaces), the tools of tests/cluster/test_matrix_workers_real.py (hack/install-federation-
tools.sh, Debian's redis-server) and the Synapse venv of the tests (built on first use). One local cluster and the
operator as a process (bench/lib.py): the two-country suite is created with FR a monolith, its applied objects
read; then FR gets the worker topology of test_matrix_workers_real.py (main + 2 sync + 2 event persisters + 1
federation sender + 1 media repository + 1 background worker; ``--workers``: a preset or other counts), and the
re-rendered objects are read. Each round
runs each topology in a fresh lab (empty database; the order alternates between rounds) through the rendered
ingress (and the router): K registered users in a few rooms, each sending ``--rate`` messages per second on
average (``--arrivals poisson``, the default: K independent Poisson streams, seeded by ``--seed``; ``lockstep``:
all K at the same instants, as every run up to 2026-12-04's first sweep) and long-polling /sync for ``--seconds``
(bench/synapse_load_client.py), then up to ``--drain`` seconds for the last messages to arrive. Recorded per
round: messages/s accepted, p50/p95 send->sync latency, messages lost (accepted with 200, never returned to every
other member of the room), RSS, CPU and run-queue wait (time runnable but waiting for a CPU) per process (/proc),
the machine's load and the CPUs the bench may use (``taskset -c 0 python bench/synapse_load.py ...``: one).
Writes bench/results/synapse_load_poisson.json (synapse_load.json with ``--arrivals lockstep``); bench/report.py
prints both.

    python bench/synapse_load.py --rates 0.25,0.5,1,2 --rounds 2   # bench/results/synapse_load_sweep_poisson.json

``--rates``: several per-client rates in one invocation; every round runs each rate in both topologies, the
topologies' order alternating between rounds and between consecutive rates; bench/report.py prints the p95 ratio
per rate against the issue's 1.2 x. ``--hops``: Synapse's replication handler logs at DEBUG and every round adds
where each message's latency went, hop by hop (bench/synapse_load_hops.py; for short runs at low rates).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import threading
import time
from pathlib import Path

from lib import ROOT, Bench, log, table, wait_for, write_result
from synapse_load_hops import HOPS, LOG_CONFIG, collect, message_hops, summarise_hops
from synapse_load_stats import group_usage, load_figures, machine_busy, rounds_plan, snapshot

from sovereign_suite.api.matrix_workers import MatrixWorkers
from sovereign_suite.api.models import Matrix
from sovereign_suite.components.postgres import image_tag
from tests import synapse_venv
from tests.cluster.matrix_lab import Applied, Lab
from tests.cluster.matrix_workers_lab import start_tenants
from tests.cluster.operator_fixture import SUITES, suite_doc, wait_ready
from tests.cluster.test_matrix_federation import Tenant, q
from tests.cluster.test_matrix_workers_real import TOPOLOGY

CLIENT = Path(__file__).resolve().parent / "synapse_load_client.py"
PATCH = {
    "components": {"docs": {"enabled": False}, "jitsi": {"enabled": False}},
    "tenants": [{"country": "FR", "cloud": "fr-secnumcloud"}, {"country": "DE", "cloud": "de-c5"}],
    "deletionPolicy": "Delete",
}


def worker_tenants(workers: dict) -> list[dict]:
    return [{"country": "FR", "cloud": "fr-secnumcloud", "components": {"matrix": {"workers": workers}}},
            {"country": "DE", "cloud": "de-c5"}]


def parse_workers(text: str) -> dict:
    """``--workers``: a preset name (``size``: small, large, national) or a JSON object of the API's counts
    (``{"sync": 2}``), validated by the API model so that a typo is refused before any lab starts."""
    text = text.strip()
    spec = json.loads(text) if text.startswith("{") else {"size": text}
    if not MatrixWorkers.model_validate(spec).enabled():
        raise SystemExit(f"--workers {text!r}: no worker runs in that topology (a monolith)")
    return spec


def applied_topologies(b: Bench, workers: dict) -> dict[str, Applied]:
    """FR's Matrix objects as the operator applied them for a monolith, then re-rendered with ``workers``."""
    ns = b.namespace("bench")
    doc = suite_doc("two-countries", ns, "load", patch=PATCH)
    b.kube.create(doc)
    wait_ready(b.kube, doc, timeout=300)
    out = {"monolith": Applied.read(b.kube, "load-fr")}
    assert not any(n.startswith("synapse-") for n in out["monolith"].statefulsets), "FR is not a monolith"
    b.kube.merge_patch(*SUITES, "load", ns, {"spec": {"tenants": worker_tenants(workers)}})
    wait_ready(b.kube, doc, timeout=300)
    out["workers"] = Applied.read(b.kube, "load-fr")
    return out


class Sampler(threading.Thread):
    """Every second: RSS and CPU seconds of each named process group, /proc/stat and the load average."""

    def __init__(self, roots: dict[str, int]):
        super().__init__(daemon=True)
        self.roots, self.samples, self.done = roots, [], threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            snap = snapshot()
            self.samples.append((time.monotonic(), {n: group_usage(snap, pid) for n, pid in self.roots.items()},
                                 Path("/proc/stat").read_text(), os.getloadavg()[0]))
            self.done.wait(1.0)

    def figures(self, began: float, ended: float) -> tuple[dict, dict]:
        inside = [s for s in self.samples if began <= s[0] <= ended]
        first, last = inside[0], inside[-1]
        span = last[0] - first[0]
        procs = {}
        for name in self.roots:
            rss = [s[1][name]["rss_mib"] for s in inside]
            group = [s[1][name]["group_rss_mib"] for s in inside]
            procs[name] = {"rss_mib_peak": max(rss), "rss_mib_mean": statistics.mean(rss),
                           "group_rss_mib_peak": max(group), "processes": last[1][name]["processes"],
                           "cpu_cores": (last[1][name]["cpu_seconds"] - first[1][name]["cpu_seconds"]) / span,
                           # seconds per second its threads were runnable but waited for a CPU
                           "cpu_wait_cores": (last[1][name]["cpu_wait_seconds"] - first[1][name]["cpu_wait_seconds"])
                           / span}
        lab_cores = sum(p["cpu_cores"] for p in procs.values())
        busy = machine_busy(first[2], last[2])
        machine = {"cpus": os.cpu_count(), "busy_fraction": busy, "lab_and_client_cpu_cores": lab_cores,
                   "lab_and_client_cpu_wait_cores": sum(p["cpu_wait_cores"] for p in procs.values()),
                   "other_cpu_cores": max(0.0, busy * (os.cpu_count() or 1) - lab_cores),
                   "loadavg_1m": [min(s[3] for s in inside), max(s[3] for s in inside)], "samples": len(inside)}
        return procs, machine


def process_roots(lab: Lab) -> dict[str, int]:
    """The lab's processes by role: main, each worker pod, Redis, the router, the ingress, PostgreSQL's postmaster
    (started by pg_ctl, so not one of the lab's children: its pid file)."""
    roots = {("main" if name == "synapse-fr" else name): proc.pid for name, proc in lab.procs.items()}
    roots["postgres"] = int((lab.postgres["fr"] / "data" / "postmaster.pid").read_text().split()[0])
    return roots


def setup_clients(lab: Lab, app: Applied, clients: int, rooms: int) -> list[dict]:
    """``clients`` users, client i in room i mod ``rooms`` (public rooms the first member creates, the others
    join), all through the ingress; registration on main's listener (the admin API is not on the Ingress)."""
    fr = Tenant(lab, "fr", app.domain)
    secret = app.secrets["synapse-keys"]["registration_shared_secret"]
    _, admin_token = fr.register("loadadmin", secret, admin=True)
    main = f"http://{lab.ip('fr', 'synapse')}:8008"
    out = []
    for i in range(clients):
        user, token = fr.register(f"load{i}", secret)
        # the per-user message rate limit (rc_message: 0.2/s, burst 10 by default, synapse/config/ratelimiting.py)
        # would measure the limiter, not the servers: lifted per user with the admin API
        # (synapse/rest/admin/users.py, RateLimitRestServlet, 1.163.2), the same for both topologies
        status, body = lab.request("POST", f"{main}/_synapse/admin/v1/users/{q(user)}/override_ratelimit",
                                   {"messages_per_second": 0, "burst_count": 0}, admin_token)
        assert status == 200, body
        out.append({"name": f"load{i}", "user": user, "token": token})
    for r in range(rooms):
        members = out[r::rooms]
        room = fr.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"}, members[0]["token"])[1][
            "room_id"]
        for m in members[1:]:
            fr.call("POST", f"/_matrix/client/v3/join/{q(room)}", {}, m["token"])
        for m in members:
            m["room"] = room
    return out


def one_round(topology: str, app: Applied, python: Path, args: argparse.Namespace, rate: float) -> dict:
    lab = Lab(python)
    try:
        started = time.monotonic()
        extra = None
        if args.hops:  # Synapse's log_config (main) and worker_log_config (workers): the same file
            config = lab.root / "log-config.yaml"
            config.write_text(json.dumps(LOG_CONFIG))
            extra = {"log_config": str(config), "worker_log_config": str(config)}
        workers = start_tenants(lab, {"fr": app}, extra)
        assert (topology == "workers") == ("fr" in workers), topology
        startup = time.monotonic() - started
        clients = setup_clients(lab, app, args.clients, args.rooms)
        log(f"{topology}: up in {startup:.0f} s, {len(clients)} clients in {args.rooms} rooms")
        plan = {"base": f"https://matrix.{app.domain}", "ca": str(lab.ca), "seconds": args.seconds, "rate": rate,
                "arrivals": args.arrivals, "seed": args.seed, "drain": args.drain,
                "clients": [{k: c[k] for k in ("name", "token", "room")} for c in clients]}
        client = subprocess.Popen(lab.netns.argv([str(python), "-u", str(CLIENT)], lab.hosts_file()),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        sampler = Sampler({**process_roots(lab), "load-client": client.pid})
        sampler.start()
        out, _ = client.communicate(json.dumps(plan), timeout=args.seconds + args.drain + 300)
        sampler.done.set()
        sampler.join()
        assert client.returncode == 0, f"load client exited {client.returncode}"
        run = json.loads(out)
        figures = load_figures(run, plan["clients"])
        processes, machine = sampler.figures(*run["window"])
        figures["client_cpu_seconds"] = run["client_cpu_seconds"]
        out = {"topology": topology, "rate_per_client": rate, "startup_seconds": startup, "figures": figures,
               "processes": processes, "machine": machine}
        if args.hops:
            logs, rows = collect(lab, app)
            out["hops"] = summarise_hops(message_hops(run, clients, logs, rows, main="synapse-fr"))
            # the two waits Synapse logs at INFO: a /sync whose `since` is ahead of its process (polled every
            # 0.5 s, synapse/notifier.py wait_for_stream_token) and main waiting for a writer's RDATA
            out["waits"] = {n: {"sync_since_ahead": t.count("Waiting for this worker's streams to advance"),
                                "replication_position": t.count("Waiting for repl stream")} for n, t in logs.items()}
            keep = Path(os.environ.get("TMPDIR", "/tmp")) / f"synapse-hops-{topology}-{rate:g}-{int(time.time())}"
            keep.mkdir(parents=True)
            for name, text in logs.items():
                (keep / f"{name}.log").write_text(text)
            (keep / "run.json").write_text(json.dumps({"run": run, "rows": rows, "clients": clients}))
            log(f"{topology}: logs kept in {keep}; waits {out['waits']}")
            log(f"{topology} hops (p50 / p95 ms): " + ", ".join(
                f"{k} {v['p50_s'] * 1000:.0f} / {v['p95_s'] * 1000:.0f}" for k, v in out["hops"].items()))
        return out
    except BaseException:
        for proc in list(lab.procs):
            print(f"----- {proc}\n{lab.log(proc)[-2500:]}")
        raise
    finally:
        lab.close()


def is_synapse(name: str) -> bool:
    """A Synapse process among the lab's process groups (main, or a worker pod's; not Redis or the router)."""
    return name == "main" or name.startswith("synapse-") and name not in ("synapse-redis", "synapse-router")


def summarise(runs: list[dict]) -> dict:
    out = {}
    for topology in ("monolith", "workers"):
        mine = [r for r in runs if r["topology"] == topology]
        f = [r["figures"] for r in mine]
        med = lambda key: statistics.median(x[key] for x in f if x[key] is not None)  # noqa: E731
        rate = med("accepted_per_second")
        cores: dict[str, list[float]] = {}
        waits: dict[str, list[float]] = {}
        for r in mine:
            for name, p in r["processes"].items():
                cores.setdefault(name, []).append(p["cpu_cores"])
                waits.setdefault(name, []).append(p.get("cpu_wait_cores", 0.0))  # results before 2026-12-05: none
        out[topology] = {
            "rounds": len(mine), "accepted_per_second": rate, "latency_p50_s": med("latency_p50_s"),
            "latency_p95_s": med("latency_p95_s"), "lost_messages_total": sum(x["lost_messages"] for x in f),
            "synapse_cpu_cores": statistics.median(sum(p["cpu_cores"] for n, p in r["processes"].items()
                                                       if is_synapse(n)) for r in mine),
            "synapse_cpu_wait_cores": statistics.median(sum(p.get("cpu_wait_cores", 0.0) for n, p in
                                                            r["processes"].items() if is_synapse(n)) for r in mine),
            # every process's run-queue wait (Synapse, PostgreSQL, Redis, nginx, the load client) per accepted
            # message: how long, in all, the work of one message waited for a CPU (over the rounds that accepted
            # one, as the latencies are over the rounds that measured one)
            "cpu_wait_ms_per_message": statistics.median(
                1000 * r["machine"].get("lab_and_client_cpu_wait_cores", 0.0) / r["figures"]["accepted_per_second"]
                for r in mine if r["figures"]["accepted_per_second"]),
            "cpu_cores_per_process": {n: statistics.median(v) for n, v in cores.items()},
            "cpu_wait_cores_per_process": {n: statistics.median(v) for n, v in waits.items()},
            "rss_mib_peak_per_process": {n: max(r["processes"][n]["rss_mib_peak"] for r in mine)
                                         for n in mine[0]["processes"]},
        }
    out["ratio_p95_workers_over_monolith"] = out["workers"]["latency_p95_s"] / out["monolith"]["latency_p95_s"]
    return out


def print_summary(s: dict, label: str) -> None:
    rows = [["topology", "msg/s accepted", "p50 (s)", "p95 (s)", "lost", "Synapse CPU (cores)",
             "Synapse CPU wait (cores)", "CPU wait per message (ms)"]]
    for t in ("monolith", "workers"):
        rows.append([t, f"{s[t]['accepted_per_second']:.1f}", f"{s[t]['latency_p50_s']:.3f}",
                     f"{s[t]['latency_p95_s']:.3f}", s[t]["lost_messages_total"], f"{s[t]['synapse_cpu_cores']:.2f}",
                     f"{s[t]['synapse_cpu_wait_cores']:.3f}", f"{s[t]['cpu_wait_ms_per_message']:.0f}"])
    print(f"{label}\n{table(rows)}\np95 workers / monolith: {s['ratio_p95_workers_over_monolith']:.2f}")


def hop_table(runs: list[dict]) -> str:
    """Per hop, per topology: the rounds' p50 / p95 in ms (medians over rounds)."""
    rows = [["hop", "monolith p50 / p95 (ms)", "workers p50 / p95 (ms)"]]
    for key, _ in HOPS:
        cells = []
        for t in ("monolith", "workers"):
            got = [r["hops"][key] for r in runs if r["topology"] == t and key in r.get("hops", {})]
            cells.append(f"{statistics.median(h['p50_s'] for h in got) * 1000:.0f} / "
                         f"{statistics.median(h['p95_s'] for h in got) * 1000:.0f}" if got else "-")
        rows.append([key, *cells])
    return table(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=12)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--rate", type=float, default=2.0, help="messages per second each client sends")
    p.add_argument("--rates", default="", help="a sweep: comma-separated per-client rates (replaces --rate)")
    p.add_argument("--arrivals", choices=("poisson", "lockstep"), default="poisson",
                   help="when each client's messages are due: independent Poisson streams (default), or every "
                        "client at the same instants (the runs up to 2026-12-04's lockstep sweep)")
    p.add_argument("--seed", type=int, default=0, help="the Poisson streams' seed (with each client's name)")
    p.add_argument("--rooms", type=int, default=0, help="default: one room per 4 clients")
    p.add_argument("--drain", type=float, default=30)
    p.add_argument("--workers", default=json.dumps(TOPOLOGY),
                   help="the worker topology compared with the monolith: a preset (small, large, national) or the "
                        "API's counts as JSON; default: test_matrix_workers_real.py's")
    p.add_argument("--hops", action="store_true", help="per-hop latency from Synapse's logs (DEBUG replication)")
    p.add_argument("--result", default="", help="bench/results/<result>.json (default synapse_load, or "
                                                "synapse_load_sweep with --rates; report.py reads both)")
    args = p.parse_args()
    args.rooms = args.rooms or max(1, args.clients // 4)
    workers = parse_workers(args.workers)
    rates = [float(r) for r in args.rates.split(",") if r.strip()] or [args.rate]
    # the lockstep runs kept the first names (synapse_load, synapse_load_sweep); report.py reads both kinds
    suffix = "" if args.arrivals == "lockstep" else f"_{args.arrivals}"
    args.result = args.result or ("synapse_load_sweep" if args.rates else "synapse_load") + suffix
    python = synapse_venv.synapse_python(image_tag(Matrix().image).lstrip("v"))
    runs = []
    with Bench("synapse-load") as b:
        op = b.operator()
        op.start()
        wait_for(lambda: op.metric("sovereign_suite_build_info") or op.metric("python_info"), 60, 0.5, "operator up")
        apps = applied_topologies(b, workers)
        op.stop()  # everything the rounds need is read: the operator and the cluster stay idle
        for i, rate, topology in rounds_plan(args.rounds, rates):
            r = one_round(topology, apps[topology], python, args, rate)
            r["round"] = i
            runs.append(r)
            f = r["figures"]
            log(f"round {i} rate {rate:g} {topology}: {f['accepted_per_second']:.1f} msg/s, p50 "
                f"{f['latency_p50_s']:.3f} s, p95 {f['latency_p95_s']:.3f} s, lost {f['lost_messages']}, machine "
                f"busy {r['machine']['busy_fraction']:.0%}, load {r['machine']['loadavg_1m']}")
    counts = {k: v for k, v in MatrixWorkers.model_validate(workers).topology().items() if v}
    common = {"clients": args.clients, "rooms": args.rooms, "seconds": args.seconds, "drain_seconds": args.drain,
              "rounds": args.rounds, "arrivals": args.arrivals, "seed": args.seed, "workers": workers,
              "topology": {"main": 1, **counts},
              # the CPUs the lab, the load client and the cluster may run on (`taskset -c 0 python bench/...`
              # runs the whole bench on one CPU)
              "cpu_affinity": sorted(os.sched_getaffinity(0))}
    if args.rates:
        sweep = []
        for rate in rates:
            mine = [r for r in runs if r["rate_per_client"] == rate]
            sweep.append({"rate_per_client": rate, "offered_per_second": rate * args.clients,
                          "summary": summarise(mine)})
            print_summary(sweep[-1]["summary"], f"rate {rate:g} msg/s per client ({rate * args.clients:g} offered)")
        result = {**common, "rates": rates, "runs": runs, "sweep": sweep}
    else:
        result = {**common, "rate_per_client": args.rate, "runs": runs, "summary": summarise(runs)}
        print_summary(result["summary"], f"rate {args.rate:g} msg/s per client")
    if args.hops:
        for rate in rates:
            print(f"hops at {rate:g} msg/s per client:\n{hop_table([r for r in runs if r['rate_per_client'] == rate])}")
    path = write_result(args.result, result)
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
