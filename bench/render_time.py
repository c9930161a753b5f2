"""Render time of the reference (four-country) suite: the first render in a fresh process (templates compiled,
modules imported) and the median of later renders, as the operator does on every pass.

    python bench/render_time.py [--runs 50]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

from lib import ROOT, table, write_result

SNIPPET = """
import time, sys
sys.path.insert(0, {root!r})
from sovereign_suite.api.loader import load_files
from sovereign_suite.render import render_suite
suites, clouds = load_files([{suite!r}, {clouds!r}])
t = time.perf_counter(); r = render_suite(suites[0], clouds); first = time.perf_counter() - t
times = []
for _ in range({runs}):
    t = time.perf_counter(); render_suite(suites[0], clouds); times.append(time.perf_counter() - t)
print(first, *times)
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--processes", type=int, default=5)
    args = p.parse_args()
    code = SNIPPET.format(root=str(ROOT / "operator"), suite=str(ROOT / "manifests/examples/four-countries.yaml"),
                          clouds=str(ROOT / "manifests/examples/clouds.yaml"), runs=args.runs)
    firsts, warm = [], []
    for _ in range(args.processes):
        values = [float(v) for v in subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                   check=True).stdout.split()]
        firsts.append(values[0] * 1000)
        warm += [v * 1000 for v in values[1:]]
    warm.sort()
    out = {"first_ms": {"median": statistics.median(firsts), "min": min(firsts), "max": max(firsts)},
           "warm_ms": {"median": statistics.median(warm), "p10": warm[len(warm) // 10],
                       "p90": warm[len(warm) * 9 // 10], "n": len(warm)}}
    print(table([["four-country render", "median ms", "spread"],
                 ["first in a process", f"{out['first_ms']['median']:.1f}",
                  f"{out['first_ms']['min']:.1f}-{out['first_ms']['max']:.1f}"],
                 ["later renders", f"{out['warm_ms']['median']:.1f}",
                  f"p10 {out['warm_ms']['p10']:.1f}, p90 {out['warm_ms']['p90']:.1f}"]]))
    print(f"wrote {write_result('render', out)}")


if __name__ == "__main__":
    main()
