"""The figures of bench/synapse_load.py (bench/synapse_load_stats.py): latency, loss, /proc parsing."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "synapse_load_stats", Path(__file__).parents[1] / "bench" / "synapse_load_stats.py")
stats = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stats)

CLIENTS = [{"name": "a", "room": "!r1"}, {"name": "b", "room": "!r1"}, {"name": "c", "room": "!r1"},
           {"name": "d", "room": "!r2"}, {"name": "e", "room": "!r2"}]


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert stats.percentile(values, 50) == 50
    assert stats.percentile(values, 95) == 95
    assert stats.percentile([3.0, 1.0, 2.0], 100) == 3.0
    assert stats.percentile([7.0], 95) == 7.0
    assert stats.percentile([], 50) is None


def test_latency_from_send_start_to_each_other_members_first_sync():
    run = {"sent": [["a", "t1", "!r1", 10.0, 10.2, 200], ["d", "t2", "!r2", 11.0, 11.1, 200]],
           "seen": [["b", "t1", 10.5], ["c", "t1", 10.9], ["b", "t1", 12.0],  # b's second sight is not a sample
                    ["e", "t2", 11.3], ["a", "t1", 10.3]],  # the sender's own sync is not a sample
           "limited": 0, "sync_errors": 0, "window": [10.0, 20.0], "drain_seconds": 1.0}
    f = stats.load_figures(run, CLIENTS)
    assert f["accepted"] == 2 and f["accepted_per_second"] == pytest.approx(0.2)
    assert f["latency_samples"] == 3
    assert f["latency_p50_s"] == pytest.approx(0.5) and f["latency_max_s"] == pytest.approx(0.9)
    assert f["lost_messages"] == 0 and f["lost_receipts"] == 0


def test_a_message_missing_for_one_member_is_lost_and_refused_sends_are_not():
    run = {"sent": [["a", "t1", "!r1", 1.0, 1.1, 200], ["a", "t2", "!r1", 2.0, 2.1, 200],
                    ["d", "t3", "!r2", 3.0, 3.1, 429], ["e", "t4", "!r2", 4.0, 4.1, 0]],
           "seen": [["b", "t1", 1.5], ["c", "t1", 1.6], ["b", "t2", 2.5]],
           "limited": 1, "sync_errors": 2, "window": [0.0, 5.0], "drain_seconds": 30.0}
    f = stats.load_figures(run, CLIENTS)
    assert f["sent"] == 4 and f["accepted"] == 2
    assert f["statuses"] == {"200": 2, "429": 1, "0": 1}
    assert f["lost_messages"] == 1 and f["lost_receipts"] == 1  # t2 never reached c
    assert f["limited_syncs"] == 1 and f["sync_errors"] == 2


def test_stat_fields_after_a_command_with_spaces_and_parentheses():
    line = "4242 (synapse (worker) 1) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 5 0 1000 0 0\n"
    assert stats.parse_stat(line) == {"ppid": 17, "utime": 250, "stime": 50, "cutime": 7, "cstime": 3}
    assert stats.parse_rss_kib("Name:\tpython\nVmRSS:\t  204800 kB\nThreads:\t5\n") == 204800
    assert stats.parse_rss_kib("Name:\tkthreadd\n") == 0


def test_a_group_is_its_root_and_every_descendant():
    parents = {1: 0, 10: 1, 11: 10, 12: 10, 13: 11, 20: 1}
    assert sorted(stats.descendants(10, parents)) == [10, 11, 12, 13]
    tick = os.sysconf("SC_CLK_TCK")
    snap = {10: {"ppid": 1, "utime": tick, "stime": tick, "cutime": tick, "cstime": 0, "rss_kib": 1024},
            11: {"ppid": 10, "utime": tick, "stime": 0, "cutime": 0, "cstime": 0, "rss_kib": 2048},
            20: {"ppid": 1, "utime": 5 * tick, "stime": 0, "cutime": 0, "cstime": 0, "rss_kib": 9999}}
    snap[10]["run_delay_ns"], snap[11]["run_delay_ns"], snap[20]["run_delay_ns"] = 250_000_000, 500_000_000, 10**9
    usage = stats.group_usage(snap, 10)
    assert usage == {"rss_mib": 1.0, "group_rss_mib": 3.0, "cpu_seconds": 4.0, "cpu_wait_seconds": 0.75,
                     "processes": 2}
    assert stats.group_usage(snap, 99)["processes"] == 0


def test_this_process_is_in_a_snapshot_of_proc():
    snap = stats.snapshot()
    assert snap[os.getpid()]["rss_kib"] > 0 and snap[os.getpid()]["ppid"] == os.getppid()
    assert snap[os.getpid()]["run_delay_ns"] >= 0


def test_run_queue_wait_is_the_second_schedstat_field_summed_over_threads(tmp_path):
    # /proc/<pid>/task/<tid>/schedstat: "<ns on a CPU> <ns waiting on a run queue> <timeslices>"
    assert stats.parse_run_delay_ns("175140 98765 3\n") == 98765
    for tid, line in (("7", "100 2000 1\n"), ("8", "300 5000 2\n")):
        (tmp_path / tid).mkdir()
        (tmp_path / tid / "schedstat").write_text(line)
    (tmp_path / "9").mkdir()  # a thread that ended between the listing and the read
    assert stats.run_delay_ns(tmp_path) == 7000


def test_summary_gives_the_synapse_processes_cpu_wait_and_the_wait_per_message():
    bench = _load_bench()

    def run(topology: str, waits: dict[str, float], accepted: float, p95: float) -> dict:
        procs = {n: {"cpu_cores": 0.1, "cpu_wait_cores": w, "rss_mib_peak": 100.0} for n, w in waits.items()}
        return {"topology": topology, "processes": procs,
                "machine": {"lab_and_client_cpu_wait_cores": sum(waits.values())},
                "figures": {"accepted_per_second": accepted, "latency_p50_s": 0.1, "latency_p95_s": p95,
                            "lost_messages": 0}}

    s = bench.summarise([
        run("monolith", {"main": 0.01, "postgres": 0.02, "load-client": 0.03}, 6.0, 0.2),
        run("workers", {"main": 0.02, "synapse-sync-0": 0.04, "synapse-redis": 0.5, "postgres": 0.06}, 6.0, 0.3)])
    assert s["monolith"]["synapse_cpu_wait_cores"] == pytest.approx(0.01)
    assert s["workers"]["synapse_cpu_wait_cores"] == pytest.approx(0.06)  # Redis is not a Synapse process
    assert s["monolith"]["cpu_wait_ms_per_message"] == pytest.approx(10.0)  # 0.06 s/s over 6 messages/s
    assert s["workers"]["cpu_wait_ms_per_message"] == pytest.approx(620 / 6)
    assert s["ratio_p95_workers_over_monolith"] == pytest.approx(1.5)

    # a round that accepted nothing has no wait per message (and no latency): the other rounds still give one
    idle = run("monolith", {"main": 0.01, "postgres": 0.0, "load-client": 0.0}, 0.0, 0.2)
    idle["figures"]["latency_p95_s"] = None
    s = bench.summarise([run("monolith", {"main": 0.01, "postgres": 0.02, "load-client": 0.03}, 6.0, 0.2), idle,
                         run("workers", {"main": 0.02}, 6.0, 0.3)])
    assert s["monolith"]["cpu_wait_ms_per_message"] == pytest.approx(10.0)
    assert s["monolith"]["latency_p95_s"] == pytest.approx(0.2)


def test_machine_busy_from_two_reads_of_proc_stat():
    before = "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n"
    after = "cpu  200 0 200 1200 100 0 0 0 0 0\ncpu0 1 2 3 4\n"
    assert stats.machine_busy(before, after) == pytest.approx(200 / 700)
    assert stats.machine_busy(before, before) == 0.0


def test_a_sweep_runs_every_rate_in_both_topologies_and_alternates_which_goes_first():
    plan = stats.rounds_plan(2, [0.25, 1.0])
    assert plan == [(0, 0.25, "monolith"), (0, 0.25, "workers"), (0, 1.0, "workers"), (0, 1.0, "monolith"),
                    (1, 0.25, "workers"), (1, 0.25, "monolith"), (1, 1.0, "monolith"), (1, 1.0, "workers")]
    assert stats.rounds_plan(1, [2.0]) == [(0, 2.0, "monolith"), (0, 2.0, "workers")]


_client_spec = importlib.util.spec_from_file_location(
    "synapse_load_client", Path(__file__).parents[1] / "bench" / "synapse_load_client.py")
load_client = importlib.util.module_from_spec(_client_spec)
_client_spec.loader.exec_module(load_client)


def first(offsets, n: int) -> list[float]:
    return [next(offsets) for _ in range(n)]


def test_lockstep_sends_every_client_at_the_same_instants():
    a = first(load_client.send_offsets(2.0, "lockstep", "0:u0"), 4)
    assert a == [0.0, 0.5, 1.0, 1.5] == first(load_client.send_offsets(2.0, "lockstep", "0:u7"), 4)


def test_poisson_streams_are_independent_per_client_reproducible_and_of_the_asked_mean_rate():
    u0 = first(load_client.send_offsets(0.5, "poisson", "0:u0"), 4000)
    assert u0 == first(load_client.send_offsets(0.5, "poisson", "0:u0"), 4000)  # the same seed, the same schedule
    u1 = first(load_client.send_offsets(0.5, "poisson", "0:u1"), 4000)
    assert u0[:5] != u1[:5] and u0[:5] != first(load_client.send_offsets(0.5, "poisson", "1:u0"), 5)
    assert all(b > a for a, b in zip(u0, u0[1:])) and u0[0] > 0  # no client sends at the start instant
    gaps = [b - a for a, b in zip([0.0, *u0], u0)]
    assert sum(gaps) / len(gaps) == pytest.approx(2.0, rel=0.05)  # mean gap 1/rate
    # exponential: the share of gaps longer than the mean is e^-1 (0.37), where even spacing has none
    assert sum(g > 2.0 for g in gaps) / len(gaps) == pytest.approx(0.368, abs=0.03)


def test_an_unknown_arrival_process_is_refused_by_name():
    with pytest.raises(ValueError, match="arrivals: 'uniform' is not one of poisson, lockstep"):
        load_client.send_offsets(1.0, "uniform", "0:u0")


def _load_bench():
    import sys
    bench = Path(__file__).parents[1] / "bench"
    sys.path.insert(0, str(bench))  # the bench imports its neighbours (lib, synapse_load_stats) by name
    try:
        spec = importlib.util.spec_from_file_location("synapse_load", bench / "synapse_load.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(bench))


def test_workers_option_takes_a_preset_or_counts_and_refuses_a_monolith_or_a_typo():
    bench = _load_bench()
    assert bench.parse_workers("small") == {"size": "small"}
    assert bench.parse_workers('{"sync": 2}') == {"sync": 2}
    with pytest.raises(SystemExit, match="no worker runs"):
        bench.parse_workers("monolith")
    with pytest.raises(SystemExit, match="no worker runs"):
        bench.parse_workers('{"sync": 0}')
    with pytest.raises(ValueError, match="synch"):  # the API model refuses an unknown field by its name
        bench.parse_workers('{"synch": 2}')
    with pytest.raises(ValueError, match="size"):
        bench.parse_workers("tiny")
