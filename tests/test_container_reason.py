"""A workload whose pod is scheduled but stuck (CrashLoopBackOff, image not pullable...) shows why in the
component's status: the container's waiting reason, its last exit and termination message."""

from __future__ import annotations

from sovereign_suite.reconcile.cache import strip_pod
from sovereign_suite.reconcile.observe import component_health, container_reason

LOG_TAIL = 'psycopg2.OperationalError: connection to server failed: FATAL:  password authentication failed for user "synapse"'


def _pod(waiting_reason: str | None, ready: bool = False) -> dict:
    state = {"waiting": {"reason": waiting_reason, "message": "back-off 40s restarting failed container"}} \
        if waiting_reason else {"running": {}}
    return {"metadata": {"name": "synapse-abc", "namespace": "s-fr", "labels": {"app": "synapse"}},
            "spec": {"nodeName": "real-node", "containers": [{"name": "synapse"}]},
            "status": {"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"}],
                       "initContainerStatuses": [{"name": "database-config", "ready": True}],
                       "containerStatuses": [{"name": "synapse", "ready": ready, "restartCount": 3, "state": state,
                                              "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                                                           "message": "Traceback...\n" + LOG_TAIL}}}]}}


def test_crash_loop_reason_and_log_tail_survive_the_cache():
    pods = [strip_pod(_pod("CrashLoopBackOff"))]
    reason, message = container_reason(pods)
    assert reason == "CrashLoopBackOff"
    assert "container synapse" in message and "last exit 1 (Error)" in message and " ".join(LOG_TAIL.split()) in message


def test_no_reason_for_starting_or_ready_containers():
    assert container_reason([strip_pod(_pod("ContainerCreating"))]) is None
    assert container_reason([strip_pod(_pod(None, ready=True))]) is None
    assert strip_pod(_pod(None, ready=True))["status"]["containerStatuses"] == []  # ready ones are not kept


def test_component_status_names_the_stuck_container():
    deployment = {"kind": "Deployment", "metadata": {"name": "synapse", "namespace": "s-fr", "generation": 1},
                  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "synapse"}}},
                  "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1}}
    h = component_health("FR", "s-fr", "matrix", [deployment], pods_of=lambda _: [strip_pod(_pod("CrashLoopBackOff"))])
    assert not h.is_ready and h.reason == "CrashLoopBackOff" and "password authentication failed" in h.message
