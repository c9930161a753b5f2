"""A workload whose pod is scheduled but stuck (CrashLoopBackOff, image not pullable...) shows why in the
component's status: the container's waiting reason, its last exit and termination message (in the operator's own
cluster; a member cluster's container gives its reason and exit code only)."""

from __future__ import annotations

import json

from sovereign_suite.reconcile.cache import strip_pod
from sovereign_suite.reconcile.conditions import Findings, conditions, transitions
from sovereign_suite.reconcile.observe import component_health, container_reason
from sovereign_suite.reconcile.status import tenants_status

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


# ---- member clusters: the hub gets the reason and exit code, never the log text (issue 22, item 5) ------------

def test_a_member_pod_keeps_reason_and_exit_code_without_the_log_tail():
    stored = strip_pod(_pod("CrashLoopBackOff"), log_text=False)
    assert stored["status"]["containerStatuses"][0]["lastTerminated"] == {"reason": "Error", "exitCode": 1}
    reason, message = container_reason([stored])
    assert reason == "CrashLoopBackOff" and "container synapse" in message and "last exit 1 (Error)" in message
    assert "password authentication" not in message and "Traceback" not in message


def test_member_caches_keep_no_log_text_and_the_operators_own_cache_keeps_it():
    from kubernetes import client

    from sovereign_suite.reconcile.context import OperatorContext, Settings
    from sovereign_suite.reconcile.kube import Kube

    kube = Kube(client.ApiClient(client.Configuration()))  # never called: no cache here is started
    ctx = OperatorContext(kube, Settings())
    try:
        member = ctx._member_cache(kube, "fr-secnumcloud")  # noqa: SLF001 - what Members builds for a member
        local_text = json.dumps(ctx.cache.strip_pod(_pod("CrashLoopBackOff")))
        member_text = json.dumps(member.strip_pod(_pod("CrashLoopBackOff")))
        assert "password authentication failed" in local_text
        assert "password authentication failed" not in member_text and "Traceback" not in member_text
        assert '"exitCode": 1' in member_text and '"reason": "Error"' in member_text
    finally:
        ctx.shutdown()


def test_a_member_tenants_status_conditions_and_events_carry_no_log_text():
    """From the member's pod to what the hub writes: the tenant's component status, the conditions and the
    Events of their transitions."""
    deployment = {"kind": "Deployment", "metadata": {"name": "synapse", "namespace": "s-fr", "generation": 1},
                  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "synapse"}}},
                  "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1}}
    h = component_health("FR", "s-fr", "matrix", [deployment],
                         pods_of=lambda _: [strip_pod(_pod("CrashLoopBackOff"), log_text=False)])
    verdict = conditions(Findings(1, health=(h,)))
    old = [{"type": "Ready", "status": "True", "reason": "Ready", "message": "", "lastTransitionTime": "t"}]
    events = transitions(old, verdict.conditions)
    components = tenants_status([h], [("FR", "s-fr")], {}, {"s-fr": {"cluster": "fr", "clusterReachable": True}})
    ready = next(c for c in verdict.conditions if c["type"] == "Ready")
    assert ready["reason"] == "ComponentsNotReady" and "CrashLoopBackOff" in ready["message"]
    assert "last exit 1 (Error)" in ready["message"] and events and "last exit 1 (Error)" in events[0][2]
    for text in (json.dumps(verdict.conditions), json.dumps(events), json.dumps(components)):
        assert "password authentication failed" not in text and "Traceback" not in text
