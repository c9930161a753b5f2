"""Where a message's send->sync latency goes (bench/synapse_load.py ``--hops``): per message and receiving member,
the time of each hop from Synapse's own logs, the database and the load client's clock.

Synapse (element-hq/synapse v1.163.2) writes, per process:
- the request log at INFO when a request ends (synapse/http/site.py, ``SynapseRequest._finished_processing``:
  ``{user} Processed request: <processing>sec/<response send>sec ... "<method> <uri> ..."``, the processing time
  counted from the request's arrival, so arrival = log time - processing - response send);
- on an event persister, ``Sending update for events: <last> -> <token>`` at INFO when it announces new rows on
  the replication stream (synapse/replication/tcp/resource.py, ``ReplicationStreamer._run_notifier_loop``);
- on every other process, ``Received rdata events (<writer>) -> <token>`` at DEBUG when it handles the RDATA
  (synapse/replication/tcp/handler.py, ``ReplicationCommandHandler.on_rdata``), which goes on to wake the notifier
  in the same call (synapse/replication/tcp/client.py, ``ReplicationDataHandler.on_rdata`` ->
  ``Notifier.notify_new_room_events``): the one logger raised to DEBUG by LOG_CONFIG;
- in the database, ``events.origin_server_ts``: main's clock when it built the event (synapse/events/builder.py,
  ``create_local_event_from_event_dict``), and ``events.received_ts``: the persisting process's clock when it wrote
  the event's row (synapse/storage/databases/main/events.py, ``_store_event_txn``).
Log times have a millisecond resolution; the load client's monotonic times become wall times with its
``clock_offset``. Pure functions except ``collect``; unit-tested in tests/test_bench_synapse_load.py.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from datetime import datetime
from pathlib import Path

from synapse_load_stats import percentile

# Synapse's default log format (synapse/config/logger.py, DEFAULT_LOG_CONFIG) with the replication handler's
# logger at DEBUG; everything else stays at INFO.
LOG_CONFIG = {
    "version": 1,
    "formatters": {"precise": {"format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - "
                                         "%(message)s"}},
    "filters": {"context": {"()": "synapse.logging.context.LoggingContextFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "precise", "filters": ["context"]}},
    "loggers": {"synapse.replication.tcp.handler": {"level": "DEBUG"}},
    "root": {"level": "INFO", "handlers": ["console"]},
    "disable_existing_loggers": False,
}
LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - (\S+) - \d+ - \w+ - \S+ - (.*)$")
ACCESS = re.compile(r'\{(?P<user>[^}]*)\} Processed request: (?P<proc>[\d.]+)sec/(?P<send>-?[\d.]+)sec .*? '
                    r'(?P<code>\d+!?) "(?P<method>\S+) (?P<uri>\S+) ')
ANNOUNCE = re.compile(r"Sending update for events: (\d+) -> (\d+)")
RDATA = re.compile(r"Received rdata events \((\S+)\) -> (\d+)")
TXN = re.compile(r"/send/m\.room\.message/([^/?\s]+)")
MESSAGES = ("SELECT e.stream_ordering, e.instance_name, e.received_ts, (j.json::json)->'content'->>'txn', "
            "e.origin_server_ts "
            "FROM events e JOIN event_json j USING (event_id) WHERE e.type = 'm.room.message'")
HOPS = [
    ("client_to_main", "client PUT start -> main has the request (ingress, router, main's accept)"),
    ("main_to_built", "main has the request -> main built the event (auth, the room's latest events and state)"),
    ("built_to_persisted", "event built -> its row written (context, push rules, [HTTP to the persister], the "
                           "persister's queue)"),
    ("persisted_to_announced", "event row written -> persister announces it on the replication stream"),
    ("announced_to_rdata", "announced -> the receiver's sync process handled the RDATA (Redis; notifier woken)"),
    ("woken_to_sync_written", "notifier woken (monolith: row written) -> the receiver's /sync answered"),
    ("sync_written_to_client", "/sync answered -> the client has it (router, ingress, client)"),
    ("total", "client PUT start -> the client has it (the bench's send->sync latency)"),
    ("put_answered_after_persist", "event row written -> main answers the PUT (workers: main waits for the RDATA)"),
]


def wall(stamp: str) -> float:
    """A log time (the process's local time, milliseconds) as seconds since the epoch."""
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def parse_log(text: str) -> dict[str, list]:
    """One process's log: its requests [end, start, user, method, uri], its announcements [time, last, token],
    the RDATA it handled {(writer, token): time}."""
    out: dict[str, list] = {"requests": [], "announced": [], "rdata": {}}
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        t, body = wall(m.group(1)), m.group(3)
        if a := ACCESS.search(body):
            start = t - float(a["proc"]) - max(0.0, float(a["send"]))
            out["requests"].append([t, start, a["user"].split("|")[-1], a["method"], a["uri"]])
        elif a := ANNOUNCE.search(body):
            out["announced"].append([t, int(a[1]), int(a[2])])
        elif a := RDATA.search(body):
            out["rdata"].setdefault((a[1], int(a[2])), t)
    return out


def message_hops(run: dict, clients: list[dict], logs: dict[str, str], rows: list[list[str]],
                 main: str) -> list[dict[str, float]]:
    """Per (accepted message, receiving member): each hop's duration in seconds (a hop that does not apply to
    the topology, or whose log line is missing, is left out of that sample). ``logs``: process name -> log text,
    ``main`` the main process's name; ``rows``: the MESSAGES query's rows."""
    off = run["clock_offset"]
    parsed = {name: parse_log(text) for name, text in logs.items()}
    user_of = {c["name"]: c["user"] for c in clients}
    room_members: dict[str, set[str]] = {}
    for c in clients:
        room_members.setdefault(c["room"], set()).add(c["name"])
    put = {}  # txn -> (main's arrival, main's answer)
    for end, start, _user, method, uri in parsed[main]["requests"]:
        if method == "PUT" and (m := TXN.search(uri)):
            put[m[1]] = (start, end)
    persisted = {r[3]: (int(r[0]), r[1], int(r[2]) / 1000, int(r[4]) / 1000) for r in rows if r[3]}
    syncs = {}  # user -> sorted [(end, process)]
    for name, p in parsed.items():
        for end, _start, user, method, uri in p["requests"]:
            if method == "GET" and "/sync" in uri:
                syncs.setdefault(user, []).append((end, name))
    for v in syncs.values():
        v.sort()
    first_seen: dict[tuple[str, str], float] = {}
    for name, txn, t in run["seen"]:
        first_seen[(txn, name)] = min(t, first_seen.get((txn, name), t))
    out = []
    for sender, txn, room, t0, _t1, status in run["sent"]:
        if status != 200 or txn not in persisted:
            continue
        token, writer, t_row, t_built = persisted[txn]
        announced = _announced(parsed.get(writer), token, t_row)
        for member in sorted(room_members[room] - {sender}):
            if (txn, member) not in first_seen:
                continue
            t_client = first_seen[(txn, member)] + off
            hop = {"total": t_client - (t0 + off), "built_to_persisted": t_row - t_built}
            if txn in put:
                hop["client_to_main"] = put[txn][0] - (t0 + off)
                hop["main_to_built"] = t_built - put[txn][0]
                hop["put_answered_after_persist"] = put[txn][1] - t_row
            answered = [s for s in syncs.get(user_of.get(member, ""), []) if s[0] <= t_client]
            if answered:
                t_sync, process = answered[-1]
                hop["sync_written_to_client"] = t_client - t_sync
                woken = t_row
                if writer in parsed and process != writer:  # the event came over replication
                    t_rdata = parsed[process]["rdata"].get((writer, token))
                    if announced is not None:
                        hop["persisted_to_announced"] = announced - t_row
                    if t_rdata is not None and announced is not None:
                        hop["announced_to_rdata"] = t_rdata - announced
                    woken = t_rdata
                if woken is not None:
                    hop["woken_to_sync_written"] = t_sync - woken
            out.append(hop)
    return out


def _announced(parsed: dict | None, token: int, after: float) -> float | None:
    """When the writer announced ``token``: its first announcement covering it, not before the row's time
    (less a log time's rounding)."""
    for t, last, upto in (parsed or {}).get("announced", []):
        if last < token <= upto and t >= after - 0.002:
            return t
    return None


def summarise_hops(samples: list[dict[str, float]]) -> dict[str, dict]:
    """Per hop: samples, min, p50, p95 and mean in seconds (the min is the hop's cost with the least waiting)."""
    out = {}
    for key, _ in HOPS:
        values = [s[key] for s in samples if key in s]
        if values:
            out[key] = {"samples": len(values), "min_s": min(values), "p50_s": percentile(values, 50),
                        "p95_s": percentile(values, 95), "mean_s": statistics.mean(values)}
    return out


def kept(folder: Path) -> dict[str, dict]:
    """The hops of a round from the folder bench/synapse_load.py --hops kept (its logs and run.json)."""
    data = json.loads((folder / "run.json").read_text())
    logs = {f.stem: f.read_text(errors="replace") for f in folder.glob("*.log")}
    return summarise_hops(message_hops(data["run"], data["clients"], logs, data["rows"], main="synapse-fr"))


def collect(lab, app, main: str = "synapse-fr") -> tuple[dict[str, str], list[list[str]]]:
    """The Synapse processes' logs and the messages' rows, read before the lab is torn down."""
    from tests.cluster.matrix_workers_lab import sql

    logs = {name: lab.log(name) for name in lab.procs if name == main or name.startswith("synapse-")
            and name not in ("synapse-redis", "synapse-router")}
    return logs, sql(lab, "fr", app, MESSAGES)


if __name__ == "__main__":
    # python bench/synapse_load_hops.py /tmp/synapse-hops-<topology>-<rate>-<time> ...: min / p50 / p95 per hop (ms)
    for arg in sys.argv[1:]:
        print(Path(arg).name)
        for key, text in HOPS:
            if (h := kept(Path(arg)).get(key)):
                print(f"  {key:28} {h['min_s'] * 1000:6.0f} {h['p50_s'] * 1000:6.0f} {h['p95_s'] * 1000:6.0f}  {text}")
