"""Threads per cluster (reconcile/pools.py): a cluster that hangs holds its own threads only, a pass stops waiting
for a member as soon as it is known not to answer, and a cluster's deletes go out in parallel and stop once it
does not answer. No cluster: the hung member is a loopback listener that never answers."""

from __future__ import annotations

import threading
import time


from sovereign_suite.reconcile.apiclient import ApiClient
from sovereign_suite.reconcile.cache import ClusterCache
from sovereign_suite.reconcile.kube import Kube
from sovereign_suite.reconcile.pools import ClusterPools, each_cluster
from sovereign_suite.reconcile.problems import SuiteKey
from sovereign_suite.reconcile.prune import Pruner
from sovereign_suite.reconcile.targets import LOCAL, Target
from sovereign_suite.reconcile.transport import Deadlines, client_configuration

from .test_transport import Silent


def target(name: str, host: str = "http://127.0.0.1:9", writers: int = 2, requests: int = 2) -> Target:
    cfg = client_configuration()
    cfg.host = host
    kube = Kube(ApiClient(cfg), max_retries=0, deadlines=Deadlines(0.5, 0.5, 1))
    return Target(name, kube, ClusterCache(kube, ()), ClusterPools(name, writers, requests))


def test_a_cluster_whose_threads_all_wait_never_holds_up_another_clusters_work():
    de, fr = target("de-c5"), target("fr-secnumcloud")
    release = threading.Event()
    try:
        # every thread of Germany's pools waits (requests that get no answer)
        stuck = [de.pools.submit(lambda: de.pools.map(lambda _: release.wait(10), range(4))) for _ in range(2)]
        time.sleep(0.2)
        started = time.monotonic()
        done = fr.pools.submit(lambda: fr.pools.map(lambda x: x * 2, range(8))).result(timeout=5)
        assert done == [0, 2, 4, 6, 8, 10, 12, 14] and time.monotonic() - started < 1.0
        assert not any(f.done() for f in stuck)
    finally:
        release.set()
        de.stop()
        fr.stop()


def test_a_pass_stops_waiting_for_a_member_that_stopped_answering_and_tells_it_to_stop():
    local, de = target(LOCAL), target("de-c5")
    told = []

    def write(t: Target, cancel: threading.Event) -> str:
        if t is local:
            return "local written"
        told.append(cancel.wait(10))  # Germany's part waits until the pass tells it to stop (or 10 s)
        return "late"

    threading.Timer(0.3, lambda: de.kube.reachability.failed("GET x: no answer in time")).start()
    started = time.monotonic()
    out = each_cluster([local, de], lambda t: t, write, lambda t: f"given up: {t.problem().reason}", poll=0.05)
    assert out == ["local written", "given up: ClusterUnreachable"]
    assert time.monotonic() - started < 1.5
    de.pools.writes.shutdown(wait=True)
    assert told == [True]  # told to stop: it sends nothing more
    local.stop()
    de.stop()


def test_the_operators_own_cluster_is_always_waited_for():
    local = target(LOCAL)
    local.kube.reachability.failed("no answer")  # never a reason to leave the operator's own cluster
    assert not local.unanswered() and local.problem() is None
    assert each_cluster([local], lambda t: t, lambda t, c: "done", lambda t: "given up", poll=0.01) == ["done"]
    local.stop()


def test_a_stopped_pool_still_runs_what_a_pass_in_flight_hands_it():
    t = target("de-c5")
    t.pools.stop()  # credentials rotated: the old target stops while a pass still uses it
    assert t.pools.map(lambda x: x + 1, [1, 2, 3]) == [2, 3, 4]
    assert t.pools.submit(lambda x: x * 3, 5).result(timeout=5) == 15


def test_deletes_go_out_in_parallel_and_none_after_the_cluster_stopped_answering():
    silent = Silent()
    de = target("de-c5", host=f"http://127.0.0.1:{silent.port}", requests=2)
    try:
        objs = {}
        for i in range(6):
            obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}", "namespace": "eu-de"}}
            objs[("", "ConfigMap", "eu-de", f"c{i}")] = obj
        pruner = Pruner(de, SuiteKey("ns", "eu"), "uid", dict(objs))
        started = time.monotonic()
        pruner.delete(list(objs.values()), retain=False)
        took = time.monotonic() - started
        assert silent.accepted == 2  # the pool's two requests; the four others were never sent
        assert 0.4 < took < 1.5, took  # one read deadline, not six
        assert [p.reason for p in pruner.problems] == ["ClusterUnreachable"] * 6
        assert pruner.writes == 0 and len(pruner.live) == 6  # nothing counted as deleted
    finally:
        de.stop()
        silent.close()


def test_shared_pools_a_hung_member_holds_at_most_its_cap_and_the_threads_do_not_grow_with_members():
    """The operator's pools are shared by every cluster (pools.SharedPools): a member whose requests all wait holds
    its cap of threads; 27 members' work runs on the same fixed threads."""
    from sovereign_suite.reconcile.pools import SharedPools

    shared = SharedPools(writers=2, requests=4)
    release = threading.Event()
    views = [ClusterPools(f"m{i}", 2, 4, shared=shared) for i in range(27)]
    hung = views[0]
    try:
        stuck = [hung.submit(lambda: hung.map(lambda _: release.wait(10), range(8))) for _ in range(4)]
        time.sleep(0.3)
        assert shared.writes.running(hung._key) == 2 and shared.requests.running(hung._key) == 4
        started = time.monotonic()
        done = [v.submit(lambda v=v: v.map(lambda x: x + 1, range(5))) for v in views[1:]]
        assert all(f.result(timeout=10) == [1, 2, 3, 4, 5] for f in done)
        assert time.monotonic() - started < 3.0 and not any(f.done() for f in stuck)
        assert shared.writes.thread_count() <= 3 and shared.requests.thread_count() <= 6
    finally:
        release.set()
        shared.stop()
