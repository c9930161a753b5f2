"""API cost: the operator's requests for one fresh four-country suite, against the number of its children;
then its mutating requests on a forced resync and on a restart of the converged suite (target: 0); and the
operator's footprint when idle. Counted from the API server's audit log (user agents `sovereign-suite-operator`
and `kopf/`; Events are not audited).

    python bench/api_cost.py
"""

from __future__ import annotations

import time

from lib import (Bench, count_objects, cpu_seconds, log, rendered_yaml, rss_mib, suite_doc, table, wait_for,
                 write_result)

WRITE = {"create", "update", "patch", "delete", "deletecollection"}
READ = {"get", "list"}  # a watch is one long request, opened once, not a read per pass


def counts(events: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in events:
        out[e["verb"]] = out.get(e["verb"], 0) + 1
    return out


def main() -> None:
    with Bench("api") as b:
        ns = b.namespace("bench")
        op = b.operator(drift_interval=5)
        op.start()
        wait_for(lambda: op.metric("python_info"), 60, 0.5, "operator up")
        doc = suite_doc("four-countries", ns, "cost")
        rendered = rendered_yaml(doc)  # manifests + generated Secrets
        mark = b.audit.mark()
        b.kube.create(doc)
        wait_for(lambda: b.ready(doc), 600, 0.5, "Ready")
        time.sleep(3)  # the passes that follow the last rollout events
        fresh = b.audit.events(mark)
        copies = sum(1 for e in fresh if e["verb"] == "patch" and (e.get("objectRef") or {}).get("resource") ==
                     "secrets" and (e.get("objectRef") or {}).get("name") in ("oidc-client", "docs-s3", "hf-token"))
        children = count_objects(rendered) + copies
        fresh_writes = [e for e in fresh if e["verb"] in WRITE]
        fresh_reads = [e for e in fresh if e["verb"] not in WRITE]

        # forced resync: drift passes on the converged suite
        before = op.metric("sovereign_suite_reconcile_total", trigger="timer")
        mark = b.audit.mark()
        wait_for(lambda: op.metric("sovereign_suite_reconcile_total", trigger="timer") >= before + 3, 60, 0.5,
                 "three drift passes")
        resync = b.audit.events(mark)
        resync_writes = [e for e in resync if e["verb"] in WRITE]
        resync_reads = [e for e in resync if e["verb"] in READ]

        # idle footprint over 30 s (drift passes every 5 s included)
        pid = op.proc.pid
        cpu0, rss = cpu_seconds(pid), []
        for _ in range(30):
            rss.append(rss_mib(pid))
            time.sleep(1)
        idle_cpu = cpu_seconds(pid) - cpu0

        # restart
        op.stop()
        mark = b.audit.mark()
        op.start()
        wait_for(lambda: op.metric("sovereign_suite_reconcile_total", trigger="event") >= 1, 60, 0.5, "first pass")
        time.sleep(8)  # and a drift pass
        restart = b.audit.events(mark)
        restart_writes = [e for e in restart if e["verb"] in WRITE]
        op.stop()
    out = {
        "children": children,
        "fresh": {"mutating": len(fresh_writes), "reads": len(fresh_reads), "by_verb": counts(fresh)},
        "resync_3_passes": {"mutating": len(resync_writes), "reads": len(resync_reads),
                            "reads_per_drift_pass": len(resync_reads) / 3,
                            "read_requests": sorted(f"{e['verb']} {e.get('requestURI', '')[:120]}"
                                                    for e in resync_reads)},
        "restart": {"mutating": len(restart_writes), "reads": len(restart) - len(restart_writes)},
        "idle": {"rss_mib_max": max(rss), "cpu_seconds_per_30s": idle_cpu, "drift_interval_s": 5},
        "fresh_mutating_by_resource": counts([{"verb": f"{e['verb']} {(e.get('objectRef') or {}).get('resource')}"
                                                        f"{'/' + e['objectRef']['subresource'] if (e.get('objectRef') or {}).get('subresource') else ''}"}
                                               for e in fresh_writes]),
    }
    print(table([
        ["four-country suite", "mutating", "reads", "target"],
        [f"fresh ({children} children)", len(fresh_writes), len(fresh_reads), f"<= {children + 3}"],
        ["resync (3 drift passes)", len(resync_writes), len(resync_reads), "0 writes, <= 2 reads per pass"],
        ["operator restart", len(restart_writes), len(restart) - len(restart_writes), "0"],
    ]))
    print(f"idle: RSS {max(rss):.0f} MiB, CPU {idle_cpu:.2f} s per 30 s with a pass every 5 s")
    print(f"wrote {write_result('api_cost', out)}")
    log("done")


if __name__ == "__main__":
    main()
