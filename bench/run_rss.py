"""The RSS of ``sovereign-suite run`` itself, the real process, on an idle development cluster (no suite): what a
replica costs before it holds anything, for a before/after of a change to what it imports or builds.

    python bench/run_rss.py [--python PY] [--before DIR] [--rounds 2] [--settle 30]

Each round starts ``run`` with ``--python`` (e.g. a venv with the runtime dependencies only, as the image has),
once with the operator of ``--before`` (an older commit's ``operator`` folder, put first on PYTHONPATH) and once
with this worktree's, one after the other on the same cluster; after its metrics endpoint answers and ``--settle``
seconds more, its VmRSS, VmHWM and threads are read from /proc. ``run`` caps its malloc arenas itself.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from lib import ROOT, Bench, log, write_result


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(pid: int) -> dict[str, int]:
    out = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = int(value.split()[0])
    return out


def measure(kubeconfig: Path, python: str, source: Path, settle: float) -> dict:
    metrics = _port()
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), PYTHONPATH=str(source), SOVEREIGN_SUITE_DRIFT_INTERVAL="60")
    env.pop("MALLOC_ARENA_MAX", None)
    which = subprocess.run([python, "-c", "import sovereign_suite; print(sovereign_suite.__file__)"], env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert which.startswith(str(source)), which
    proc = subprocess.Popen([python, "-m", "sovereign_suite.cli", "run", "--metrics-port", str(metrics),
                             "--liveness-port", str(_port())], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"run did not serve its metrics (exit {proc.poll()})") from None
                time.sleep(0.5)
        time.sleep(settle)
        st = status(proc.pid)
        return {"source": str(source), "rss_mib": st["VmRSS"] / 1024, "hwm_mib": st["VmHWM"] / 1024,
                "threads": st["Threads"]}
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--before", type=Path, required=True)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--settle", type=float, default=30.0)
    args = p.parse_args()
    out: dict = {"python": args.python, "runs": []}
    with Bench("runrss") as b:
        for i in range(args.rounds):
            for label, source in (("before", args.before), ("after", ROOT / "operator")):
                r = measure(b.cluster.kubeconfig, args.python, source, args.settle)
                r["label"] = label
                log(f"round {i + 1} {label}: RSS {r['rss_mib']:.1f} MiB (peak {r['hwm_mib']:.1f}), "
                    f"{r['threads']} threads")
                out["runs"].append(r)
    print(f"wrote {write_result('run_rss', out)}")


if __name__ == "__main__":
    main()
