"""What FineTunes add to the operator's passes, pure CPU (no cluster): the suite pass's render with K served adapters
on one tenant (the vLLM flags, the adapters ConfigMap, one gateway route and key Secret per adapter and consumer),
choosing the served adapters among N FineTune bodies (reconcile/finetune_serving.py), and one FineTune pass's own
check and render (reconcile/finetune_checks.py, components/finetune). Median and minimum over many runs in one
process, after a first run that compiles the templates.

    python bench/finetune_cost.py [--runs 30]

The API side of a converged FineTune is counted by the audit log in tests/cluster/test_finetune_operator.py (no
write over two drift passes); its reads are named in docs/performance.md, "FineTunes in a pass".
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

from lib import table, write_result  # (puts operator/ and the repository on sys.path)

from sovereign_suite.api.finetune_models import FineTune  # noqa: E402
from sovereign_suite.components import finetune as renderer  # noqa: E402
from sovereign_suite.components.llm.adapters import ServedAdapter  # noqa: E402
from sovereign_suite.reconcile.finetune_checks import check_finetune  # noqa: E402
from sovereign_suite.reconcile.finetune_serving import served_adapters  # noqa: E402
from sovereign_suite.render import render_suite  # noqa: E402
from tests.finetune_fixtures import ADMIN_NS, FINETUNE, clouds, suite  # noqa: E402


def timed_ms(fn, runs: int) -> tuple[float, float]:
    """(median, minimum) in ms. The minimum is the cost without the other processes' share of the cores (on a busy
    machine the median carries their load too)."""
    fn()  # the first run compiles templates and fills caches, as a long-running operator has
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), min(times)


def bodies(n: int, suite_ns: str, suite_name: str) -> list[dict]:
    """n FineTunes of the FR tenant, each promoted for its generation (so each is served)."""
    out = []
    for i in range(n):
        doc = copy.deepcopy(FINETUNE)
        doc["metadata"].update({"name": f"use-case-{i}", "generation": 1})
        doc["spec"]["suite"] = {"name": suite_name, "namespace": suite_ns}
        doc["status"] = {"observedGeneration": 1, "phase": "Evaluating",
                         "adapterUri": f"s3://fr-suite-data/fine-tuning/{ADMIN_NS}/use-case-{i}/adapter/",
                         "conditions": [{"type": "Ready", "status": "False", "reason": "Promoting"}]}
        out.append(doc)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--adapters", type=int, nargs="+", default=[0, 1, 10, 50])
    args = p.parse_args()
    s = suite(fine_tune_namespaces=[ADMIN_NS])
    s = s.model_copy(update={"metadata": s.metadata.model_copy(update={"namespace": "sovereign-suite"})})
    cl = clouds()
    rows, out = [["what", "K / N", "median ms", "min ms", "objects rendered"]], {"render": {}, "select": {}}
    for k in args.adapters:
        served = {"FR": [ServedAdapter(f"{ADMIN_NS}-use-case-{i}", "mistral-small",
                                       f"s3://fr-suite-data/fine-tuning/{ADMIN_NS}/use-case-{i}/adapter/", 16,
                                       ("greffe-app",)) for i in range(k)]} if k else None
        ms, low = timed_ms(lambda: render_suite(s, cl, adapters=served), args.runs)
        result = render_suite(s, cl, adapters=served)
        count = len(result.manifests) + len(result.secrets)
        out["render"][k] = {"median_ms": round(ms, 2), "min_ms": round(low, 2), "objects": count}
        rows.append(["suite render, K served adapters", str(k), f"{ms:.1f}", f"{low:.1f}", str(count)])
    for n in args.adapters:
        docs = bodies(n, "sovereign-suite", s.name)
        assert len(served_adapters(s, cl, docs).get("FR", [])) == n
        ms, low = timed_ms(lambda: served_adapters(s, cl, docs), args.runs)
        out["select"][n] = {"median_ms": round(ms, 3), "min_ms": round(low, 3)}
        rows.append(["served adapters chosen among N FineTunes", str(n), f"{ms:.2f}", f"{low:.2f}", ""])
    ft = FineTune.model_validate(FINETUNE)
    suites = {("sovereign-suite", s.name): s}

    def finetune_pass_cpu():
        resolved, problems = check_finetune(ft, suites, cl)
        assert resolved is not None, problems
        return renderer.render(ft, resolved)

    ms, low = timed_ms(finetune_pass_cpu, args.runs)
    out["finetune_pass"] = {"median_ms": round(ms, 2), "min_ms": round(low, 2), "objects": len(finetune_pass_cpu())}
    rows.append(["one FineTune pass: check + render", "1", f"{ms:.2f}", f"{low:.2f}",
                 str(out["finetune_pass"]["objects"])])
    print(table(rows))
    print(f"wrote {write_result('finetune_cost', out)}")


if __name__ == "__main__":
    main()
