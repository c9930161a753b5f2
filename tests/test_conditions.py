"""The condition matrix (reconcile/conditions.py) as a table: findings in, conditions out."""

from __future__ import annotations

import pytest

from sovereign_suite.reconcile.conditions import Findings, conditions, merge_conditions, transitions
from sovereign_suite.reconcile.observe import ComponentHealth
from sovereign_suite.reconcile.problems import ObjectKey, degraded, stalled

READY = ComponentHealth("fr", "s-fr", "matrix", desired=2, ready=2)
ROLLING = ComponentHealth("fr", "s-fr", "matrix", desired=2, ready=1, reason="Progressing", message="waiting",
                          waiting=["Deployment/synapse"])
UNSCHED = ComponentHealth("fr", "s-fr", "llm", desired=1, ready=0, reason="Unschedulable", message="0/4 nodes",
                          waiting=["Deployment/vllm-x"])
DENIED = degraded("Forbidden", "403 Forbidden: denied", ObjectKey("apps", "Deployment", "s-fr", "synapse"))
INVALID = stalled("InvalidSpec", "spec.domain: bad")


def table(f: Findings) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in conditions(f).conditions}


@pytest.mark.parametrize("findings, expected", [
    (Findings(1, health=(READY,)),
     {"Ready": ("True", "Ready"), "Reconciling": ("False", "Converged"), "Stalled": ("False", "NotStalled"),
      "Degraded": ("False", "NotDegraded")}),
    (Findings(1, health=(ROLLING,)),
     {"Ready": ("False", "ComponentsNotReady"), "Reconciling": ("True", "Progressing"),
      "Stalled": ("False", "NotStalled"), "Degraded": ("False", "NotDegraded")}),
    (Findings(1, problems=(INVALID,), rendered=False),
     {"Ready": ("False", "InvalidSpec"), "Reconciling": ("False", "InvalidSpec"), "Stalled": ("True", "InvalidSpec"),
      "Degraded": ("False", "NotDegraded")}),
    # a failed request: never Ready, even if every component looked ready
    (Findings(1, problems=(DENIED,), health=(READY,)),
     {"Ready": ("False", "Forbidden"), "Reconciling": ("True", "Progressing"), "Stalled": ("False", "NotStalled"),
      "Degraded": ("True", "Forbidden")}),
    (Findings(1, health=(UNSCHED,)),
     {"Ready": ("False", "ComponentsNotReady"), "Reconciling": ("True", "Progressing"),
      "Stalled": ("False", "NotStalled"), "Degraded": ("True", "Unschedulable")}),
    (Findings(1, health=(READY,), gpu_problems=(("InsufficientGPU", "FR/llm/m: needs 2"),)),
     {"Ready": ("True", "Ready"), "Reconciling": ("False", "Converged"), "Stalled": ("False", "NotStalled"),
      "Degraded": ("True", "InsufficientGPU")}),
    (Findings(1, health=(READY,), waiting=("Deployment/s-fr/docs-backend waits for Job docs-migrate-1",)),
     {"Ready": ("False", "Progressing"), "Reconciling": ("True", "Progressing"), "Stalled": ("False", "NotStalled"),
      "Degraded": ("False", "NotDegraded")}),
    (Findings(1, health=(ROLLING,), paused=True),
     {"Ready": ("False", "Paused"), "Reconciling": ("False", "Paused"), "Stalled": ("False", "NotStalled"),
      "Degraded": ("False", "NotDegraded")}),
    (Findings(1, deleting=True),
     {"Ready": ("False", "Terminating"), "Reconciling": ("True", "Progressing"), "Stalled": ("False", "NotStalled"),
      "Degraded": ("False", "NotDegraded")}),
    (Findings(1, problems=(DENIED,), deleting=True),
     {"Ready": ("False", "Terminating"), "Reconciling": ("True", "Progressing"), "Stalled": ("False", "NotStalled"),
      "Degraded": ("True", "Forbidden")}),
    # stalled wins over degraded
    (Findings(1, problems=(DENIED, INVALID)),
     {"Ready": ("False", "InvalidSpec"), "Reconciling": ("False", "InvalidSpec"), "Stalled": ("True", "InvalidSpec"),
      "Degraded": ("False", "NotDegraded")}),
])
def test_condition_table(findings, expected):
    assert table(findings) == expected


def test_messages_name_the_object_and_the_api_servers_words():
    conds = {c["type"]: c for c in conditions(Findings(3, problems=(DENIED,))).conditions}
    assert conds["Degraded"]["message"] == "Deployment/s-fr/synapse: 403 Forbidden: denied"
    assert all(c["observedGeneration"] == 3 for c in conds.values())


def test_requeue_hints():
    assert conditions(Findings(1, health=(ROLLING,))).progressing
    assert not conditions(Findings(1, health=(READY,))).progressing
    assert conditions(Findings(1, health=(UNSCHED,))).blocked  # waits for capacity, not for time
    assert not conditions(Findings(1, health=(ROLLING,), paused=True)).progressing


def test_long_problem_lists_are_cut_with_a_count():
    many = tuple(degraded("Forbidden", f"denied {i}") for i in range(12))
    msg = {c["type"]: c for c in conditions(Findings(1, problems=many)).conditions}["Degraded"]["message"]
    assert msg.endswith("; and 4 more") and "denied 7" in msg and "denied 8" not in msg


def test_last_transition_time_is_kept_while_the_status_holds():
    old = [{"type": "Ready", "status": "True", "reason": "Ready", "lastTransitionTime": "T0"}]
    new = conditions(Findings(1, health=(READY,))).conditions
    merged = merge_conditions(old, new, "T1")
    assert {c["type"]: c["lastTransitionTime"] for c in merged} == {
        "Ready": "T0", "Reconciling": "T1", "Stalled": "T1", "Degraded": "T1"}


def test_events_on_transitions_only():
    ready = merge_conditions([], conditions(Findings(1, health=(READY,))).conditions, "T")
    assert transitions([], ready) == [("Normal", "Ready", "1 components ready")]
    assert transitions(ready, ready) == []
    denied = conditions(Findings(1, problems=(DENIED,))).conditions
    types = [(t, r) for t, r, _ in transitions(ready, denied)]
    assert types == [("Warning", "Forbidden"), ("Warning", "Forbidden")]  # Ready turned False, Degraded True
