"""The figures of an eu_scale.py run from its members' audit logs, for a run stopped before it wrote its result
(the pass-latency probes of a hung member take longer than the run's budget).

    python bench/eu_scale_audit.py DIR --hung-from 2026-12-03T13:47:45 [--reads-from T --reads-to T]

DIR holds ``<member>.audit.log`` (copied from ``<cluster>/light-members/<member>/audit.log`` while the run was
alive). A probe is a ConfigMap the benchmark deleted (user agent sovereign-suite-bench) and the operator's create
of the same ConfigMap after it; probes at or after ``--hung-from`` ran with the hung member stopped. Reads: the
operator's gets and lists per member between ``--reads-from`` and ``--reads-to``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from datetime import datetime, timezone
from pathlib import Path


def when(ev: dict) -> float:
    return datetime.fromisoformat(ev["requestReceivedTimestamp"].replace("Z", "+00:00")).timestamp()


def parse(t: str) -> float:
    return datetime.fromisoformat(t).replace(tzinfo=timezone.utc).timestamp()


def events(path: Path) -> list[dict]:
    out = []
    for line in path.open("rb"):
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) >= 2 else values[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", type=Path)
    p.add_argument("--hung-from", required=True)
    p.add_argument("--reads-from")
    p.add_argument("--reads-to")
    args = p.parse_args()
    hung_from = parse(args.hung_from)
    probes: dict[str, list[float]] = {"no_fault": [], "hung": []}
    unfinished = 0
    reads: dict[str, int] = {}
    for log in sorted(args.dir.glob("*.audit.log")):
        evs = events(log)
        member = log.name.split(".")[0]
        if args.reads_from:
            lo, hi = parse(args.reads_from), parse(args.reads_to)
            reads[member] = sum(1 for e in evs if e.get("verb") in ("get", "list") and lo <= when(e) < hi
                                and e.get("userAgent", "").startswith("sovereign-suite-operator"))
        for i, e in enumerate(evs):
            if e.get("verb") != "delete" or not e.get("userAgent", "").startswith("sovereign-suite-bench") \
                    or e.get("stage") != "ResponseComplete" or (e.get("objectRef") or {}).get("resource") != "configmaps":
                continue
            ref = e["objectRef"]
            again = next((x for x in evs[i + 1:] if x.get("verb") in ("create", "patch") and x.get("stage") ==
                          "ResponseComplete" and x.get("userAgent", "").startswith("sovereign-suite-operator")
                          and (x.get("objectRef") or {}).get("name") == ref["name"]
                          and (x.get("objectRef") or {}).get("namespace") == ref["namespace"]
                          and (x.get("responseStatus") or {}).get("code", 0) < 300), None)
            if again is None:
                unfinished += 1
                continue
            start = when(e)
            probes["hung" if start >= hung_from else "no_fault"].append(
                datetime.fromisoformat(again["stageTimestamp"].replace("Z", "+00:00")).timestamp() - start)
    out = {k: {"n": len(v), "p95": p95(v), "median": statistics.median(v), "max": max(v)} for k, v in probes.items()
           if v}
    out["unfinished_probes"] = unfinished
    if reads:
        out["operator_reads_per_member"] = reads
    print(json.dumps(out, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
