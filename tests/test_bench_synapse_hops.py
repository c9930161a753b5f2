"""Where a message's latency goes (bench/synapse_load_hops.py): Synapse's log lines as 1.163.2 writes them, joined
with the database's rows and the load client's record."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "bench"
sys.path.insert(0, str(BENCH))  # synapse_load_hops imports synapse_load_stats as the bench does
_spec = importlib.util.spec_from_file_location("synapse_load_hops", BENCH / "synapse_load_hops.py")
hops = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hops)

D = "2026-12-04 16:00:"
CLIENTS = [{"name": "a", "user": "@a:fr.test", "room": "!r"}, {"name": "b", "user": "@b:fr.test", "room": "!r"}]


def line(sec: str, logger: str, message: str, request: str = "-") -> str:
    # synapse/config/logger.py's format: asctime - name - lineno - levelname - request - message
    return f"{D}{sec} - {logger} - 1 - INFO - {request} - {message}"


def access(sec: str, user: str, processing: float, method: str, uri: str) -> str:
    return line(sec, "synapse.access.http.8008", f"100.128.1.3 - 8008 - {{{user}}} Processed request: "
                f"{processing:.3f}sec/0.001sec ru=(0.010sec, 0.000sec) db=(0.000sec/0.002sec/2) 57B 200 "
                f'"{method} {uri} HTTP/1.0" "Python-urllib/3.13" [0 dbevts]', request=f"{method}-7")


def test_a_log_line_of_each_kind_is_parsed_and_others_are_ignored():
    text = "\n".join([
        access("01,500", "@a:fr.test", 0.100, "PUT", "/_matrix/client/v3/rooms/%21r/send/m.room.message/a-0-x"),
        line("01,520", "synapse.replication.tcp.resource", "Sending update for events: 41 -> 42 (limited: False, "
             "updates: 1, max token: 42)"),
        f"{D}01,530 - synapse.replication.tcp.handler - 638 - DEBUG - - - Received rdata events "
        "(synapse-event-persister-0) -> 42",
        "a traceback line", line("01,540", "synapse.foo", "something else"),
    ])
    p = hops.parse_log(text)
    end = hops.wall("2026-12-04 16:00:01,500")
    [[t, start, user, method, uri]] = p["requests"]
    assert (t, user, method) == (end, "@a:fr.test", "PUT") and start == pytest.approx(end - 0.101)
    assert p["announced"] == [[hops.wall("2026-12-04 16:00:01,520"), 41, 42]]
    assert p["rdata"] == {("synapse-event-persister-0", 42): hops.wall("2026-12-04 16:00:01,530")}


def test_each_hop_of_a_message_persisted_by_a_worker_and_synced_by_another():
    t0 = hops.wall("2026-12-04 16:00:01,000")
    run = {"clock_offset": 1000.0, "sent": [["a", "a-0-x", "!r", t0 - 1000.0 - 0.010, 0, 200]],
           "seen": [["b", "a-0-x", t0 - 1000.0 + 0.300]]}
    logs = {
        "synapse-fr": access("01,120", "@a:fr.test", 0.119, "PUT",
                             "/_matrix/client/v3/rooms/%21r/send/m.room.message/a-0-x"),
        "synapse-event-persister-0": line("01,080", "synapse.replication.tcp.resource",
                                          "Sending update for events: 41 -> 42 (limited: False)"),
        "synapse-sync-1": "\n".join([
            f"{D}01,100 - synapse.replication.tcp.handler - 638 - DEBUG - - - Received rdata events "
            "(synapse-event-persister-0) -> 42",
            access("01,150", "@b:fr.test", 4.0, "GET", "/_matrix/client/v3/sync?since=s1&timeout=5000"),
            access("01,290", "@b:fr.test", 0.1, "GET", "/_matrix/client/v3/sync?since=s2&timeout=5000")]),
    }
    rows = [["42", "synapse-event-persister-0", str(int((t0 + 0.050) * 1000)), "a-0-x", str(int((t0 + 0.020) * 1000))]]
    [h] = hops.message_hops(run, CLIENTS, logs, rows, main="synapse-fr")
    assert h["total"] == pytest.approx(0.310)
    assert h["client_to_main"] == pytest.approx(0.010, abs=1e-6)  # main's arrival: 01,120 - 0.119 - 0.001
    assert h["main_to_built"] == pytest.approx(0.020, abs=1e-6)
    assert h["built_to_persisted"] == pytest.approx(0.030, abs=1e-6)
    assert h["persisted_to_announced"] == pytest.approx(0.030, abs=1e-6)
    assert h["announced_to_rdata"] == pytest.approx(0.020, abs=1e-6)
    # the sync that answered is the last one ending before the client had the message (01,290, not 01,150)
    assert h["woken_to_sync_written"] == pytest.approx(0.190, abs=1e-6)
    assert h["sync_written_to_client"] == pytest.approx(0.010, abs=1e-6)
    assert h["put_answered_after_persist"] == pytest.approx(0.070, abs=1e-6)
    s = hops.summarise_hops([h, {**h, "total": 0.5}])
    assert s["total"]["samples"] == 2 and s["total"]["p95_s"] == pytest.approx(0.5)
    assert s["total"]["min_s"] == pytest.approx(0.310)


def test_a_monolith_message_has_no_replication_hops():
    t0 = hops.wall("2026-12-04 16:00:01,000")
    run = {"clock_offset": 0.0, "sent": [["a", "a-0-x", "!r", t0, 0, 200], ["a", "a-1-y", "!r", t0, 0, 429]],
           "seen": [["b", "a-0-x", t0 + 0.2]]}
    logs = {"synapse-fr": "\n".join([
        access("01,060", "@a:fr.test", 0.05, "PUT", "/_matrix/client/v3/rooms/%21r/send/m.room.message/a-0-x"),
        access("01,150", "@b:fr.test", 3.0, "GET", "/_matrix/client/v3/sync?since=s1")])}
    rows = [["7", "master", str(int((t0 + 0.040) * 1000)), "a-0-x", str(int((t0 + 0.030) * 1000))],
            ["8", "master", "0", "", "0"]]
    [h] = hops.message_hops(run, CLIENTS, logs, rows, main="synapse-fr")
    assert "persisted_to_announced" not in h and "announced_to_rdata" not in h
    assert h["built_to_persisted"] == pytest.approx(0.010, abs=1e-6)
    assert h["woken_to_sync_written"] == pytest.approx(0.110, abs=1e-6)
    assert h["sync_written_to_client"] == pytest.approx(0.050, abs=1e-6)
