"""devcluster's process check (cluster.process_alive): what `cluster down` and the real node wait on."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from sovereign_suite.devcluster.cluster import process_alive


def test_a_running_process_is_alive_and_a_reaped_one_is_not():
    assert process_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid names no process any more
    assert not process_alive(child.pid)


def test_a_zombie_counts_as_gone():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    # exited but not yet reaped by its parent (this test): state Z in /proc/<pid>/stat
    while time.monotonic() < deadline:
        with open(f"/proc/{child.pid}/stat") as f:
            if f.read().split(")")[-1].split()[0] == "Z":
                break
        time.sleep(0.02)
    else:
        raise AssertionError("the child never became a zombie")
    try:
        assert not process_alive(child.pid)
    finally:
        child.wait()
