"""The real node's processes seen from the machine: is a port taken, does a local endpoint answer, stop a
process (TERM, then KILL after a grace period), find the processes running a program, and the inotify limit that
kubelet and containerd need raised."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

from ..cluster import process_alive


def port_busy(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


INOTIFY_INSTANCES = 1024


def raise_inotify_instances() -> None:
    """kubelet's cAdvisor and containerd's CRI plugin fail to start ("too many open files") when the machine's
    inotify instances are used up; several local clusters (4 per kube-apiserver) use up Debian's default 128. Raised for
    the node's lifetime: `down` restores the recorded value (host.SYSCTLS)."""
    path = Path("/proc/sys/fs/inotify/max_user_instances")
    if int(path.read_text()) < INOTIFY_INSTANCES:
        path.write_text(str(INOTIFY_INSTANCES))


def http_ok(port: int, path: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
            return b" 200 " in s.recv(200)
    except OSError:
        return False


def stop_process(pid: int | None, grace: float = 20) -> None:
    if not pid or not process_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if process_alive(pid):
        os.kill(pid, signal.SIGKILL)
        while process_alive(pid):
            time.sleep(0.05)
    try:  # reap it when this process started it (`cluster up` and `down` in one process, as in the tests)
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def pids_of(program: str) -> list[int]:
    """Processes running ``program`` (a path)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/exe") == program:
                    found.append(int(entry))
            except OSError:
                continue
    return found
