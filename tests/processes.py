"""What the tests that start real programs (Synapse, PostgreSQL, Redis, nginx, moto, LiteLLM, Prometheus, the
operator) share: a free loopback port, and stopping a process (SIGTERM, then SIGKILL if it does not exit)."""

from __future__ import annotations

import socket
import subprocess


def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's pick; a program started right after binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen | None, timeout: float = 30) -> None:
    """SIGTERM, up to ``timeout`` seconds for a clean exit, then SIGKILL (and reap it)."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
