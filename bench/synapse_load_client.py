"""The load of bench/synapse_load.py: K Matrix clients sending and syncing through a tenant's ingress.

Runs inside the Matrix lab's network namespace (started by bench/synapse_load.py with the Synapse venv's Python;
standard library only). Reads its plan as JSON on stdin:

    {"base": "https://matrix.<domain>", "ca": "<CA file>", "seconds": 60, "rate": 2.0, "drain": 30,
     "arrivals": "poisson", "seed": 0, "clients": [{"name": "u0", "token": "...", "room": "!r:<domain>"}, ...]}

Each client has two threads on their own keep-alive HTTPS connections: a syncer (``/sync`` long-polls with a
filter keeping only the rooms' messages) and a sender (``PUT .../send/m.room.message/<txn>``, at ``rate``
messages per second on average; when Synapse answers slower than the pace it sends as fast as it is answered).
``arrivals`` says when a client's messages are due (``send_offsets``): ``poisson`` (the default), each client on
its own seeded random stream, as independent users send; ``lockstep``, every client at 0, 1/rate, 2/rate, ... s,
so all K send at once (the runs up to the 2026-12-04 sweep, which measured this burst). Senders start
once every syncer holds its first ``next_batch``; they stop after ``seconds``; syncers go on until every accepted
message was seen by every other member of its room or ``drain`` seconds passed. All times are this process's
``time.monotonic()``, so a send and a receipt by two clients compare on one clock.

Prints one JSON document: ``sent`` [client, txn, room, t_start, t_end, status], ``seen`` [client, txn, t_recv],
``limited`` (syncs whose timeline Synapse cut short: messages in such a gap are counted lost), ``sync_errors``,
``window`` [t_first_send, t_last_send], the process's own CPU seconds and ``clock_offset`` (``time.time()`` minus
``time.monotonic()``: the wall clock of Synapse's logs is a monotonic time plus this offset).
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import random
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

# the rooms' messages only: no presence, account data, receipts or state beyond what the timeline needs
FILTER = json.dumps({
    "presence": {"types": []}, "account_data": {"types": []},
    "room": {"timeline": {"limit": 1000, "types": ["m.room.message"]}, "state": {"lazy_load_members": True},
             "ephemeral": {"types": []}, "account_data": {"types": []}},
}, separators=(",", ":"))
SYNC_TIMEOUT_MS = 5000
ARRIVALS = ("poisson", "lockstep")


def send_offsets(rate: float, arrivals: str, seed: str):
    """Seconds after the senders' start at which one client's successive messages are due, without end.

    poisson: exponential gaps of mean 1/rate from a generator seeded by ``seed`` (the run's seed and the client's
    name), so K clients are K independent Poisson streams and a rerun with the same seed has the same schedule.
    lockstep: n/rate, the same instants for every client."""
    if arrivals == "lockstep":
        return (n / rate for n in itertools.count())
    if arrivals != "poisson":
        raise ValueError(f"arrivals: {arrivals!r} is not one of {', '.join(ARRIVALS)}")
    rng = random.Random(seed)
    return itertools.accumulate(rng.expovariate(rate) for _ in itertools.count())


class Connection:
    """One keep-alive HTTPS connection; reconnects after an error."""

    def __init__(self, base: str, context: ssl.SSLContext):
        url = urllib.parse.urlsplit(base)
        self.host, self.port, self.context = url.hostname, url.port or 443, context
        self.conn: http.client.HTTPSConnection | None = None

    def request(self, method: str, path: str, token: str, body: dict | None = None) -> tuple[int, dict]:
        if self.conn is None:
            self.conn = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=60)
        headers = {"Authorization": f"Bearer {token}", "Host": self.host}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as err:
            self.conn.close()
            self.conn = None
            return 0, {"error": repr(err)}
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, {"body": raw[:200].decode(errors="replace")}


class Run:
    def __init__(self, plan: dict):
        self.plan = plan
        send_offsets(plan["rate"], plan.get("arrivals", "lockstep"), "")  # a bad value fails here, not in a thread
        self.context = ssl.create_default_context(cafile=plan["ca"])
        self.lock = threading.Lock()
        self.sent: list[list] = []
        self.seen: list[list] = []
        self.limited = 0
        self.sync_errors = 0
        self.synced = threading.Barrier(len(plan["clients"]) + 1)
        self.stop_sending = threading.Event()
        self.stop_syncing = threading.Event()

    def syncer(self, client: dict) -> None:
        conn = Connection(self.plan["base"], self.context)
        since = None
        query = {"filter": FILTER}
        first = True
        while not self.stop_syncing.is_set():
            q = dict(query, timeout="0" if first else str(SYNC_TIMEOUT_MS))
            if since:
                q["since"] = since
            status, out = conn.request("GET", "/_matrix/client/v3/sync?" + urllib.parse.urlencode(q), client["token"])
            now = time.monotonic()
            if status != 200:
                with self.lock:
                    self.sync_errors += 1
                time.sleep(0.2)
                continue
            since = out["next_batch"]
            got, cut = [], 0
            for room in ((out.get("rooms") or {}).get("join") or {}).values():
                timeline = room.get("timeline") or {}
                cut += bool(timeline.get("limited")) and not first
                got += [e["content"].get("txn") for e in timeline.get("events", [])
                        if e.get("type") == "m.room.message" and "txn" in e.get("content", {})]
            with self.lock:
                self.limited += cut
                if not first:
                    self.seen += [[client["name"], txn, now] for txn in got]
            if first:
                first = False
                self.synced.wait()

    def sender(self, client: dict) -> None:
        conn = Connection(self.plan["base"], self.context)
        room = urllib.parse.quote(client["room"], safe="")
        offsets = send_offsets(self.plan["rate"], self.plan.get("arrivals", "lockstep"),
                               f"{self.plan.get('seed', 0)}:{client['name']}")
        start, seq = time.monotonic(), 0
        while not self.stop_sending.is_set():
            due = start + next(offsets)
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
                if self.stop_sending.is_set():
                    break
            txn = f"{client['name']}-{seq}-{uuid.uuid4().hex[:8]}"
            t0 = time.monotonic()
            status, _ = conn.request("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}",
                                     client["token"], {"msgtype": "m.text", "body": f"load {txn}", "txn": txn})
            with self.lock:
                self.sent.append([client["name"], txn, client["room"], t0, time.monotonic(), status])
            seq += 1

    def all_seen(self) -> bool:
        members: dict[str, set[str]] = {}
        for c in self.plan["clients"]:
            members.setdefault(c["room"], set()).add(c["name"])
        with self.lock:
            seen: dict[str, set[str]] = {}
            for name, txn, _ in self.seen:
                seen.setdefault(txn, set()).add(name)
            return all(members[room] - {name} <= seen.get(txn, set())
                       for name, txn, room, _, _, status in self.sent if status == 200)

    def run(self) -> dict:
        syncers = [threading.Thread(target=self.syncer, args=(c,), daemon=True) for c in self.plan["clients"]]
        senders = [threading.Thread(target=self.sender, args=(c,), daemon=True) for c in self.plan["clients"]]
        for t in syncers:
            t.start()
        self.synced.wait(timeout=120)
        began = time.monotonic()
        for t in senders:
            t.start()
        time.sleep(self.plan["seconds"])
        self.stop_sending.set()
        for t in senders:
            t.join(timeout=70)
        ended = time.monotonic()
        deadline = ended + self.plan["drain"]
        while time.monotonic() < deadline and not self.all_seen():
            time.sleep(0.5)
        drained = time.monotonic() - ended
        self.stop_syncing.set()
        for t in syncers:
            t.join(timeout=SYNC_TIMEOUT_MS / 1000 + 65)
        cpu = os.times()
        return {"sent": self.sent, "seen": self.seen, "limited": self.limited, "sync_errors": self.sync_errors,
                "window": [began, ended], "drain_seconds": drained, "client_cpu_seconds": cpu.user + cpu.system,
                "clock_offset": time.time() - time.monotonic()}


if __name__ == "__main__":
    print(json.dumps(Run(json.loads(sys.stdin.read())).run()), flush=True)
