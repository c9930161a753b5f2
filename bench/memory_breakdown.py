"""Where the operator's memory goes: the RSS each layer of imports adds (a fresh interpreter per run, no
cluster), then on one local cluster an operator context (the hub's cache, the workers, no Kopf) with N
one-tenant suites applied, and the Python allocations those suites left behind grouped by source file
(tracemalloc, on a third batch of N suites: tracing inflates RSS, so the RSS figures come from the first two;
the first batch also loads what every later pass reuses).

    python bench/memory_breakdown.py [--suites 20] [--imports-only] [--python PY] [--source DIR] [--layers A,B]

``--python``: the interpreter whose imports are measured (e.g. a venv with the runtime dependencies only, as the
image has: the test extras add kubernetes-validate); ``--source``: the ``operator`` folder to import from (an
older commit's, for a before/after); ``--layers``: other layers than ``LAYERS``.

The context runs in this process, as in bench/member_cost.py; glibc's arenas are capped at 2 as ``sovereign-suite
run`` does (runner.limit_malloc_arenas). Suites as in bench/many.py (Matrix and Jitsi, one country each).
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The layers in the order `sovereign-suite run` imports them (cli.py, then reconcile/runner.main). Kopf is imported
# as the operator imports it (reconcile/kopf_import.py: without the kubernetes package); the hub client last.
LAYERS = ["yaml", "pydantic", "sovereign_suite.reconcile.kopf_import", "prometheus_client",
          "sovereign_suite.api.models", "sovereign_suite.render", "sovereign_suite.reconcile.context",
          "sovereign_suite.reconcile.handlers", "sovereign_suite.reconcile.credentials"]

_IMPORTS = """
import gc, importlib, json, sys, tracemalloc
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1]) / 1024
out = {'python': rss(), 'layers': [], 'kubernetes_validate_loaded': False}
if sys.argv[2] == 'trace':
    tracemalloc.start()
for m in json.loads(sys.argv[1]):
    importlib.import_module(m)
    gc.collect()
    out['layers'].append([m, rss()])
out['kubernetes_validate_loaded'] = 'kubernetes_validate' in sys.modules
out['kubernetes_loaded'] = 'kubernetes' in sys.modules
out['modules'] = len(sys.modules)
if sys.argv[2] == 'trace':
    by = {}
    for s in tracemalloc.take_snapshot().statistics('filename'):
        f = s.traceback[0].filename
        top = f.split('site-packages/')[-1].split('/')[0] if 'site-packages/' in f else (
            'sovereign_suite' if 'sovereign_suite' in f else 'stdlib/other')
        by[top] = by.get(top, 0) + s.size
    out['traced_mib_by_package'] = {k: v / 2**20 for k, v in sorted(by.items(), key=lambda kv: -kv[1])[:12]}
print(json.dumps(out))
"""


def imports(trace: bool, python: str = sys.executable, source: Path = ROOT / "operator",
            layers: list[str] = LAYERS) -> dict:
    return _imports(layers, trace, python, source)


def _imports(layers: list[str], trace: bool, python: str = sys.executable, source: Path = ROOT / "operator") -> dict:
    env = {"MALLOC_ARENA_MAX": "2", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([python, "-c", _IMPORTS, json.dumps(layers), "trace" if trace else "rss"],
                          capture_output=True, text=True, check=True, env=env, cwd=str(source))
    return json.loads(proc.stdout)


def print_imports(r: dict) -> None:
    prev = r["python"]
    print(f"{'python alone':45s} {prev:6.1f} MiB")
    for m, v in r["layers"]:
        print(f"  + {m:41s} {v - prev:+6.1f} -> {v:6.1f} MiB")
        prev = v
    print(f"  ({r['modules']} modules; kubernetes loaded: {r.get('kubernetes_loaded')}; kubernetes_validate loaded: "
          f"{r['kubernetes_validate_loaded']})")


def in_cluster(n: int, trace_first: bool = False) -> dict:
    from eu_scale import proc_status
    from lib import Bench, log, wait_for
    from many import suite

    from sovereign_suite.reconcile import worker
    from sovereign_suite.reconcile.context import OperatorContext, Settings
    from sovereign_suite.reconcile.handlers import _set_cloud
    from sovereign_suite.reconcile.problems import SuiteKey
    from sovereign_suite.reconcile.runner import limit_malloc_arenas

    limit_malloc_arenas()

    def rss() -> float:
        gc.collect()
        return proc_status(__import__("os").getpid())["VmRSS"] / 1024

    out: dict = {"suites_per_batch": n}
    with Bench("mem") as b:
        ns = b.namespace("bench")
        ctx = OperatorContext(b.kube, Settings.from_env((), (), drift_interval=300))
        for doc in b.kube.list("sovereignsuite.io/v1alpha1", "NationalCloud"):
            _set_cloud(ctx, doc)
        ctx.cache.start()
        assert ctx.cache.wait_synced(120)
        worker.start(ctx)
        time.sleep(5)
        out["context_synced_mib"] = rss()
        out["context_synced_smaps"] = smaps()
        out["context_synced_pymalloc"] = pymalloc()

        def batch(prefix: str) -> None:
            docs = [suite(i, ns, prefix) for i in range(n)]
            for d in docs:
                body = b.kube.create(d)
                key = SuiteKey(ns, d["metadata"]["name"])
                ctx.set_suite(key, body)
                ctx.enqueue(key, "event")
            tenants = [f"{prefix}{i:03d}-{suite(i, ns, prefix)['spec']['tenants'][0]['country'].lower()}"
                       for i in range(n)]
            wait_for(lambda: all(b.kube.get("apps/v1", "Deployment", "jitsi-web", t) for t in tenants), 900, 2.0,
                     "every suite's last Deployment")
            time.sleep(15)  # the last passes and their status writes, the watches' events

        modules, threads = set(sys.modules), proc_status(__import__("os").getpid())["Threads"]
        if trace_first:
            tracemalloc.start(1)
            first_before = tracemalloc.take_snapshot()
        batch("o")  # the first suites also load what every later pass reuses (templates, TLS code, metrics)
        if trace_first:
            first = tracemalloc.take_snapshot().compare_to(first_before, "filename")
            tracemalloc.stop()
            out["first_batch_traced_mib"] = sum(s.size_diff for s in first) / 2**20
            out["first_batch_traced_by_file_mib"] = {
                str(s.traceback[0].filename).split("site-packages/")[-1]: s.size_diff / 2**20 for s in first[:15]}
            log(f"first batch, traced: {json.dumps(out['first_batch_traced_by_file_mib'], indent=1)}")
        out["after_batch_1_mib"] = rss()
        out["after_batch_1_pymalloc"] = pymalloc()
        out["threads_before_after_batch_1"] = [threads, proc_status(__import__("os").getpid())["Threads"]]
        out["modules_loaded_by_first_passes"] = sorted(set(sys.modules) - modules)
        batch("p")
        out["after_batch_2_mib"] = rss()
        out["after_batch_2_smaps"] = smaps()
        out["after_batch_2_pymalloc"] = pymalloc()
        out["after_batch_2_trimmed_mib"] = rss() if _malloc_trim() else None
        log(f"RSS: context {out['context_synced_mib']:.1f}, batch 1 {out['after_batch_1_mib']:.1f}, batch 2 "
            f"{out['after_batch_2_mib']:.1f}, after malloc_trim {out['after_batch_2_trimmed_mib']} MiB")
        tracemalloc.start(12)
        before = tracemalloc.take_snapshot()
        batch("q")
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        out["traced_json_by_caller_mib"] = _json_callers(after.compare_to(before, "traceback"))
        stats = after.compare_to(before, "lineno")
        out["traced_growth_mib"] = sum(s.size_diff for s in stats) / 2**20
        out["traced_top_lines"] = [[str(s.traceback[0]), s.size_diff / 2**20, s.count_diff] for s in stats[:25]]
        by_file: dict[str, int] = {}
        for s in after.compare_to(before, "filename"):
            f = s.traceback[0].filename
            f = f.split("site-packages/")[-1] if "site-packages/" in f else f.split("operator/")[-1]
            by_file[f] = by_file.get(f, 0) + s.size_diff
        out["traced_growth_by_file_mib"] = {k: v / 2**20 for k, v in
                                            sorted(by_file.items(), key=lambda kv: -kv[1])[:15]}
        ctx.shutdown()
    # the same modules imported on top of the operator's in a fresh interpreter: the part of the first passes'
    # growth that is code, not data
    first = [m for m in out["modules_loaded_by_first_passes"] if "." not in m or m.startswith("sovereign_suite")]
    r = _imports(LAYERS + first, False)
    out["first_pass_modules_rss_mib"] = r["layers"][-1][1] - r["layers"][len(LAYERS) - 1][1]
    return out


# glibc gives each thread a stack of RLIMIT_STACK (8 MiB here) in a mapping of its own, a guard page below it: an
# anonymous read-write mapping of exactly that size is a thread's stack (its resident part: the pages it touched).
THREAD_STACK = 8 * 2**20


def smaps() -> dict[str, float]:
    """This process's resident memory by kind of mapping (/proc/self/smaps), MiB: [heap] (glibc's main arena),
    thread stacks, other anonymous mappings (pymalloc's arenas, glibc's other arenas, large blocks), OpenSSL's
    libraries (the interpreter's and cryptography's), other shared libraries' code and data."""
    out: dict[str, float] = {}
    name, size = "", 0
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                start, end = (int(x, 16) for x in head[0].split("-"))
                size, path = end - start, head[5] if len(head) > 5 else ""
                if not path and size == THREAD_STACK and head[1].startswith("rw"):
                    name = "thread stacks (8 MiB mappings, between guard pages)"
                elif not path:  # (adjacent mappings merge: their sizes tell no allocator apart; see pymalloc())
                    name = "anonymous (Python's and glibc's heaps beyond [heap])"
                elif path.startswith("["):
                    name = path
                else:
                    lib = path.rsplit("/", 1)[-1]
                    name = "python" if lib.startswith("python3") else (
                        "ssl/crypto" if lib.startswith(("libssl", "libcrypto")) or "_rust" in lib
                        or "_openssl" in lib else "other files")
            elif head[0] == "Rss:":
                out[name] = out.get(name, 0) + int(head[1]) / 1024
    return {k: round(v, 1) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


def pymalloc() -> dict[str, float]:
    """CPython's small-object allocator (sys._debugmallocstats, which writes to the C stderr), MiB: its arenas,
    the bytes of live objects in them, and the rest (free blocks and pools: freed objects whose arena still holds
    a live one, so it cannot be returned)."""
    import os
    import tempfile

    with tempfile.TemporaryFile("w+") as f:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read()
    values = {}
    for line in text.splitlines():
        k, _, v = line.partition("=")
        k = k.strip("# ").strip()
        if k in ("arenas allocated current", "bytes in allocated blocks") and v.strip():
            values[k] = int(v.strip().replace(",", ""))
    arenas = values.get("arenas allocated current", 0) * (1 << 20) / 2**20  # 1 MiB arenas in 3.11
    live = values.get("bytes in allocated blocks", 0) / 2**20
    return {"arenas_mib": round(arenas, 1), "live_objects_mib": round(live, 1), "free_mib": round(arenas - live, 1)}


def _malloc_trim() -> bool:
    """glibc's malloc_trim(0): what RSS the allocator holds freed but not returned (measured, not kept on)."""
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def _json_callers(stats) -> dict[str, float]:
    """Decoded JSON still alive, by the first frame of the operator's own code that asked for it."""
    by: dict[str, int] = {}
    for s in stats:
        frames = list(s.traceback)
        if "json/decoder.py" not in frames[-1].filename and "json/decoder.py" not in frames[0].filename:
            continue
        own = [f for f in frames if "sovereign_suite" in f.filename and "reconcile/kube.py" not in f.filename
               and "reconcile/transport.py" not in f.filename]
        where = f"{own[-1].filename.split('operator/')[-1]}:{own[-1].lineno}" if own else "?"
        by[where] = by.get(where, 0) + s.size_diff
    return {k: v / 2**20 for k, v in sorted(by.items(), key=lambda kv: -kv[1])[:10]}


def main() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from lib import write_result

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suites", type=int, default=20)
    p.add_argument("--imports-only", action="store_true")
    p.add_argument("--trace-first", action="store_true",
                   help="trace the first batch's Python allocations too (its RSS figures are then inflated)")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--source", type=Path, default=ROOT / "operator")
    p.add_argument("--layers", type=lambda v: v.split(","), default=LAYERS)
    args = p.parse_args()
    out = {"imports": imports(False, args.python, args.source, args.layers),
           "imports_traced": imports(True, args.python, args.source, args.layers)}
    print_imports(out["imports"])
    print("Python allocations left by the imports, by package (tracemalloc, MiB):")
    for k, v in out["imports_traced"]["traced_mib_by_package"].items():
        print(f"  {k:40s} {v:6.1f}")
    if not args.imports_only:
        c = in_cluster(args.suites, args.trace_first)
        out["context"] = c
        per = (c["after_batch_2_mib"] - c["after_batch_1_mib"]) / args.suites
        print(f"context synced {c['context_synced_mib']:.1f} MiB; after {args.suites} one-tenant suites "
              f"{c['after_batch_1_mib']:.1f} MiB, after {args.suites} more {c['after_batch_2_mib']:.1f} MiB: "
              f"{per:.2f} MiB per tenant of the second batch; after malloc_trim(0) {c['after_batch_2_trimmed_mib']}")
        print(f"resident by mapping, context synced: {c['context_synced_smaps']}")
        print(f"resident by mapping, after two batches: {c['after_batch_2_smaps']}")
        print("pymalloc (MiB): context synced {}, after the first batch {}, after the second {}".format(
            c["context_synced_pymalloc"], c["after_batch_1_pymalloc"], c["after_batch_2_pymalloc"]))
        print(f"threads before and after the first batch: {c['threads_before_after_batch_1']}; modules the first "
              f"passes imported: {len(c['modules_loaded_by_first_passes'])}, {c['first_pass_modules_rss_mib']:.1f} MiB "
              f"of RSS when imported alone: {', '.join(c['modules_loaded_by_first_passes'][:40])}")
        print(f"third batch: {c['traced_growth_mib']:.1f} MiB of Python allocations kept; by file:")
        for k, v in c["traced_growth_by_file_mib"].items():
            print(f"  {k:60s} {v:6.2f}")
        print("decoded JSON still alive, by the operator's code that asked for it:")
        for k, v in c["traced_json_by_caller_mib"].items():
            print(f"  {k:60s} {v:6.2f}")
        print("by line:")
        for line, mib, count in c["traced_top_lines"]:
            print(f"  {line:70s} {mib:6.2f} MiB {count:+d}")
    print(f"wrote {write_result('memory_breakdown', out)}")


if __name__ == "__main__":
    main()
