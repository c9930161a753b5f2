"""Many suites: 200 one-tenant suites applied by the operator vs `kubectl apply --server-side` of their
rendered manifests; objects per second, and the operator's memory and CPU while it works.

    python bench/many.py [--suites 200]

Each suite has one tenant (countries in turn FR, DE, LU, SE) with Matrix and Jitsi (one replica each, its own
JVB node port); Docs and LLM off. kubectl applies one file with every suite's `sovereign-suite render` output.
"applied": first request to last child written (audit log for the operator; kubectl's exit).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from lib import (Bench, audit_time, count_objects, cpu_seconds, log, rendered_yaml, rss_mib, table, wait_for,
                 write_result)

COUNTRIES = [("FR", "fr-secnumcloud"), ("DE", "de-c5"), ("LU", "lu-govcloud"), ("SE", "se-sovereign")]


def suite(i: int, ns: str, prefix: str) -> dict:
    cc, cloud = COUNTRIES[i % len(COUNTRIES)]
    return {
        "apiVersion": "sovereignsuite.io/v1alpha1", "kind": "SovereignSuite",
        "metadata": {"name": f"{prefix}{i:03d}", "namespace": ns},
        "spec": {
            "domain": f"s{i}.example.eu",
            "tenants": [{"country": cc, "cloud": cloud}],
            "components": {
                "matrix": {"elementReplicas": 1},
                "jitsi": {"webReplicas": 1, "jvb": {"nodePort": 30100 + i + (0 if prefix == "k" else 1000)}},
                "docs": {"enabled": False}, "llm": {"enabled": False}},
            "deletionPolicy": "Delete",
        },
    }


class Sampler:
    """Peak RSS and CPU seconds of a process while a block runs."""

    def __init__(self, pid: int):
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()

    def __enter__(self):
        self.cpu0 = cpu_seconds(self.pid)
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        return self

    def _run(self):
        while not self.stop.wait(0.25):
            self.peak = max(self.peak, rss_mib(self.pid))

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join()
        self.cpu = cpu_seconds(self.pid) - self.cpu0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suites", type=int, default=200)
    args = p.parse_args()
    n = args.suites
    with Bench("many") as b:
        ns = b.namespace("bench")
        # kubectl: one file, every suite's rendered manifests
        docs = [suite(i, ns, "k") for i in range(n)]
        texts = [rendered_yaml(d) for d in docs]
        objects_k = sum(count_objects(t) for t in texts)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write("".join(texts))
            f.flush()
            start = time.time()
            b.kubectl_run("apply", "--server-side", "--field-manager", "kubectl-bench", "-f", f.name)
            kubectl_s = time.time() - start
        log(f"kubectl: {objects_k} objects in {kubectl_s:.1f} s")
        b.delete_namespaces([f"k{i:03d}-{COUNTRIES[i % 4][0].lower()}" for i in range(n)], timeout=1800)

        op = b.operator(drift_interval=300)
        op.start()
        wait_for(lambda: op.metric("python_info"), 60, 0.5, "operator up")
        time.sleep(5)
        idle = Sampler(op.proc.pid)
        with idle:
            time.sleep(10)
        docs = [suite(i, ns, "o") for i in range(n)]
        tenants = {f"o{i:03d}-{COUNTRIES[i % 4][0].lower()}" for i in range(n)}
        mark = b.audit.mark()
        with Sampler(op.proc.pid) as busy:
            start = time.time()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(b.kube.create, docs))
            created = time.time() - start

            def all_applied():
                return all(b.kube.get("apps/v1", "Deployment", "jitsi-web", t) for t in tenants)

            wait_for(all_applied, 1800, 2.0, "every suite's last Deployment")
            time.sleep(10)  # let the last passes finish
            writes = [e for e in b.operator_writes(mark) if (e.get("objectRef") or {}).get("namespace") in tenants
                      or (e.get("objectRef") or {}).get("name") in tenants]
            operator_s = max(audit_time(e) for e in writes) - start
            ready = sum(1 for d in docs if b.ready(d))
        objects_o = sum(count_objects(rendered_yaml(d)) for d in docs)
        rss_after = rss_mib(op.proc.pid)
        op.stop()
    out = {
        "suites": n,
        "kubectl": {"objects": objects_k, "seconds": kubectl_s, "objects_per_second": objects_k / kubectl_s},
        "operator": {"objects": objects_o, "seconds": operator_s, "objects_per_second": objects_o / operator_s,
                     "suites_created_in_s": created, "child_writes": len(writes), "suites_ready_at_end": ready,
                     "rss_idle_mib": idle.peak, "cpu_idle_s_per_10s": idle.cpu, "rss_peak_mib": busy.peak,
                     "rss_after_mib": rss_after, "cpu_busy_s": busy.cpu},
    }
    out["ratio_operator_over_kubectl_objects_per_second"] = (out["operator"]["objects_per_second"] /
                                                             out["kubectl"]["objects_per_second"])
    print(table([
        ["", "objects", "seconds", "objects/s"],
        ["kubectl apply --server-side", objects_k, f"{kubectl_s:.1f}", f"{objects_k / kubectl_s:.0f}"],
        ["operator", objects_o, f"{operator_s:.1f}", f"{objects_o / operator_s:.0f}"],
    ]))
    print(f"operator/kubectl objects/s: {out['ratio_operator_over_kubectl_objects_per_second']:.2f}; "
          f"operator RSS idle {idle.peak:.0f} MiB, peak {busy.peak:.0f} MiB; CPU {busy.cpu:.0f} s busy, "
          f"{idle.cpu:.2f} s per 10 s idle")
    print(f"wrote {write_result('many', out)}")


if __name__ == "__main__":
    main()
