"""A FineTune's status as a pure function of what was found: the validation's problems, the training Job in the
tenant's cluster, its pod, the trainer's result (the pod's termination message) and whether the tenant's serving
loaded the adapter (docs/llm-finetuning.md, "The FineTune resource").

| phase       | when                                                                 | Ready | Reconciling | Stalled |
|-------------|----------------------------------------------------------------------|-------|-------------|---------|
| Pending     | refused (a problem: Stalled), or the Job/pod not running yet (waiting | False | not refused | refused |
|             | for a GPU, or for room in the training ResourceQuota)                 |       |             |         |
| Training    | the pod runs                                                          | False | True        | False   |
| Evaluating  | the trainer reports it evaluates, or the adapter passed the gate and  | False | True        | False   |
|             | is not loaded yet                                                     |       |             |         |
| Ready       | passed the promotion gate and served                                  | True  | False       | False   |
| NotPromoted | trained, but the gate keeps it unserved (the message says why)        | False | False       | True    |
| Failed      | the Job failed: the trainer's reason, else the Job's                  | False | False       | True    |

Stalled=True is kstatus' Failed: NotPromoted and Failed need a person (other data, another gate, another spec).
The trainer's result is read as untrusted data: numbers must be finite, the reason a CamelCase word (a failed
run's reason in words, as the trainer writes it, becomes the message, with the reason TrainingFailed), the adapter
URI the one the Job was told to write; anything else is dropped.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ..api.finetune_models import Promotion, promoted
from .conditions import merge_conditions
from .problems import Problem, Severity

CONTAINER = "trainer"
REASON_RE = re.compile(r"^[A-Z][A-Za-z0-9]{0,63}$")
NUMBERS = ("loss", "baseEvalLoss", "evalLoss", "tokensPerSecond", "durationSeconds")
INTEGERS = ("step", "totalSteps")
MAX_MESSAGE = 1000
TRAINING_FAILED = "TrainingFailed"  # the reason of a run whose trainer reported a failure in its own words


def termination_message(pod: dict[str, Any] | None) -> str | None:
    """The trainer container's termination message (its state's, else its last state's), if any."""
    for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            for state in (status.get("state") or {}, status.get("lastState") or {}):
                message = (state.get("terminated") or {}).get("message")
                if message:
                    return message
    return None


def trainer_result(pod: dict[str, Any] | None, adapter_uri: str) -> dict[str, Any]:
    """The trainer's JSON result from the pod's termination message, with only well-formed fields kept."""
    raw = termination_message(pod)
    if raw is None:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    out: dict[str, Any] = {}
    for key in NUMBERS:
        value = data.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    for key in INTEGERS:
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            out[key] = value
    for key in ("phase", "reason"):
        value = data.get(key)
        if isinstance(value, str) and REASON_RE.match(value):
            out[key] = value
    if isinstance(data.get("message"), str):
        out["message"] = data["message"][:MAX_MESSAGE]
    reason = data.get("reason")
    if out.get("phase") == "Failed" and isinstance(reason, str) and reason and "reason" not in out:
        # the trainer (finetune/result.py) writes why it failed as a sentence naming the input: the condition's
        # reason is a word (TrainingFailed), the sentence its message
        out["reason"] = TRAINING_FAILED
        out.setdefault("message", reason[:MAX_MESSAGE])
    if data.get("adapterUri") == adapter_uri:
        out["adapterUri"] = adapter_uri
    return out


def _job_condition(job: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for c in ((job or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_ and c.get("status") == "True":
            return c
    return None


def _pod_running(pod: dict[str, Any] | None) -> bool:
    return ((pod or {}).get("status") or {}).get("phase") == "Running"


def _unschedulable(pod: dict[str, Any] | None) -> str:
    for c in ((pod or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            return (c.get("message") or c.get("reason") or "")[:MAX_MESSAGE]
    return ""


def _cond(type_: str, status: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {"type": type_, "status": "True" if status else "False", "reason": reason,
            "message": message[:4000], "observedGeneration": generation}


def finetune_status(*, generation: int, problems: list[Problem], job: dict[str, Any] | None,
                    pod: dict[str, Any] | None, promotion: Promotion, adapter_uri: str, served: bool,
                    old: dict[str, Any] | None, stamp: str, quota_refusal: str = "") -> dict[str, Any]:
    """The whole status. ``stamp``: the time written on a condition that changed (the caller's clock);
    ``quota_refusal``: why the tenant's training quota (tenant-fine-tuning) refuses the Job's pod ("" : it does not)."""
    result = trainer_result(pod, adapter_uri)
    conds: list[dict[str, Any]]
    progress: dict[str, Any] = {}
    stalled = [p for p in problems if p.severity is Severity.STALLED]
    degraded = [p for p in problems if p.severity is Severity.DEGRADED]

    def set_(phase: str, ready: tuple[bool, str, str], reconciling: bool, stall: tuple[str, str] | None) -> None:
        nonlocal conds
        conds = [_cond("Ready", ready[0], ready[1], ready[2], generation),
                 _cond("Reconciling", reconciling, ready[1] if reconciling else phase, ready[2] if reconciling
                       else "", generation),
                 _cond("Stalled", stall is not None, stall[0] if stall else phase, stall[1] if stall else "",
                       generation)]
        progress["phase"] = phase

    conds = []
    failed = _job_condition(job, "Failed")
    complete = _job_condition(job, "Complete")
    if stalled:
        message = "; ".join(str(p) for p in stalled)
        set_("Pending", (False, stalled[0].reason, message), False, (stalled[0].reason, message))
    elif failed is not None:
        reason = result.get("reason") or failed.get("reason") or "JobFailed"
        message = result.get("message") or failed.get("message") or "the training Job failed"
        set_("Failed", (False, reason, message), False, (reason, message))
    elif complete is not None:
        ok, why = promoted(promotion, result.get("baseEvalLoss"), result.get("evalLoss"))
        if not ok:
            set_("NotPromoted", (False, "NotPromoted", why), False, ("NotPromoted", why))
        elif served:
            set_("Ready", (True, "Served", why), False, None)
        else:
            set_("Evaluating", (False, "Promoting", f"{why}: loading the adapter into serving"), True, None)
    elif job is None:
        message = "; ".join(str(p) for p in degraded) or "creating the training Job"
        set_("Pending", (False, degraded[0].reason if degraded else "Creating", message), True, None)
    elif _pod_running(pod):
        phase = "Evaluating" if result.get("phase") == "Evaluating" else "Training"
        set_(phase, (False, phase, "the trainer runs"), True, None)
    elif pod is None and quota_refusal:
        set_("Pending", (False, "QuotaExceeded", quota_refusal), True, None)
    else:
        waiting = _unschedulable(pod)
        set_("Pending", (False, "WaitingForGPU" if waiting else "Starting",
                         waiting or "the training pod is starting"), True, None)
    status: dict[str, Any] = {"observedGeneration": generation, **progress,
                              "conditions": merge_conditions((old or {}).get("conditions") or [], conds, stamp)}
    if job is not None:
        meta = job.get("metadata") or {}
        status["job"] = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    for key in (*INTEGERS, *NUMBERS, "adapterUri"):
        if key in result:
            status[key] = result[key]
    if "step" in result and "totalSteps" in result:
        status["progress"] = f"{result['step']}/{result['totalSteps']}"
    return status
