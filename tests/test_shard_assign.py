"""Sharding's pure parts (shard/assign.py, handoff.py, fence.py): the suite -> shard hash, the shard -> replica map
(deterministic, balanced, moving few shards), the liveness of heartbeats, the campaigns to start and stop, and
the per-suite write fence carried to the pools' threads."""

from __future__ import annotations

import math
import threading

import pytest

from sovereign_suite.leader.elector import Leadership, NotLeading
from sovereign_suite.leader.timing import Record
from sovereign_suite.reconcile.pools import ClusterPools
from sovereign_suite.reconcile.problems import SuiteKey
from sovereign_suite.shard.assign import assign, fnv1a32, shard_of, wanted
from sovereign_suite.shard.fence import ShardFence, current_suite, working_on
from sovereign_suite.shard.handoff import Peers, moves


def test_fnv1a32_matches_the_reference_vectors():
    # FNV-1a 32 test vectors (Go's hash/fnv tests, golden32a): "" and "a"
    assert fnv1a32("") == 0x811C9DC5
    assert fnv1a32("a") == 0xE40C292C
    assert fnv1a32("foobar") == 0xBF9CF968


def test_a_suite_keeps_its_shard_and_the_shards_are_spread():
    keys = [("ns-%d" % (i % 7), "suite-%d" % i) for i in range(800)]
    shards = [shard_of(ns, name, 8) for ns, name in keys]
    assert shards == [shard_of(ns, name, 8) for ns, name in keys]
    counts = [shards.count(s) for s in range(8)]
    assert min(counts) > 100 * 0.7 and max(counts) < 100 * 1.3, counts
    with pytest.raises(ValueError):
        shard_of("a", "b", 0)


def test_assign_is_deterministic_whatever_the_order_and_balanced_within_one():
    replicas = [f"host-{i}_uuid-{i}" for i in range(3)]
    one = assign(8, replicas)
    assert one == assign(8, list(reversed(replicas))) == assign(8, set(replicas))
    assert sorted(one) == list(range(8))
    loads = [list(one.values()).count(r) for r in replicas]
    assert max(loads) - min(loads) <= 1 and sum(loads) == 8
    for n in range(1, 12):  # balanced within one shard whatever the numbers
        got = assign(16, [f"r{i}_x" for i in range(n)])
        per = [list(got.values()).count(f"r{i}_x") for i in range(n)]
        assert sorted(got) == list(range(16)) and max(per) - min(per) <= 1, (n, per)
    assert assign(8, []) == {}


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_a_replica_coming_or_going_moves_few_shards(n):
    shards = 16
    before = [f"replica_{i}" for i in range(n)]
    old = assign(shards, before)
    new = assign(shards, before + ["replica_new"])
    moved = [s for s in range(shards) if old[s] != new[s]]
    # the newcomer gets its share, and at most as many again move between the others (pushed by the bound)
    share = sum(1 for s in new if new[s] == "replica_new")
    assert share >= shards // (n + 1)
    assert len(moved) <= 2 * math.ceil(shards / (n + 1)), (old, new)
    gone = assign(shards, before[1:])  # replica_0 dies: its shards go, few others move
    moved = [s for s in range(shards) if old[s] != gone[s] and old[s] != "replica_0"]
    assert len(moved) <= math.ceil(shards / n), (old, gone)
    assert "replica_0" not in gone.values()


def test_wanted_counts_the_deciding_replica_as_alive_and_the_replicas_cover_every_shard():
    peers = {"a_1", "b_2"}
    a, b = wanted(8, peers, "a_1"), wanted(8, peers, "b_2")
    assert a | b == set(range(8)) and not a & b
    assert wanted(8, set(), "a_1") == set(range(8))  # alone: every shard
    assert wanted(8, {"b_2"}, "a_1") == a  # itself added when missing from its own view


def test_peers_are_alive_while_their_heartbeat_changes_on_the_observers_clock():
    peers = Peers()
    beat = Record("b_2", 10, 0, "t0", "t0")
    peers.saw({"hb-b": beat}, now=100.0)
    assert peers.alive(105.0) == {"b_2"}
    peers.saw({"hb-b": beat}, now=109.0)  # unchanged: the clock runs from the first sighting
    assert peers.alive(109.5) == {"b_2"} and peers.alive(110.0) == set()
    peers.saw({"hb-b": Record("b_2", 10, 0, "t0", "t1")}, now=111.0)  # renewed: alive again
    assert peers.alive(120.0) == {"b_2"}
    peers.saw({"hb-b": Record("", 1, 0, "t2", "t2")}, now=121.0)  # released by a graceful stop: gone at once
    assert peers.alive(121.0) == set()
    peers.saw({}, now=122.0)
    assert peers.alive(122.0) == set()


def test_moves_start_wanted_campaigns_and_stop_the_others():
    m = moves({0, 1, 2}, {2, 3})
    assert m.start == {0, 1} and m.stop == {3}
    assert moves(set(), set()).start == frozenset()


def key_in_shard(shard: int, shards: int = 4) -> SuiteKey:
    return next(SuiteKey("ns", f"s{i}") for i in range(1000) if shard_of("ns", f"s{i}", shards) == shard)


def test_the_fence_lets_a_write_out_only_for_a_suite_of_a_held_shard():
    clock = [0.0]
    fence = ShardFence(4)
    held, other = key_in_shard(1), key_in_shard(2)
    lead = Leadership(lambda: clock[0], until=5.0)
    fence.set(1, lead)
    with pytest.raises(NotLeading, match="for no suite"):
        fence.check("PATCH x")  # outside a pass
    with working_on(held):
        fence.check("PATCH x")
    with working_on(other), pytest.raises(NotLeading, match="shard 2"):
        fence.check("PATCH x")
    assert fence.held() == {1}
    clock[0] = 5.0  # the renew deadline passed: closed by the clock alone
    with working_on(held), pytest.raises(NotLeading):
        fence.check("PATCH x")
    assert fence.held() == set() and not fence.may_write(held)
    assert current_suite() is None


def test_the_pools_carry_the_suite_of_the_pass_to_their_threads():
    pools = ClusterPools("member", writers=2, requests=2)
    seen: list = []
    try:
        with working_on(SuiteKey("ns", "a")):
            seen.append(pools.submit(lambda: (current_suite(), threading.current_thread().name)).result())
            seen.extend(pools.map(lambda i: (current_suite(), threading.current_thread().name), [1, 2, 3]))
        assert {s for s, _ in seen} == {SuiteKey("ns", "a")}
        assert any(t != threading.current_thread().name for _, t in seen)  # it ran on the pools' threads
        assert pools.submit(current_suite).result() is None  # not leaked into the next task
    finally:
        pools.stop()


def test_a_dead_replicas_heartbeat_is_stale_only_long_after_it_expired():
    peers = Peers()
    peers.saw({"hb-b": Record("b_2", 10, 0, "t0", "t0"), "hb-c": Record("c_3", 10, 0, "t0", "t0")}, now=0.0)
    peers.saw({"hb-b": Record("b_2", 10, 0, "t0", "t0"), "hb-c": Record("c_3", 10, 0, "t0", "t69")}, now=69.0)
    assert peers.stale(69.9, grace=60) == set()
    assert peers.stale(70.0, grace=60) == {"hb-b"}  # c renewed at 69: alive


def test_run_takes_shards_with_the_lease_flags_and_refuses_them_with_leader_election():
    from sovereign_suite.api.validation import InputError
    from sovereign_suite.cli import build_parser
    from sovereign_suite.reconcile.runner import leader_settings

    parse = build_parser().parse_args
    on = leader_settings(parse(["run", "--shards", "8", "--leader-elect-resource-namespace", "ops"]))
    assert on == {"shards": 8, "lease_name": "sovereign-suite-operator", "lease_namespace": "ops",
                  "lease_duration": 10.0, "renew_deadline": 6.0, "retry_period": 1.0}
    with pytest.raises(InputError) as err:
        leader_settings(parse(["run", "--shards", "8", "--leader-elect"]))
    assert "--shards" in str(err.value.problems[0]) and "not with --leader-elect" in str(err.value.problems[0])
    with pytest.raises(InputError, match="--shards"):
        leader_settings(parse(["run", "--shards", "-1"]))
    with pytest.raises(InputError, match="renew-deadline"):
        leader_settings(parse(["run", "--shards", "2", "--leader-elect-renew-deadline", "12"]))
