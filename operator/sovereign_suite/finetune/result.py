"""The trainer's result: the one JSON object the operator reads, from the pod's termination message.

Kubernetes keeps at most 4096 bytes of a container's termination message (``terminationMessagePath``, default
``/dev/termination-log``; core/v1 Container docs), so the object is short by construction: numbers, a URI, and a
reason cut to ``REASON_MAX`` characters. Standard library only.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

TERMINATION_MESSAGE_LIMIT = 4096
REASON_MAX = 1024
URI_MAX = 1024
PHASES = ("Succeeded", "Failed")


@dataclass
class Result:
    phase: str = "Failed"
    reason: str = ""
    step: int = 0
    totalSteps: int = 0
    loss: float = 0.0
    baseEvalLoss: float = 0.0
    evalLoss: float = 0.0
    tokensPerSecond: float = 0.0
    durationSeconds: float = 0.0
    adapterUri: str = ""

    def to_json(self) -> str:
        """Compact JSON, under the termination message limit whatever the reason's length."""
        if self.phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, not {self.phase!r}")
        obj = asdict(self)
        obj["reason"] = _cut(self.reason, REASON_MAX)
        obj["adapterUri"] = _cut(self.adapterUri, URI_MAX)
        for key in ("loss", "baseEvalLoss", "evalLoss", "tokensPerSecond", "durationSeconds"):
            value = float(obj[key])
            # JSON has no NaN/Infinity: a diverged loss is reported as -1 and said in the reason
            obj[key] = round(value, 6) if math.isfinite(value) else -1.0
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=True)
        while len(text) >= TERMINATION_MESSAGE_LIMIT:  # escapes (\uXXXX) can make a cut reason longer again
            obj["reason"] = _cut(obj["reason"], len(obj["reason"]) // 2)
            obj["adapterUri"] = _cut(obj["adapterUri"], len(obj["adapterUri"]) // 2 + 4)
            text = json.dumps(obj, separators=(",", ":"), ensure_ascii=True)
        return text


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 3] + "..." if limit > 3 else text[: max(limit, 0)]


def parse(text: str) -> Result:
    """The operator's side: a termination message back into a Result (unknown keys ignored)."""
    obj = json.loads(text)
    if not isinstance(obj, dict) or obj.get("phase") not in PHASES:
        raise ValueError("not a trainer result: phase missing or unknown")
    fields = Result.__dataclass_fields__
    return Result(**{k: v for k, v in obj.items() if k in fields})
