"""Cluster DNS for the real node's pods (the local cluster has no CoreDNS): answers A queries for
``<service>.<namespace>.svc.cluster.local`` with the Service's ClusterIP, NODATA for other types of those names,
NXDOMAIN for other cluster.local names, and relays everything else to the host's resolver.

Two pods in kube-system run it. The resolver is on the host network (the API server listens on loopback only) and
reads Services with the cluster's admin certificate (a hostPath: development only). kube-router leaves
host-network pods out of NetworkPolicy peers, so the pod the tenants' egress policies allow (label
k8s-app=kube-dns, behind the Service kube-dns, 10.96.0.10, which kubelet gives pods) is a relay on the pod network
that passes every query to the resolver (``--upstream``). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import struct
import threading
import time
import urllib.request

SUFFIX = ".svc.cluster.local"


class Records:
    def __init__(self, server: str, ca: str, cert: str, key: str):
        self.url = server.rstrip("/") + "/api/v1/services"
        self.ctx = ssl.create_default_context(cafile=ca)
        self.ctx.load_cert_chain(cert, key)
        self.names: dict[str, list[str]] = {}

    def refresh(self) -> None:
        with urllib.request.urlopen(self.url, context=self.ctx, timeout=5) as resp:
            items = json.load(resp)["items"]
        names = {}
        for svc in items:
            ips = [ip for ip in svc["spec"].get("clusterIPs") or [svc["spec"].get("clusterIP")] if ip and ip != "None"]
            if ips:
                names[f"{svc['metadata']['name']}.{svc['metadata']['namespace']}{SUFFIX}".lower()] = ips
        self.names = names

    def loop(self, interval: float) -> None:
        while True:
            try:
                self.refresh()
            except Exception as err:  # noqa: BLE001 - keep answering from the last list
                print(f"refresh failed: {err}", flush=True)
            time.sleep(interval)


def parse_question(msg: bytes) -> tuple[str, int, int]:
    """(name, qtype, offset after the question) of a query's first question."""
    labels, i = [], 12
    while msg[i]:
        labels.append(msg[i + 1:i + 1 + msg[i]].decode("ascii", "replace"))
        i += 1 + msg[i]
    qtype = struct.unpack("!H", msg[i + 1:i + 3])[0]
    return ".".join(labels).lower(), qtype, i + 5


def answer(msg: bytes, records: dict[str, list[str]]) -> bytes | None:
    """The reply to ``msg``, or None when the name is not the cluster's (relay it)."""
    name, qtype, end = parse_question(msg)
    if not name.endswith(".cluster.local") and name != "cluster.local":
        return None
    ips = records.get(name)
    rcode = 0 if ips is not None else 3
    answers = [ip for ip in (ips or []) if qtype == 1 and ":" not in ip]
    flags = 0x8400 | (msg[2] & 0x01) << 8 | rcode  # response, authoritative, RD copied
    header = msg[:2] + struct.pack("!HHHHH", flags, 1, len(answers), 0, 0)
    body = msg[12:end]
    for ip in answers:
        body += struct.pack("!HHHLH", 0xC00C, 1, 1, 5, 4) + socket.inet_aton(ip)
    return header + body


def upstream() -> str:
    with open("/etc/resolv.conf") as f:
        for line in f:
            if line.startswith("nameserver"):
                return line.split()[1]
    return "127.0.0.1"


def serve(listen: str, records: Records | None, relay_to: str | None = None) -> None:
    """Answer cluster names from ``records`` and relay the others; without records, relay everything."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((listen, 53))
    relay_to = relay_to or upstream()
    print(f"serving {SUFFIX} on {listen}:53, relaying other names to {relay_to}", flush=True)

    def relay(msg: bytes, peer) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
            up.settimeout(3)
            try:
                up.sendto(msg, (relay_to, 53))
                sock.sendto(up.recv(4096), peer)
            except OSError:
                pass

    while True:
        msg, peer = sock.recvfrom(4096)
        try:
            reply = answer(msg, records.names) if records is not None else None
        except (IndexError, struct.error):
            continue
        if reply is None:
            threading.Thread(target=relay, args=(msg, peer), daemon=True).start()
        else:
            sock.sendto(reply, peer)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    for flag in ("--server", "--ca", "--cert", "--key", "--upstream"):
        p.add_argument(flag)
    p.add_argument("--interval", type=float, default=1.0)
    a = p.parse_args()
    records = None
    if a.server:
        records = Records(a.server, a.ca, a.cert, a.key)
        records.refresh()
        threading.Thread(target=records.loop, args=(a.interval,), daemon=True).start()
    serve(a.listen, records, a.upstream)


if __name__ == "__main__":
    main()
