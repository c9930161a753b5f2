"""A FineTune's status from what was found (reconcile/finetune_status.py): phases, kstatus conditions, the
trainer's result read as untrusted data. Pure, no cluster."""

from __future__ import annotations

import json

import pytest

from sovereign_suite.api.finetune_models import FineTuneStatus, Promotion
from sovereign_suite.reconcile.finetune_status import finetune_status, trainer_result
from sovereign_suite.reconcile.problems import degraded, stalled

URI = "s3://fr-suite-data/fine-tuning/justice/summaries/adapter/"
JOB = {"metadata": {"namespace": "eu-workplace-fr", "name": "ft-summaries-f186f585"}, "status": {}}
T0, T1 = "2026-12-03T10:00:00Z", "2026-12-03T11:00:00Z"


def job(condition: str | None = None, **fields) -> dict:
    status = {"conditions": [{"type": condition, "status": "True", **fields}]} if condition else {}
    return {**JOB, "status": status}


def pod(phase: str = "Running", message: dict | str | None = None, unschedulable: str = "") -> dict:
    status: dict = {"phase": phase}
    if message is not None:
        text = message if isinstance(message, str) else json.dumps(message)
        status["containerStatuses"] = [{"name": "trainer", "state": {"terminated": {"exitCode": 0, "message": text}}}]
    if unschedulable:
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                 "message": unschedulable}]
    return {"status": status}


RESULT = {"phase": "Succeeded", "step": 100, "totalSteps": 100, "loss": 1.2, "baseEvalLoss": 2.0, "evalLoss": 1.5,
          "tokensPerSecond": 812.5, "durationSeconds": 61.0, "adapterUri": URI}


def status(problems=(), j=None, p=None, gate=None, served=False, old=None, stamp=T0, quota_refusal="") -> dict:
    out = finetune_status(generation=3, problems=list(problems), job=j, pod=p,
                          promotion=Promotion.model_validate(gate or {}), adapter_uri=URI, served=served, old=old,
                          stamp=stamp, quota_refusal=quota_refusal)
    FineTuneStatus.model_validate(out)  # the CRD's status schema holds it
    return out


def conds(s: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in s["conditions"]}


def test_a_refused_finetune_is_pending_and_stalled_with_the_reason() -> None:
    s = status([stalled("InsufficientGPUMemory", "spec.training: needs ~99 GiB")])
    assert s["phase"] == "Pending"
    assert conds(s) == {"Ready": ("False", "InsufficientGPUMemory"), "Reconciling": ("False", "Pending"),
                        "Stalled": ("True", "InsufficientGPUMemory")}
    assert "spec.training" in s["conditions"][0]["message"] and s["observedGeneration"] == 3


@pytest.mark.parametrize(("j", "p", "phase", "reason"), [
    (None, None, "Pending", "Creating"),
    (JOB, None, "Pending", "Starting"),
    (JOB, pod("Pending", unschedulable="0/3 nodes are available: 3 Insufficient nvidia.com/gpu."), "Pending",
     "WaitingForGPU"),
    (JOB, pod("Running"), "Training", "Training"),
])
def test_the_phases_before_the_job_ends(j, p, phase, reason) -> None:
    s = status(j=j, p=p)
    assert s["phase"] == phase and conds(s)["Ready"] == ("False", reason)
    assert conds(s)["Reconciling"][0] == "True" and conds(s)["Stalled"][0] == "False"


def test_waiting_for_a_gpu_says_what_the_scheduler_said() -> None:
    s = status(j=JOB, p=pod("Pending", unschedulable="0/3 nodes are available: 3 Insufficient nvidia.com/gpu."))
    assert "Insufficient nvidia.com/gpu" in s["conditions"][0]["message"]


def test_a_job_that_succeeds_and_beats_the_base_is_evaluating_until_served_then_ready() -> None:
    s = status(j=job("Complete"), p=pod("Succeeded", RESULT))
    assert s["phase"] == "Evaluating" and conds(s)["Reconciling"] == ("True", "Promoting")
    s = status(j=job("Complete"), p=pod("Succeeded", RESULT), served=True)
    assert s["phase"] == "Ready" and conds(s) == {"Ready": ("True", "Served"), "Reconciling": ("False", "Ready"),
                                                  "Stalled": ("False", "Ready")}
    assert (s["step"], s["totalSteps"], s["progress"]) == (100, 100, "100/100")
    assert (s["evalLoss"], s["baseEvalLoss"], s["adapterUri"]) == (1.5, 2.0, URI)
    assert s["tokensPerSecond"] == 812.5 and s["durationSeconds"] == 61.0 and s["job"].endswith("ft-summaries-f186f585")


def test_an_adapter_that_does_not_beat_the_base_is_not_promoted() -> None:
    worse = {**RESULT, "evalLoss": 2.1}
    s = status(j=job("Complete"), p=pod("Succeeded", worse), served=True)
    assert s["phase"] == "NotPromoted" and conds(s)["Stalled"] == ("True", "NotPromoted")
    assert "does not beat" in s["conditions"][0]["message"]
    # the user's threshold decides instead
    assert status(j=job("Complete"), p=pod("Succeeded", worse), gate={"maxEvalLoss": 2.2}, served=True)[
        "phase"] == "Ready"


def test_a_failed_job_is_failed_with_the_trainers_reason_else_the_jobs() -> None:
    s = status(j=job("Failed", reason="BackoffLimitExceeded", message="Job has reached the specified backoff limit"),
               p=pod("Failed", {"phase": "Failed", "reason": "DatasetUnreadable", "message": "403 on GetObject"}))
    assert s["phase"] == "Failed" and conds(s)["Stalled"] == ("True", "DatasetUnreadable")
    assert s["conditions"][0]["message"] == "403 on GetObject"
    s = status(j=job("Failed", reason="DeadlineExceeded", message="Job was active longer than specified"), p=None)
    assert s["phase"] == "Failed" and conds(s)["Ready"] == ("False", "DeadlineExceeded")


def test_a_failed_run_carries_the_trainers_own_words() -> None:
    """The contract with the trainer as it is written (finetune/result.py): a failed run's reason is a sentence
    naming the input; the status says TrainingFailed with that sentence, not the Job's generic message."""
    from sovereign_suite.finetune.result import Result

    said = "dataset line 3: not valid JSON (Unterminated string starting at column 10)"
    text = Result(phase="Failed", reason=said, step=0, totalSteps=100).to_json()
    s = status(j=job("Failed", reason="BackoffLimitExceeded", message="Job has reached the specified backoff limit"),
               p=pod("Failed", text))
    assert s["phase"] == "Failed" and conds(s)["Stalled"] == ("True", "TrainingFailed")
    assert s["conditions"][0]["message"] == said and s["progress"] == "0/100"
    # a succeeded run's sentence is no reason of anything (the gate decides); a long one is cut
    ok = trainer_result(pod("Succeeded", Result(phase="Succeeded", reason="trained 40 steps").to_json()), URI)
    assert "reason" not in ok and "message" not in ok
    long = trainer_result(pod("Failed", Result(phase="Failed", reason="x" * 5000).to_json()), URI)
    assert long["reason"] == "TrainingFailed" and len(long["message"]) == 1000


@pytest.mark.parametrize("message", [
    "not json", "[1, 2]", json.dumps({**RESULT, "evalLoss": "1.0"}), json.dumps({**RESULT, "evalLoss": None}),
])
def test_a_result_without_a_usable_eval_loss_is_never_promoted(message) -> None:
    s = status(j=job("Complete"), p=pod("Succeeded", message), served=True)
    assert s["phase"] == "NotPromoted"


def test_the_trainers_result_is_read_as_untrusted_data() -> None:
    hostile = {"reason": "bad reason; with spaces", "evalLoss": float("nan"), "step": -1, "totalSteps": True,
               "adapterUri": "s3://elsewhere/x/", "message": "m" * 5000, "loss": 1e309}
    out = trainer_result(pod("Failed", json.dumps(hostile).replace("NaN", "NaN")), URI)
    assert "reason" not in out and "evalLoss" not in out and "step" not in out and "totalSteps" not in out
    assert "adapterUri" not in out and "loss" not in out and len(out["message"]) == 1000


def test_a_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    first = status(j=JOB, p=pod("Running"), stamp=T0)
    again = status(j=JOB, p=pod("Running"), old=first, stamp=T1)
    assert {c["lastTransitionTime"] for c in again["conditions"]} == {T0}
    done = status(j=job("Complete"), p=pod("Succeeded", RESULT), served=True, old=again, stamp=T1)
    times = {c["type"]: c["lastTransitionTime"] for c in done["conditions"]}
    assert times == {"Ready": T1, "Reconciling": T1, "Stalled": T0}


def test_a_degraded_problem_keeps_it_pending_and_reconciling() -> None:
    s = status([degraded("ClusterUnreachable", "does not answer")])
    assert s["phase"] == "Pending" and conds(s)["Ready"] == ("False", "ClusterUnreachable")
    assert conds(s)["Reconciling"][0] == "True"


def quota(used_gpus: str, hard_gpus: str = "2") -> dict:
    """tenant-fine-tuning (the training pods' own share, at its defaults) as the API server's quota controller
    reports it (status.hard/used)."""
    hard = {"requests.cpu": "16", "requests.memory": "256Gi", "pods": "4", "requests.nvidia.com/gpu": hard_gpus}
    used = {"requests.cpu": "8", "requests.memory": "128Gi", "pods": "2", "requests.nvidia.com/gpu": used_gpus}
    return {"metadata": {"name": "tenant-fine-tuning"}, "spec": {"hard": hard}, "status": {"hard": hard, "used": used}}


def training_job() -> dict:
    res = {"cpu": "4", "memory": "60Gi", "nvidia.com/gpu": "1"}
    return {**job(None), "spec": {"template": {"spec": {"containers": [
        {"name": "trainer", "resources": {"requests": res, "limits": res}}]}}}}


def test_a_pod_the_quota_refuses_is_pending_saying_which_share_is_full() -> None:
    from sovereign_suite.reconcile.finetune_quota import quota_refusal

    why = quota_refusal(training_job(), quota("2"))
    assert why.startswith("the tenant's training quota, ResourceQuota tenant-fine-tuning "
                          "(spec.tenants[].quota.fineTuning), has no room for the training pod")
    assert "requests.nvidia.com/gpu 2 of 2 used, the pod asks 1" in why and "requests.cpu" not in why
    assert quota_refusal(training_job(), quota("1")) == ""  # room for one GPU
    assert quota_refusal(training_job(), None) == "" and quota_refusal(None, quota("2")) == ""
    # memory in binary units: 128Gi used + 60Gi asked > 150Gi
    tight = quota("0")
    tight["status"]["hard"]["requests.memory"] = "150Gi"
    assert "requests.memory 128Gi of 150Gi used, the pod asks 60Gi" in quota_refusal(training_job(), tight)
    s = status(j=training_job(), p=None, quota_refusal=why)
    assert s["phase"] == "Pending" and conds(s)["Ready"] == ("False", "QuotaExceeded")
    assert conds(s)["Reconciling"] == ("True", "QuotaExceeded") and conds(s)["Stalled"][0] == "False"
    assert s["conditions"][0]["message"] == why
    # once a pod exists (the quota made room), the pod says where the run is
    assert status(j=training_job(), p=pod("Running"), quota_refusal=why)["phase"] == "Training"
