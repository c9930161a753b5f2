"""The operator's metrics (operator/sovereign_suite/metrics.py): values, bounded labels, and no series left
behind by a removed component or a deleted suite."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from prometheus_client import REGISTRY

from sovereign_suite import metrics
from sovereign_suite.reconcile.observe import ComponentHealth
from sovereign_suite.reconcile.problems import stalled


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def series(suite: str) -> list[str]:
    return [f"{s.name}{s.labels}" for m in REGISTRY.collect() for s in m.samples if s.labels.get("suite") == suite]


def outcome(health, ready=True, reasons=(), writes=0, paused=False):
    conds = [{"type": "Ready", "status": "True" if ready else "False"},
             {"type": "Reconciling", "status": "False", "reason": "Paused" if paused else "Converged"}]
    problems = [stalled(r, "m") for r in reasons]
    return SimpleNamespace(status={"conditions": conds}, health=health, problems=problems, writes=writes)


def test_suite_and_component_gauges():
    suite = f"s{uuid.uuid4().hex[:6]}"
    health = [ComponentHealth("fr", f"{suite}-fr", "matrix", desired=3, ready=3),
              ComponentHealth("de", f"{suite}-de", "llm", desired=1, ready=0, reason="Unschedulable",
                              message="0/9 nodes are available", waiting=["Deployment/vllm-small"])]
    metrics.record_pass("ops", suite, outcome(health, ready=False), "success", "event", 0.3)
    assert value("sovereign_suite_ready", suite_namespace="ops", suite=suite) == 0
    assert value("sovereign_suite_paused", suite_namespace="ops", suite=suite) == 0
    fr = dict(suite_namespace="ops", suite=suite, country="FR", component="matrix")
    de = dict(suite_namespace="ops", suite=suite, country="DE", component="llm")
    assert value("sovereign_suite_component_ready", **fr) == 1
    assert value("sovereign_suite_component_replicas_ready", **fr) == 3
    assert value("sovereign_suite_component_ready", **de) == 0
    assert value("sovereign_suite_component_replicas_desired", **de) == 1
    states = {r: value("sovereign_suite_component_reason", **de, reason=r) for r in metrics.COMPONENT_REASONS}
    assert states == {"Ready": 0, "Progressing": 0, "Unschedulable": 1, "JobFailed": 0, "Other": 0}
    assert value("sovereign_suite_component_reason", **fr, reason="Ready") == 1
    # no message, no UID: only the fixed label names
    for m in REGISTRY.collect():
        for s in m.samples:
            if s.labels.get("suite") == suite:
                assert set(s.labels) <= {"suite_namespace", "suite", "country", "component", "reason"}


def test_unknown_component_reason_is_other_and_paused_is_reported():
    suite = f"s{uuid.uuid4().hex[:6]}"
    health = [ComponentHealth("fr", f"{suite}-fr", "docs", desired=1, reason="SchedulingGated")]
    metrics.record_pass("ops", suite, outcome(health, ready=False, paused=True), "success", "timer")
    labels = dict(suite_namespace="ops", suite=suite, country="FR", component="docs")
    assert value("sovereign_suite_component_reason", **labels, reason="Other") == 1
    assert value("sovereign_suite_paused", suite_namespace="ops", suite=suite) == 1


def test_errors_by_suite_and_bounded_reason():
    suite = f"s{uuid.uuid4().hex[:6]}"
    before = value("sovereign_suite_reconcile_total", trigger="timer", result="error") or 0
    metrics.record_pass("ops", suite, outcome([], ready=False,
                                              reasons=["MissingSecret", "MissingSecret", "Whatever"]),
                        "error", "timer", 1.5)
    assert value("sovereign_suite_reconcile_errors_total", suite_namespace="ops", suite=suite,
                 reason="MissingSecret") == 1  # one pass, one count per reason
    assert value("sovereign_suite_reconcile_errors_total", suite_namespace="ops", suite=suite, reason="Other") == 1
    assert value("sovereign_suite_reconcile_total", trigger="timer", result="error") == before + 1
    assert value("sovereign_suite_reconcile_duration_seconds_count", trigger="timer", result="error") >= 1
    metrics.record_pass("ops", suite, outcome([], ready=False, reasons=["UnknownCloud"]), "error", "timer")
    assert value("sovereign_suite_reconcile_errors_total", suite_namespace="ops", suite=suite,
                 reason="UnknownCloud") == 1


def test_exception_is_counted():
    suite = f"s{uuid.uuid4().hex[:6]}"
    before = value("sovereign_suite_reconcile_total", trigger="event", result="exception") or 0
    metrics.record_exception("ops", suite, "event", 0.2)
    assert value("sovereign_suite_reconcile_total", trigger="event", result="exception") == before + 1
    assert value("sovereign_suite_reconcile_errors_total", suite_namespace="ops", suite=suite,
                 reason="Exception") == 1


def test_removed_component_and_deleted_suite_leave_no_series():
    suite, other = f"s{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:6]}"
    both = [ComponentHealth("fr", f"{suite}-fr", "matrix", 1, 1), ComponentHealth("fr", f"{suite}-fr", "jitsi", 2, 2)]
    metrics.record_pass("ops", suite, outcome(both, reasons=["Conflict"], writes=2), "error", "timer",
                        converged_before=True)
    metrics.record_pass("ops", other, outcome(both[:1]), "success", "event")
    assert value("sovereign_suite_drift_corrections_total", suite_namespace="ops", suite=suite) == 2
    metrics.record_pass("ops", suite, outcome(both[:1]), "success", "event")  # jitsi disabled
    assert not [s for s in series(suite) if "'jitsi'" in s]
    assert value("sovereign_suite_component_ready", suite_namespace="ops", suite=suite, country="FR",
                 component="matrix") == 1
    metrics.forget_suite("ops", suite)
    assert series(suite) == []
    assert series(other)  # another suite keeps its series


def test_synapse_worker_types_ready_and_desired_and_their_removal():
    suite = f"s{uuid.uuid4().hex[:6]}"
    matrix = ComponentHealth("fr", f"{suite}-fr", "matrix", desired=9, ready=7,
                             parts={"sync": [1, 2], "event-persister": [0, 2], "media-repository": [1, 1]})
    metrics.record_pass("ops", suite, outcome([matrix], ready=False), "success", "event")
    fr = dict(suite_namespace="ops", suite=suite, country="FR")
    assert value("sovereign_suite_synapse_worker_replicas_ready", **fr, worker_type="sync") == 1
    assert value("sovereign_suite_synapse_worker_replicas_desired", **fr, worker_type="sync") == 2
    assert value("sovereign_suite_synapse_worker_replicas_ready", **fr, worker_type="event-persister") == 0
    assert value("sovereign_suite_synapse_worker_replicas_desired", **fr, worker_type="event-persister") == 2
    # the media worker removed (0 replicas: no StatefulSet, no part): its series go
    matrix.parts.pop("media-repository")
    metrics.record_pass("ops", suite, outcome([matrix], ready=False), "success", "event")
    assert value("sovereign_suite_synapse_worker_replicas_desired", **fr, worker_type="media-repository") is None
    assert value("sovereign_suite_synapse_worker_replicas_desired", **fr, worker_type="sync") == 2
    metrics.forget_suite("ops", suite)
    assert series(suite) == []


def finetune_series(name: str) -> dict[str, float]:
    return {f"{s.name}{{{s.labels.get('phase', '')}}}": s.value for m in REGISTRY.collect() for s in m.samples
            if s.labels.get("finetune") == name}


def test_finetune_gauges_follow_the_status_and_go_with_the_finetune():
    name = f"ft{uuid.uuid4().hex[:6]}"
    spec = {"suite": {"name": "albert"}, "country": "fr", "baseModel": "small"}
    labels = dict(finetune_namespace="dgfip", finetune=name, suite_namespace="dgfip", suite="albert", country="FR")
    metrics.record_finetune("dgfip", name, spec, {"phase": "Training"})
    phases = {p: value("sovereign_suite_finetune_phase", **labels, phase=p) for p in metrics.FINETUNE_PHASES}
    assert phases == {"Pending": 0, "Training": 1, "Evaluating": 0, "Ready": 0, "NotPromoted": 0, "Failed": 0}
    assert value("sovereign_suite_finetune_loss", **labels) is None  # no result yet: no series, never a fake 0
    done = {"phase": "Ready", "step": 40, "totalSteps": 40, "loss": 4.74, "baseEvalLoss": 5.94, "evalLoss": 4.75,
            "tokensPerSecond": 1771.7, "durationSeconds": 19.3, "adapterUri": "s3://b/x/", "conditions": []}
    metrics.record_finetune("dgfip", name, spec, done)
    assert value("sovereign_suite_finetune_phase", **labels, phase="Ready") == 1
    assert value("sovereign_suite_finetune_phase", **labels, phase="Training") == 0
    for field, metric in (("step", "step"), ("totalSteps", "total_steps"), ("loss", "loss"),
                          ("baseEvalLoss", "base_eval_loss"), ("evalLoss", "eval_loss"),
                          ("tokensPerSecond", "tokens_per_second"), ("durationSeconds", "duration_seconds")):
        assert value(f"sovereign_suite_finetune_{metric}", **labels) == done[field], metric
    # a new run (spec changed): Pending, the old run's numbers go with the fields the status dropped
    metrics.record_finetune("dgfip", name, spec, {"phase": "Pending"})
    assert value("sovereign_suite_finetune_loss", **labels) is None
    assert value("sovereign_suite_finetune_step", **labels) is None
    assert value("sovereign_suite_finetune_phase", **labels, phase="Pending") == 1
    # bounded labels: the FineTune's and its suite's names, the country and the fixed phases, nothing else
    for m in REGISTRY.collect():
        for s in m.samples:
            if s.labels.get("finetune") == name:
                assert set(s.labels) <= set(metrics.FINETUNE) | {"phase"}
                assert s.labels.get("phase", "Pending") in metrics.FINETUNE_PHASES
    metrics.forget_finetune("dgfip", name)
    assert finetune_series(name) == {}
    metrics.forget_finetune("dgfip", name)  # twice (a DELETED event after a restart) is harmless


def test_finetune_of_another_namespaces_suite_and_an_unknown_phase():
    name = f"ft{uuid.uuid4().hex[:6]}"
    spec = {"suite": {"name": "albert", "namespace": "platform"}, "country": "DE"}
    metrics.record_finetune("bmi", name, spec, {"phase": "Whatever", "step": True})
    labels = dict(finetune_namespace="bmi", finetune=name, suite_namespace="platform", suite="albert", country="DE")
    assert all(value("sovereign_suite_finetune_phase", **labels, phase=p) == 0 for p in metrics.FINETUNE_PHASES)
    assert value("sovereign_suite_finetune_step", **labels) is None  # a bool is no step count
    metrics.forget_finetune("bmi", name)
    assert finetune_series(name) == {}
