"""moto's S3 server (hack/install-backup-tools.sh) as a real S3-compatible endpoint on loopback, with one bucket made
in its region: the country's object storage in the backup, restore, adapter-loader and trainer tests."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sovereign_suite.backup.s3 import Client, Credentials

from .processes import free_port

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def moto_bucket(bucket: str, region: str, access: str, secret: str, host: str = "127.0.0.1") -> Iterator[Client]:
    """A running moto server holding ``bucket`` (made in ``region``, as the platform team makes it before any
    backup or training), and a client of it; the server stops on exit. ``host``: the address it listens on
    (the real node's pods reach the machine's own address, not its loopback)."""
    found = subprocess.run([str(ROOT / "hack/install-backup-tools.sh"), "--print"], capture_output=True, text=True)
    if found.returncode != 0:
        pytest.fail("moto_server is missing: run hack/install-backup-tools.sh")
    port = free_port()
    proc = subprocess.Popen([found.stdout.strip(), "-H", host, "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://{host}:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint + "/", timeout=2).read()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("moto_server did not start")
            time.sleep(0.2)
    client = Client(endpoint, bucket, region, Credentials(access, secret))
    try:
        client._request("PUT", body=b'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                                    b"<LocationConstraint>" + region.encode() + b"</LocationConstraint>"
                                    b"</CreateBucketConfiguration>")
        yield client
    finally:
        proc.terminate()
        proc.wait(10)
