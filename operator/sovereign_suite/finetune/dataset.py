"""The training dataset: JSONL parsing and the held-out split. Standard library only (unit-tested without torch).

One JSON object a line. A record is either ``{"text": "..."}`` (trained on as a whole) or
``{"prompt": "...", "completion": "..."}`` (trained on as ``prompt + completion``); other keys are ignored, blank
lines are skipped. Any other line is refused with its 1-based line number: a dataset is a country's data, and a
silently dropped line is a training run on something else than what the administration declared.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass


class DatasetError(Exception):
    """A dataset the trainer cannot use; the message names the line and the problem."""


@dataclass(frozen=True)
class Split:
    train: list[str]
    eval: list[str]


def _record_text(obj: object, lineno: int) -> str:
    if not isinstance(obj, dict):
        raise DatasetError(f"dataset line {lineno}: a JSON object is expected, not {type(obj).__name__}")
    if "text" in obj:
        if not isinstance(obj["text"], str) or not obj["text"].strip():
            raise DatasetError(f"dataset line {lineno}: 'text' must be a non-empty string")
        return obj["text"]
    prompt, completion = obj.get("prompt"), obj.get("completion")
    if isinstance(prompt, str) and isinstance(completion, str) and (prompt + completion).strip():
        return prompt + completion
    raise DatasetError(f"dataset line {lineno}: needs a string field 'text', or 'prompt' and 'completion'")


def parse_jsonl(data: bytes) -> list[str]:
    """The texts of a JSONL dataset, in file order."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DatasetError(f"the dataset is not UTF-8 (byte {err.start})") from None
    records = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DatasetError(f"dataset line {lineno}: not valid JSON ({err.msg} at column {err.colno})") from None
        records.append(_record_text(obj, lineno))
    if not records:
        raise DatasetError("the dataset has no record")
    return records


def split(records: list[str], eval_fraction: float, seed: int) -> Split:
    """A held-out eval set, the same for the same records, fraction and seed (a re-run compares like with like).

    At least one record on each side: a run without an eval record could not be gated, one without a training
    record would train on nothing.
    """
    if not 0 < eval_fraction < 1:
        raise DatasetError(f"evalFraction must be between 0 and 1 (exclusive), not {eval_fraction}")
    if len(records) < 2:
        raise DatasetError(f"the dataset has {len(records)} record; at least 2 are needed (one held out for eval)")
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_eval = min(len(records) - 1, max(1, round(len(records) * eval_fraction)))
    held = set(order[:n_eval])
    return Split(train=[r for i, r in enumerate(records) if i not in held],
                 eval=[r for i, r in enumerate(records) if i in held])
