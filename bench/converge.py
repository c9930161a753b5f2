"""Converge: the four-country reference suite applied by the operator vs `kubectl apply --server-side` of the
output of `sovereign-suite render` for the same suite, alternately, several rounds.

    python bench/converge.py [--rounds 5]

"applied": from the request that creates the suite (or the start of kubectl) to the last child written
(the operator's last write in the API server's audit log; kubectl's exit). "ready": until every Deployment and
StatefulSet is ready (the suite's Ready condition for the operator; polling the workloads for kubectl).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from lib import Bench, audit_time, count_objects, log, rendered_yaml, suite_doc, summary, table, wait_for, write_result


def operator_round(b: Bench, ns: str, name: str) -> dict[str, float]:
    doc = suite_doc("four-countries", ns, name, {"deletionPolicy": "Delete"})
    tenants = {f"{name}-{t['country'].lower()}" for t in doc["spec"]["tenants"]}
    mark = b.audit.mark()
    start = time.time()
    b.kube.create(doc)
    wait_for(lambda: b.ready(doc), 600, 0.2, "suite Ready")
    ready = time.time() - start
    writes = [e for e in b.operator_writes(mark) if (e.get("objectRef") or {}).get("namespace") in tenants
              or (e.get("objectRef") or {}).get("name") in tenants]
    applied = max(audit_time(e) for e in writes) - start
    b.kube.delete({"apiVersion": "sovereignsuite.io/v1alpha1", "kind": "SovereignSuite", "metadata": doc["metadata"]})
    wait_for(lambda: all(b.kube.get("v1", "Namespace", t) is None for t in tenants), 600, 0.5, "cleanup")
    return {"applied": applied, "ready": ready, "writes": len(writes)}


def kubectl_round(b: Bench, ns: str, name: str) -> dict[str, float]:
    doc = suite_doc("four-countries", ns, name)
    text = rendered_yaml(doc)
    tenants = [f"{name}-{t['country'].lower()}" for t in doc["spec"]["tenants"]]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(text)
        f.flush()
        start = time.time()
        b.kubectl_run("apply", "--server-side", "--field-manager", "kubectl-bench", "-f", f.name)
        applied = time.time() - start
    wait_for(lambda: b.workloads_ready(tenants), 600, 0.2, "workloads ready")
    ready = time.time() - start
    b.delete_namespaces(tenants)
    return {"applied": applied, "ready": ready, "objects": count_objects(text)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    with Bench("converge") as b:
        ns = b.namespace("bench")
        op = b.operator()
        op.start()
        wait_for(lambda: op.metric("sovereign_suite_build_info") or op.metric("python_info"), 60, 0.5,
                 "operator up")
        results: dict[str, list[dict[str, float]]] = {"operator": [], "kubectl": []}
        for i in range(args.rounds):
            order = ("operator", "kubectl") if i % 2 == 0 else ("kubectl", "operator")
            for who in order:
                r = operator_round(b, ns, f"o{i}") if who == "operator" else kubectl_round(b, ns, f"k{i}")
                results[who].append(r)
                log(f"round {i} {who}: {json.dumps({k: round(v, 2) for k, v in r.items()})}")
        op.stop()
    out = {}
    for metric in ("applied", "ready"):
        o, k = summary([r[metric] for r in results["operator"]]), summary([r[metric] for r in results["kubectl"]])
        out[metric] = {"operator": o, "kubectl": k, "ratio_operator_over_kubectl": o["median"] / k["median"]}
    out["objects_rendered"] = results["kubectl"][0]["objects"]
    out["operator_writes"] = summary([r["writes"] for r in results["operator"]])
    rows = [["metric", "operator median (min-max)", "kubectl median (min-max)", "ratio"]]
    for metric in ("applied", "ready"):
        o, k = out[metric]["operator"], out[metric]["kubectl"]
        rows.append([f"four-country suite {metric} (s)", f"{o['median']:.2f} ({o['min']:.2f}-{o['max']:.2f})",
                     f"{k['median']:.2f} ({k['min']:.2f}-{k['max']:.2f})",
                     f"{out[metric]['ratio_operator_over_kubectl']:.2f}"])
    print(table(rows))
    print(f"wrote {write_result('converge', {'rounds': args.rounds, **out})}")


if __name__ == "__main__":
    main()
