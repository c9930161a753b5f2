"""Watches multiplexed on one event loop (reconcile/watchloop.py, watchstream.py): the thread count does not grow with
the watches, a watch that brings nothing is a server that does not answer within ``watch + read`` as before, and
a stopped informer ends. No cluster: the server is a loopback listener that never answers (test_transport.py);
the events of a real API server are covered by tests/cluster/test_multiplexed_watches.py."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from sovereign_suite.reconcile import watchstream
from sovereign_suite.reconcile.cache import ClusterCache
from sovereign_suite.reconcile.informer import Informer
from sovereign_suite.reconcile.kube import Kind, Unreachable
from sovereign_suite.reconcile.watchloop import WatchLoop

from .test_transport import FAST, Silent, kube_for, silent  # noqa: F401 (fixture)

KINDS = tuple(("v1", f"Kind{i}") for i in range(18))  # about as many child kinds as the operator watches


def test_a_multiplexed_watch_that_brings_nothing_ends_after_its_timeout_plus_the_read_deadline(silent):  # noqa: F811
    kube = kube_for(f"http://127.0.0.1:{silent.port}")
    loop = WatchLoop("test-watches")

    async def drain() -> None:
        session = loop.acquire(kube)
        try:
            async for _ in watchstream.watch(session, kube, Kind("v1", "Pod", "pods", True), "1", None, None, None,
                                             FAST.watch):
                pass
        finally:
            await loop.release(kube)

    started = time.monotonic()
    with pytest.raises(Unreachable):
        loop.spawn(drain).result(timeout=10)
    assert 1.3 < time.monotonic() - started < 3.0
    assert "watch Pod" in kube.reachability.failure()
    assert loop.sessions() == 0  # the cluster's last watch closed its session
    loop.stop()


def test_the_watches_of_many_clusters_add_no_thread_per_watch():
    """27 member caches of 20-odd watches each, against servers that never answer: the threads added are the loop
    and the list pool, whatever the number of watches."""
    servers = [Silent() for _ in range(27)]
    loop = WatchLoop("test-watches", list_threads=4, lists_per_cluster=2)
    before = threading.active_count()
    caches = []
    try:
        for s in servers:
            kube = kube_for(f"http://127.0.0.1:{s.port}", max_retries=0)
            caches.append(ClusterCache(kube, KINDS, referenceable=False, watches=loop).start())
        watches = sum(len(c.informers()) for c in caches)
        assert watches >= 27 * 20
        time.sleep(2.0)  # every list has had its turn to time out at least once
        assert threading.active_count() - before <= 1 + 4
        assert all(c.failing() for c in caches)  # each cluster says it does not answer
        assert loop.lists.thread_count() <= 4
    finally:
        for c in caches:
            c.stop()
        loop.stop()
        for s in servers:
            s.close()


def test_a_stopped_informer_ends_and_closes_its_clusters_session(silent):  # noqa: F811
    kube = kube_for(f"http://127.0.0.1:{silent.port}", max_retries=0)
    loop = WatchLoop("test-watches")
    inf = Informer(kube, "v1", "Pod", strip=dict, watches=loop).start()
    try:
        deadline = time.monotonic() + 10
        while not inf.last_error and time.monotonic() < deadline:
            time.sleep(0.05)
        assert inf.last_error and not inf.synced.is_set()  # its list got no answer: failing, never listed
    finally:
        inf.stop()
    assert inf.done.wait(5)
    deadline = time.monotonic() + 5
    while loop.sessions() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert loop.sessions() == 0
    loop.stop()


def test_an_informer_stopped_before_its_coroutine_began_is_done():
    loop = WatchLoop("test-watches")
    kube = kube_for("http://127.0.0.1:9", max_retries=0)
    infs = [Informer(kube, "v1", "Pod", strip=dict, watches=loop) for _ in range(50)]
    for inf in infs:
        inf.start()
        inf.stop()
    assert all(inf.done.wait(5) for inf in infs)
    loop.stop()


def test_aiohttp_errors_map_to_the_transport_rules():
    import aiohttp

    assert watchstream.aio_transport_error(asyncio.TimeoutError()).retriable is False
    assert watchstream.aio_transport_error(aiohttp.SocketTimeoutError("Timeout on reading data")).retriable is False
    assert watchstream.aio_transport_error(aiohttp.ServerDisconnectedError()).retriable is True
    assert watchstream.aio_transport_error(ConnectionResetError(104, "reset")).retriable is True
    assert watchstream.aio_transport_error(ValueError("bug")) is None


def test_a_tls_connection_of_the_loop_reads_into_a_small_buffer(tmp_path):
    """asyncio gives each TLS connection a 256 KiB read buffer; the watch loop's get 4 KiB (540 watch connections
    at 27 members held 135 MiB otherwise). A real TLS handshake with a loopback server (certificate checks off: the
    certificate is not what is tested); an event of 300 KiB, many TLS records, still arrives whole."""
    import shutil
    import ssl

    from sovereign_suite.reconcile.watchloop import TLS_READ_BUFFER

    from .test_transport import _expired_certificate

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, key = _expired_certificate(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_tls.check_hostname = False
    client_tls.verify_mode = ssl.CERT_NONE
    loop = WatchLoop("test-watches")

    event = b'{"type": "ADDED", "object": {"data": "' + b"x" * (300 * 1024) + b'"}}\n'

    async def send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(event)
        await writer.drain()

    async def connect() -> tuple[int, bytes]:
        server = await asyncio.start_server(send, "127.0.0.1", 0, ssl=server_tls)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_tls, limit=1 << 20)
            size = len(writer.transport._ssl_protocol._ssl_buffer)
            line = await reader.readline()
            writer.close()
            return size, line
        finally:
            server.close()

    size, line = loop.spawn(connect).result(timeout=10)
    assert size == TLS_READ_BUFFER == 4096
    assert line == event
    loop.stop()
