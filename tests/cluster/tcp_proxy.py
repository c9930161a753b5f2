"""A TCP proxy in front of the API server, to cut one process off it (a network partition as that process sees
it): ``cut()`` turns the proxy into a black hole — connections stay open, nothing is forwarded either way, new
connections are accepted and get nothing — as when a node's traffic is dropped. TLS passes through unchanged
(the API server's certificate names 127.0.0.1, where the proxy listens too)."""

from __future__ import annotations

import socket
import threading


class BlackHoleProxy:
    def __init__(self, upstream_host: str, upstream_port: int, listen: str = "127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)  # read at each connection: may be set later
        self.listener = socket.create_server((listen, 0))
        self.port = self.listener.getsockname()[1]
        self._cut = threading.Event()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def cut(self) -> None:
        self._cut.set()

    def close(self) -> None:
        self._closed.set()
        self.listener.close()
        with self._lock:
            for s in self._sockets:
                try:
                    s.close()
                except OSError:
                    pass

    def _keep(self, s: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(s)
        return s

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self._keep(client)
            if self._cut.is_set():
                continue  # accepted, never answered
            try:
                server = self._keep(socket.create_connection(self.upstream, timeout=5))
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True, name="proxy-pump").start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if self._cut.is_set():
                    continue  # dropped: the black hole
                dst.sendall(data)
        except OSError:
            pass
        finally:
            if not self._cut.is_set():
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
