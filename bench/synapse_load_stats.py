"""The figures of bench/synapse_load.py from what the load client recorded and from /proc (pure functions, and the
readers of /proc they are fed from). Unit-tested in tests/test_bench_synapse_load.py.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile (q in 0..100): the smallest value with at least q% of the values at or below
    it; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def load_figures(run: dict, clients: list[dict]) -> dict:
    """From the client's record (bench/synapse_load_client.py): messages accepted and per second over the sending
    window, send->sync latency (from a send's start to the first /sync of another member of the room returning
    it; one sample per message and receiving member), and the messages lost: accepted (200) but not returned to
    every other member of the room by the end of the drain. ``lost_receipts`` counts the (message, member) pairs
    missing."""
    members: dict[str, set[str]] = {}
    for c in clients:
        members.setdefault(c["room"], set()).add(c["name"])
    first_seen: dict[tuple[str, str], float] = {}
    for name, txn, t in run["seen"]:
        key = (txn, name)
        first_seen[key] = min(t, first_seen.get(key, t))
    statuses = Counter(str(s[5]) for s in run["sent"])
    latencies, lost, lost_receipts = [], 0, 0
    accepted = [s for s in run["sent"] if s[5] == 200]
    for sender, txn, room, t_start, _t_end, _status in accepted:
        missing = 0
        for member in members[room] - {sender}:
            t = first_seen.get((txn, member))
            if t is None:
                missing += 1
            else:
                latencies.append(t - t_start)
        lost += missing > 0
        lost_receipts += missing
    seconds = run["window"][1] - run["window"][0]
    send_times = [s[4] - s[3] for s in accepted]
    return {
        "seconds": seconds,
        "sent": len(run["sent"]),
        "accepted": len(accepted),
        "accepted_per_second": len(accepted) / seconds if seconds > 0 else 0.0,
        "statuses": dict(statuses),
        "latency_samples": len(latencies),
        "latency_p50_s": percentile(latencies, 50),
        "latency_p95_s": percentile(latencies, 95),
        "latency_max_s": max(latencies) if latencies else None,
        "send_p50_s": percentile(send_times, 50),
        "send_p95_s": percentile(send_times, 95),
        "lost_messages": lost,
        "lost_receipts": lost_receipts,
        "limited_syncs": run["limited"],
        "sync_errors": run["sync_errors"],
        "drain_seconds": run["drain_seconds"],
    }


def rounds_plan(rounds: int, rates: list[float]) -> list[tuple[int, float, str]]:
    """(round, rate, topology) in running order: each round runs every rate in both topologies; the topologies'
    order alternates between rounds and between consecutive rates, so neither always runs first on a machine
    whose load drifts."""
    out = []
    for i in range(rounds):
        for k, rate in enumerate(rates):
            order = ("monolith", "workers") if (i + k) % 2 == 0 else ("workers", "monolith")
            out += [(i, rate, t) for t in order]
    return out


# -- /proc ----------------------------------------------------------------------------------------------------
def parse_stat(text: str) -> dict[str, int]:
    """/proc/<pid>/stat (proc(5)): the fields after the command name, which may hold spaces and parentheses."""
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17
    return {"ppid": int(fields[1]), "utime": int(fields[11]), "stime": int(fields[12]), "cutime": int(fields[13]),
            "cstime": int(fields[14])}


def parse_rss_kib(status: str) -> int:
    """VmRSS of /proc/<pid>/status in KiB (0 for a process without memory, a kernel thread or a zombie)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def parse_run_delay_ns(schedstat: str) -> int:
    """/proc/<pid>/task/<tid>/schedstat (the kernel's Documentation/scheduler/sched-stats.rst): time on a CPU, time
    spent runnable waiting on a run queue, timeslices, the first two in ns: the second."""
    return int(schedstat.split()[1])


def run_delay_ns(task_dir: Path) -> int:
    """The run-queue wait of every live thread of one process (Synapse's database calls run on a thread pool;
    a thread that has ended takes its wait with it)."""
    total = 0
    for task in task_dir.iterdir():
        try:
            total += parse_run_delay_ns((task / "schedstat").read_text())
        except (OSError, IndexError, ValueError):  # ended while being read
            continue
    return total


def descendants(root: int, parents: dict[int, int]) -> list[int]:
    """``root`` and every process below it, from pid -> ppid."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out.append(pid)
        todo += children.get(pid, [])
    return out


def snapshot(proc: Path = Path("/proc")) -> dict[int, dict[str, int]]:
    """Every process's stat fields, RSS (KiB) and run-queue wait (ns, all its threads), read once."""
    out = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = parse_stat((entry / "stat").read_text())
            stat["rss_kib"] = parse_rss_kib((entry / "status").read_text())
            stat["run_delay_ns"] = run_delay_ns(entry / "task")
        except (OSError, IndexError, ValueError):  # gone while being read
            continue
        out[int(entry.name)] = stat
    return out


def group_usage(snap: dict[int, dict[str, int]], root: int) -> dict[str, float]:
    """A process and its descendants at one instant: RSS of the root alone and of the whole group (MiB), CPU
    seconds of the group (its live members' own, plus the root's reaped children's), seconds its live members'
    threads spent runnable but waiting for a CPU (the kernel keeps no such total for reaped children), process
    count."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [p for p in descendants(root, {p: s["ppid"] for p, s in snap.items()}) if p in snap]
    if root not in snap:
        return {"rss_mib": 0.0, "group_rss_mib": 0.0, "cpu_seconds": 0.0, "cpu_wait_seconds": 0.0, "processes": 0}
    cpu = sum(snap[p]["utime"] + snap[p]["stime"] for p in pids) + snap[root]["cutime"] + snap[root]["cstime"]
    return {"rss_mib": snap[root]["rss_kib"] / 1024, "group_rss_mib": sum(snap[p]["rss_kib"] for p in pids) / 1024,
            "cpu_seconds": cpu / tick, "cpu_wait_seconds": sum(snap[p].get("run_delay_ns", 0) for p in pids) / 1e9,
            "processes": len(pids)}


def machine_busy(stat_before: str, stat_after: str) -> float:
    """The fraction of all CPUs' time that was busy between two reads of /proc/stat (its first "cpu" line)."""
    def totals(text: str) -> tuple[int, int]:
        values = [int(v) for v in text.splitlines()[0].split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values[:8]), idle
    (total0, idle0), (total1, idle1) = totals(stat_before), totals(stat_after)
    return 1 - (idle1 - idle0) / (total1 - total0) if total1 > total0 else 0.0
