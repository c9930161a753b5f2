"""A member that stops answering enqueues its suites once, not once per watch (reconcile/cache.py,
``health_news``): its Reachability enqueues them when it goes down; its watches failing one after the other
afterwards are not news. No cluster: the hung member is a loopback listener that never answers (test_transport.py);
tests/cluster/test_member_hang.py freezes a real member's API server."""

from __future__ import annotations

import threading
import time

from sovereign_suite.reconcile.cache import ClusterCache, health_news
from sovereign_suite.reconcile.transport import Reachability
from sovereign_suite.reconcile.watchloop import WatchLoop

from .test_transport import Silent, kube_for

KINDS = tuple(("v1", f"Kind{i}") for i in range(18))  # about as many child kinds as a member's cache watches


def test_a_watch_failing_is_news_only_while_its_cluster_is_thought_to_answer():
    assert health_news(failing=True, cluster_down=False)  # a refusal (401, 403), or the first to notice
    assert not health_news(failing=True, cluster_down=True)  # its suites were told when the cluster went down
    assert health_news(failing=False, cluster_down=False)  # working again
    assert health_news(failing=False, cluster_down=True)  # working again while another request still waits


def test_a_member_that_does_not_answer_enqueues_its_suites_once_not_once_per_watch():
    silent = Silent()
    loop = WatchLoop("test-watches", list_threads=4, lists_per_cluster=2)
    went_down, health = [], []
    lock = threading.Lock()

    def record(into: list) -> None:
        with lock:
            into.append(time.monotonic())

    kube = kube_for(f"http://127.0.0.1:{silent.port}", max_retries=0,
                    reachability=Reachability(lambda: record(went_down), "member cluster eu-mt"))
    cache = ClusterCache(kube, KINDS, referenceable=False, watches=loop, on_health_change=lambda: record(health))
    try:
        cache.start()
        deadline = time.monotonic() + 15
        while not all(i.last_error for i in cache.informers()) and time.monotonic() < deadline:
            time.sleep(0.05)
        failing = [i for i in cache.informers() if i.last_error]
        assert len(failing) >= len(KINDS)  # every watch found the member does not answer, one after the other
        assert kube.reachability.failure()
        assert len(went_down) == 1  # the member's suites enqueued once, when it was found down
        assert health == []  # and not again for each of its watches failing after that
    finally:
        cache.stop()
        loop.stop()
        silent.close()
