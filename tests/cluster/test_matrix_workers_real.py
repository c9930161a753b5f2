"""Issue 26: the operator's Synapse worker topology run with real Synapse processes, real PostgreSQL, real Redis
and the rendered router (tests/cluster/matrix_workers_lab.py on top of tests/cluster/matrix_lab.py).

FR runs main + 2 sync workers + 2 event persisters + 1 federation sender + 1 media repository + 1 background
worker, from what the operator applied; DE stays a monolith. A client goes through the ingress and the router:
it registers, talks in rooms whose events two different persisters write (``events.instance_name`` in FR's
database), syncs (the router's log shows a sync worker answered, and that worker's own access log has the
request; when that worker dies the other one answers and no message is lost), uploads media (the media worker's
log and store), and federates with DE, the transactions leaving FR only from the federation sender (its log; the main process's and the other workers' logs have no outbound
transaction; main's own requests, the invite, went through the sender's federation proxy). Redis is TLS only
and verifies the processes' client certificate (tests/components/test_matrix_redis.py proves the refusals).
Then the writer set changes through the suite, 2 -> 3 event persisters and 1 -> 2 federation senders with an
initial-sync pool, and back, the lab stopping and starting every process as the operator's planner orders
(matrix_workers_roll.py; change_writers below): nothing written before is lost, new messages land where the new
stream_writers says, initial syncs reach the initial-sync worker and incremental ones a sync worker, and FR and DE
still talk within a bound, the transactions to DE leaving from the sender the new federation_sender_instances picks
(matrix_workers_federation.py), even when main backs DE off before any sender listens (forced in both changes:
in the first, DE's own profile query of alice often wakes the destination by chance, so only the second would
catch Synapse's 10-minute default).

Needs what test_matrix_federation.py needs, and Debian's redis-server (hack/install-federation-tools.sh).
220 s on the shared 2-core machine under a load average above 20 (plus the session's cluster start) before the
writer set changes; with the persister changes alone 126 s under a load average of 3 to 6 (77 s for the two
changes), 172 s under 8 to 15 (122 s); with the sender changes and the forced backoff in both, 157 s (load
average 7 falling to 2) and 211 s (7 to 12) for the file, cluster start included.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import pytest

from ..components.test_synapse_config import synapse_python  # noqa: F401 - the fixture: Synapse's own venv
from .conftest import wait_for
from .matrix_lab import NOBODY, Applied, Lab
from .matrix_workers_federation import DELIVERY_BOUND_S, backed_off, check_federation, profile_refresh_due
from .matrix_workers_lab import Workers, print_logs, sql, start_tenants
from .matrix_workers_roll import Roll, log_after, log_offsets, roll, shard
from .operator_fixture import SUITES, create_referenced_secrets, suite_doc, wait_ready
from .test_matrix_federation import Tenant, _need_tools, q

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOPOLOGY = {"sync": 2, "eventPersister": 2, "federationSender": 1, "mediaRepository": 1, "background": 1}
PATCH = {
    "components": {"docs": {"enabled": False}, "jitsi": {"enabled": False}},
    "tenants": [{"country": "FR", "cloud": "fr-secnumcloud", "components": {"matrix": {"workers": TOPOLOGY}}},
                {"country": "DE", "cloud": "de-c5"}],
    "deletionPolicy": "Delete",
}


def accessed(log: str, method: str, path: str) -> bool:
    """Synapse's access log line (synapse/http/site.py, SynapseRequest._finished_processing, 1.163.2):
    ``Processed request: ... "<METHOD> <uri> HTTP/1.1"``."""
    return re.search(rf'Processed request: .* "{method} {re.escape(path)}[^"]* HTTP/1\.1"', log) is not None


def synced_bodies(tenant: Tenant, token: str, expected: set[str], complete=None, timeout: float = 30) -> list[str]:
    """The message bodies of a ``/sync`` (``timeout=0``, through the router) once it shows every ``expected`` body
    (and ``complete(bodies)`` holds): a sync worker learns of an event over replication from its persister, a
    moment after the send returned, so one immediate sync may not show it yet."""
    got: list[str] = []

    def seen() -> bool:
        nonlocal got
        synced = tenant.call("GET", "/_matrix/client/v3/sync?timeout=0", token=token)[1]  # any other status fails
        got = [e["content"].get("body") for r in synced["rooms"]["join"].values()
               for e in r["timeline"]["events"] if e["type"] == "m.room.message"]
        return expected <= set(got) and (complete is None or complete(got))

    try:
        wait_for(seen, timeout=timeout, interval=0.5, what=f"a sync showing {sorted(expected)}")
    except AssertionError as err:
        raise AssertionError(f"{err}; last sync's messages: {got}") from None
    return got


def message_events(lab: Lab, app: Applied) -> dict[str, tuple[str, str]]:
    """event id -> (room, the instance that persisted it) of every m.room.message in FR's database."""
    rows = sql(lab, "fr", app, "SELECT event_id, room_id, instance_name FROM events WHERE type = 'm.room.message'")
    return {event: (room, instance) for event, room, instance in rows}


def send(tenant: Tenant, token: str, room: str, text: str) -> str:
    return tenant.call("PUT", f"/_matrix/client/v3/rooms/{q(room)}/send/m.room.message/{uuid.uuid4().hex}",
                       {"msgtype": "m.text", "body": text}, token)[1]["event_id"]


def read_back(tenant: Tenant, token: str) -> tuple[str, dict[str, set[str]], dict[str, set[str]]]:
    """A user's initial /sync (no ``since``; up to 100 timeline events per room) and each joined room's
    /messages: the sync's next_batch, and the message event ids each shows per room."""
    flt = q(json.dumps({"room": {"timeline": {"limit": 100}}}))
    rooms = tenant.call("GET", f"/_matrix/client/v3/sync?timeout=0&filter={flt}", token=token)[1]
    via_sync = {r: {e["event_id"] for e in v["timeline"]["events"] if e["type"] == "m.room.message"}
                for r, v in rooms["rooms"]["join"].items()}
    via_messages = {}
    for r in via_sync:
        chunk = tenant.call("GET", f"/_matrix/client/v3/rooms/{q(r)}/messages?dir=b&limit=100", token=token)[1]
        via_messages[r] = {e["event_id"] for e in chunk["chunk"] if e["type"] == "m.room.message"}
    return rooms["next_batch"], via_sync, via_messages


def sync_queries(log: str, user: str) -> list[dict[str, list[str]]]:
    """The query parameters of ``user``'s /sync requests in a Synapse process's access log, whose line names the
    requester (synapse/http/site.py, SynapseRequest._finished_processing, 1.163.2:
    ``{<user id>} Processed request: ... "GET <uri> HTTP/1.1"``)."""
    line = re.compile(r"\{" + re.escape(user) + r'\} Processed request: .* "GET /_matrix/client/v3/sync(\?[^" ]*)? '
                      r'HTTP/1\.1"')
    return [parse_qs((m.group(1) or "?")[1:]) for m in line.finditer(log)]


@dataclass
class Chat:
    """What the writer set changes work on: FR's lab and client, its users (user id -> token; the first, alice,
    in every room, the others in ``rooms``), the FR-DE room and DE's bob."""

    kube: Any
    doc: dict[str, Any]
    lab: Lab
    workers: Workers
    fr: Tenant
    de: Tenant
    bob: str
    bob_token: str
    users: dict[str, str]
    rooms: list[str]
    fr_de: str

    def member(self, user: str, room: str) -> bool:
        return user == next(iter(self.users)) or room in self.rooms


@dataclass
class Changed:
    new: Applied  # what the operator applied after the change
    roll: Roll  # what the planner ordered
    offsets: dict[str, int]  # the processes' log sizes before the change
    since: dict[str, str]  # each user's next_batch after the read back
    after: dict[str, tuple[str, str]]  # message_events after the new sends
    sent: dict[str, str]  # event id -> room of the messages sent after the change


def change_writers(chat: Chat, topology: dict[str, int], late_senders: bool = False) -> Changed:
    """FR's workers become ``topology`` through the suite (the operator renders and applies the objects, on kwok
    nodes); the lab stops and starts its processes as the operator's planner orders (matrix_workers_roll.py).
    Then nothing is lost: every message written before is read back by each member of its room through an initial
    /sync and /messages; and sending works: new messages in every room land on the persister the new
    ``stream_writers.events`` names for the room, and FR and DE still talk (matrix_workers_federation.py), the
    message sent to DE just before the stop included. ``late_senders``: the fault that made a message wait for
    DE: main's start-up refresh of bob's profile goes out before any federation sender listens (his profile due,
    the senders started once main logged DE's backoff); the messages still reach DE within the bound."""
    lab, workers, fr, old = chat.lab, chat.workers, chat.fr, chat.workers.app
    before = message_events(lab, old)
    chat.kube.merge_patch(*SUITES, chat.doc["metadata"]["name"], chat.doc["metadata"]["namespace"], {"spec": {
        "tenants": [{**PATCH["tenants"][0], "components": {"matrix": {"workers": topology}}}, PATCH["tenants"][1]]}})
    wait_ready(chat.kube, chat.doc, timeout=240)
    new = Applied.read(chat.kube, old.namespace)
    assert new.synapse["spec"]["replicas"] == 1
    # Redis is not a Synapse process: the planner leaves it running, and its pod does not change
    assert new.deployments["synapse-redis"]["spec"]["template"] == old.deployments["synapse-redis"]["spec"]["template"]
    running = {n for n in lab.procs if n == "synapse-fr" or any(n in pods for pods in workers.pods.values())}
    offsets = log_offsets(workers)
    alice_token = next(iter(chat.users.values()))
    just_before = f"Juste avant le changement vers {topology}"  # the old sender may not have sent it yet
    send(fr, alice_token, chat.fr_de, just_before)
    late = frozenset({"synapse-federation-sender"} if late_senders else ())
    if late_senders:
        profile_refresh_due(lab, old, chat.bob)
    started = time.monotonic()
    done = roll(workers, new, late, lambda: bool(backed_off(log_after(workers, "synapse-fr", offsets), chat.de.domain)))
    restarted = time.monotonic()
    print(f"[workers] {topology}: stopped and started again in {restarted - started:.0f} s; "
          f"(restarted at start-up: {done.restarts or 'none'}); the planner said {done.waiting}")
    assert len(done.waiting) == 1 and done.waiting[0].startswith(f"{old.namespace}: "), done.waiting
    assert done.stopped == {("Deployment", "synapse"), *(("StatefulSet", n) for n in new.statefulsets
                                                         if n.startswith("synapse-"))}
    assert set(done.processes) == running  # every Synapse process, none left running
    writers = new.homeserver["stream_writers"]["events"]
    assert workers.pods["synapse-event-persister"] == writers
    failed = backed_off(log_after(workers, "synapse-fr", done.stopped_at), chat.de.domain)
    if late_senders:  # the fault happened: main backed DE off for the rendered first interval
        assert failed and "backoff now 30000" in failed[0], (failed, lab.log("synapse-fr")[-3000:])

    since = {}
    for user, token in chat.users.items():
        since[user], via_sync, via_messages = read_back(fr, token)
        for event, (room, _) in before.items():
            if chat.member(user, room):
                assert event in via_sync.get(room, set()), (user, room, event, via_sync.get(room))
                assert event in via_messages.get(room, set()), (user, room, event, via_messages.get(room))

    sent = {send(fr, token, room, f"{user} after the change to {topology}"): room
            for room in chat.rooms for user, token in chat.users.items()}
    text = f"Encore des workers ({len(writers)} persisters)"
    sent_at = time.monotonic()
    sent[send(fr, alice_token, chat.fr_de, text)] = chat.fr_de
    after = message_events(lab, new)
    assert all(after[event] == (room, shard(room, writers)) for event, room in sent.items()), after
    assert set(before) <= set(after)
    # the message sent before the stop could not move while every process was down: its wait counts from the start
    took = check_federation(lab, workers, new, done.stopped_at, fr, chat.de, (alice_token, chat.bob_token),
                            chat.fr_de, {just_before: restarted, text: sent_at})
    print(f"[workers] FR -> DE after the change: {took} s (bound {DELIVERY_BOUND_S} s); DE backed off by: "
          f"{failed or 'none'}")
    return Changed(new, done, offsets, since, after, sent)


def check_sync_pools(chat: Chat, changed: Changed) -> None:
    """After the change to an initial-sync pool: each user's initial /sync (no ``since``) of the read back was
    answered by the initial-sync worker, and an incremental one (with ``since``) that shows the new messages by a
    sync worker (docs/workers.md at v1.163.2, "Load balancing": /sync requests without a ``since`` are "initial
    syncs", which may be isolated on workers of their own): each process's own access log."""
    workers, since = chat.workers, changed.since
    for user, token in chat.users.items():
        want = {e for e, r in changed.sent.items() if chat.member(user, r)}
        seen: set[str] = set()

        def incremental(user=user, token=token, want=want, seen=seen) -> bool:
            out = chat.fr.call("GET", f"/_matrix/client/v3/sync?timeout=0&since={q(since[user])}", token=token)[1]
            since[user] = out["next_batch"]
            seen.update(e["event_id"] for r in out["rooms"]["join"].values() for e in r["timeline"]["events"])
            return want <= seen

        wait_for(incremental, timeout=30, interval=0.5, what=f"{user}'s incremental sync showing the new messages")
        initial = sync_queries(log_after(workers, "synapse-initial-sync-0", changed.offsets), user)
        normal = [sync_queries(log_after(workers, p, changed.offsets), user) for p in workers.pods["synapse-sync"]]
        assert initial and all("since" not in query for query in initial), initial
        assert any(normal) and all("since" in query for pod in normal for query in pod), normal
        assert not sync_queries(log_after(workers, "synapse-fr", changed.offsets), user)  # main answers no /sync


def test_worker_topology_runs_for_real(operator, kube, core, namespace, synapse_python):  # noqa: F811
    _need_tools()
    if not shutil.which("redis-server"):
        pytest.fail("redis-server missing: run hack/install-federation-tools.sh", pytrace=False)
    started = time.monotonic()
    create_referenced_secrets(core, namespace)
    doc = suite_doc("two-countries", namespace, patch=PATCH)
    name = doc["metadata"]["name"]
    kube.create(doc)
    lab = None
    try:
        wait_ready(kube, doc, timeout=240)
        apps = {cc: Applied.read(kube, f"{name}-{cc}") for cc in ("fr", "de")}
        fr_app = apps["fr"]
        lab = Lab(synapse_python)
        topologies = start_tenants(lab, apps)
        assert set(topologies) == {"fr"}  # DE stays a monolith
        workers = topologies["fr"]
        assert set(workers.pods) == {"synapse-sync", "synapse-event-persister", "synapse-federation-sender",
                                     "synapse-media-repository", "synapse-background"}
        print(f"[workers] {sum(map(len, workers.pods.values()))} workers up after {time.monotonic() - started:.0f} s")

        fr, de = Tenant(lab, "fr", fr_app.domain), Tenant(lab, "de", apps["de"].domain)
        alice, alice_token = fr.register("alice", fr_app.secrets["synapse-keys"]["registration_shared_secret"])
        bob, bob_token = de.register("bob", apps["de"].secrets["synapse-keys"]["registration_shared_secret"])

        # rooms until each event persister writes one: the events stream is sharded by room
        # (docs/workers.md, "Stream writers"); the instance that persisted an event is events.instance_name
        persisters = workers.pods["synapse-event-persister"]
        by_persister: dict[str, str] = {}
        for _ in range(20):
            room = fr.call("POST", "/_matrix/client/v3/createRoom", {"preset": "private_chat"}, alice_token)[1][
                "room_id"]
            names = {r[0] for r in sql(lab, "fr", fr_app, f"SELECT DISTINCT instance_name FROM events "
                                                          f"WHERE room_id = '{room}'")}
            assert len(names) == 1 and names <= set(persisters), names  # one writer per room, a persister
            by_persister.setdefault(names.pop(), room)
            if len(by_persister) == len(persisters):
                break
        assert set(by_persister) == set(persisters), by_persister
        for persister, room in by_persister.items():
            fr.send(alice_token, room, f"written by {persister}")
            rows = sql(lab, "fr", fr_app, "SELECT instance_name FROM events WHERE room_id = '%s' "
                                          "AND type = 'm.room.message'" % room)
            assert rows == [[persister]], rows

        # /sync through the router: answered by a sync worker (the router's upstream, and its own access log)
        synced_bodies(fr, alice_token, {f"written by {p}" for p in persisters})
        sync_pods = {workers.pod_of(up) for req, st, up in workers.router_log() if "/sync" in req}
        assert sync_pods and sync_pods <= set(workers.pods["synapse-sync"]), workers.router_log()
        assert all(accessed(lab.log(pod), "GET", "/_matrix/client/v3/sync") for pod in sync_pods)
        assert not accessed(lab.log("synapse-fr"), "GET", "/_matrix/client/v3/sync")

        # media: stored by the media repository worker (main has enable_media_repo: false)
        payload = {"picture": uuid.uuid4().hex}
        uri = fr.call("POST", "/_matrix/media/v3/upload?filename=note.json", payload, alice_token)[1]["content_uri"]
        media_id = uri.rsplit("/", 1)[1]
        media_pod = workers.pods["synapse-media-repository"][0]
        assert accessed(lab.log(media_pod), "POST", "/_matrix/media/v3/upload")
        assert not accessed(lab.log("synapse-fr"), "POST", "/_matrix/media/v3/upload")
        stored = list((workers.base / "synapse" / "media").rglob(media_id[4:]))  # local_content/ab/cd/<rest>
        assert stored, f"{media_id} not in the media store"
        status, got = fr.call("GET", f"/_matrix/client/v1/media/download/{fr_app.domain}/{media_id}",
                              token=alice_token)
        assert got == payload
        print(f"[workers] rooms, sync and media after {time.monotonic() - started:.0f} s")

        # the replication series the alert SovereignSuiteSynapseReplicationLag reads, from a worker's own metrics
        # listener (the port the ServiceMonitor synapse-workers scrapes)
        status, text = lab.request("GET", f"http://{workers.addresses[sorted(sync_pods)[0]]}:9001/_synapse/metrics")
        assert status == 200 and re.search(r'^synapse_replication_tcp_command_queue\{[^}]*stream_name="events"',
                                           text, re.M), str(text)[:2000]

        # the sync worker serving alice dies: the router's consistent hash moves her to the other one (nginx tries
        # the next server of a hash upstream on a connection error), and no message is lost
        dead = sorted(sync_pods)[0]
        lab.stop(dead)
        before = len(workers.router_log())
        for persister, room in by_persister.items():
            fr.send(alice_token, room, f"after {dead} stopped")
        bodies = synced_bodies(fr, alice_token, {f"after {dead} stopped"},
                               lambda got: got.count(f"after {dead} stopped") == len(by_persister))
        assert {f"written by {p}" for p in persisters} <= set(bodies), bodies
        answered = [workers.pod_of(up) for req, st, up in workers.router_log()[before:] if "/sync" in req]
        assert answered and dead not in answered and set(answered) <= set(workers.pods["synapse-sync"]), answered

        # federation with DE: transactions leave FR from the federation sender only
        room = fr.call("POST", "/_matrix/client/v3/createRoom", {"preset": "private_chat", "name": "FR-DE"},
                       alice_token)[1]["room_id"]
        fr.call("POST", f"/_matrix/client/v3/rooms/{q(room)}/invite", {"user_id": bob}, alice_token)
        de.call("POST", f"/_matrix/client/v3/join/{q(room)}?server_name={fr_app.domain}", {}, bob_token)
        fr.send(alice_token, room, "Bonjour des workers")
        de.wait_message(bob_token, room, "Bonjour des workers")
        de.send(bob_token, room, "Hallo zurück")
        fr.wait_message(alice_token, room, "Hallo zurück")
        sender = workers.pods["synapse-federation-sender"][0]
        de_host = re.escape(apps["de"].domain)
        # the transaction (synapse/http/matrixfederationclient.py, "Completed request", 1.163.2) left from the sender
        sent = re.compile(rf"Completed request: 200 .* - PUT matrix-federation://{de_host}(:\d+)?"
                          r"/_matrix/federation/v1/send/")
        assert sent.search(lab.log(sender)), lab.log(sender)[-3000:]
        others = ["synapse-fr", *[p for pods in workers.pods.values() for p in pods if p != sender]]
        assert not [p for p in others if sent.search(lab.log(p))]
        # main's own federation requests (the invite) went through the sender: outbound_federation_restricted_to
        # makes main send them to the sender's replication listener, which proxies them (synapse/http/proxy.py)
        proxied = re.compile(rf'synapse\.access\.http\.9093 .* "PUT matrix-federation://{de_host}(:\d+)?'
                             r"/_matrix/federation/v2/invite/")
        assert proxied.search(lab.log(sender)), lab.log(sender)[-3000:]
        assert [line for line in lab.access_log().splitlines()
                if line.startswith(f"matrix.{apps['de'].domain} ") and "/_matrix/federation/v1/send/" in line]
        print(f"[workers] federation after {time.monotonic() - started:.0f} s")

        # -- issue 26, "changing the persister count rolls everything and nothing is lost", with real processes:
        # 2 -> 3 event persisters, and with it an initial-sync pool
        carol, carol_token = fr.register("carol", fr_app.secrets["synapse-keys"]["registration_shared_secret"])
        old_writers = fr_app.homeserver["stream_writers"]["events"]
        new_writers = [*old_writers, f"synapse-event-persister-{len(old_writers)}"]  # the StatefulSet's next pod
        # carol joins alice's rooms; rooms are created until one moves to the third persister with the change
        rooms = list(by_persister.values())
        for r in rooms:
            fr.call("POST", f"/_matrix/client/v3/rooms/{q(r)}/invite", {"user_id": carol}, alice_token)
        # up to 16 rooms may be made: more than rc_room_creation's burst (10, then one a minute: 1.163.2
        # synapse/config/ratelimiting.py), which once held a CI run past the client's retries (429). Lifted for
        # alice with the admin API: a ratelimit_override row with no message rate exempts the user from every
        # limiter (synapse/api/ratelimiting.py, can_do_action; synapse/rest/admin/users.py, RateLimitRestServlet)
        _, admin_token = fr.register("opsadmin", fr_app.secrets["synapse-keys"]["registration_shared_secret"],
                                     admin=True)
        status, body = lab.request("POST", f"http://{lab.ip('fr', 'synapse')}:8008/_synapse/admin/v1/users/"
                                   f"{q(alice)}/override_ratelimit", {"messages_per_second": 0, "burst_count": 0},
                                   admin_token)
        assert status == 200, body
        while not any(shard(r, new_writers) == new_writers[-1] for r in rooms) and len(rooms) < 16:
            created = fr.call("POST", "/_matrix/client/v3/createRoom", {"preset": "private_chat", "invite": [carol]},
                              alice_token)
            rooms.append(created[1]["room_id"])
        moving = [r for r in rooms if shard(r, new_writers) == new_writers[-1]]
        assert moving, rooms
        chat = Chat(kube, doc, lab, workers, fr, de, bob, bob_token, {alice: alice_token, carol: carol_token}, rooms,
                    room)
        for r in rooms:
            fr.call("POST", f"/_matrix/client/v3/join/{q(r)}", {}, carol_token)
            for user, token in chat.users.items():
                send(fr, token, r, f"{user} before the change")
        # Synapse's sharding as the test computes it (shard), checked on every message persisted so far
        assert all(i == shard(r, old_writers) for r, i in message_events(lab, fr_app).values())
        first = change_writers(chat, {**TOPOLOGY, "eventPersister": 3, "initialSync": 1, "federationSender": 2},
                               late_senders=True)
        assert first.new.homeserver["stream_writers"]["events"] == new_writers and not first.roll.pruned
        assert {first.after[e][1] for e, r in first.sent.items() if r in moving} == {new_writers[-1]}
        check_sync_pools(chat, first)

        # -- and back to 2 persisters and 1 sender (the reverse change): the third persister's rooms move back to
        # their former one; the senders' late start again (DE has no reason left to contact FR by itself here)
        second = change_writers(chat, TOPOLOGY, late_senders=True)
        assert second.roll.pruned == {"synapse-initial-sync"}
        assert second.new.homeserver["stream_writers"]["events"] == old_writers
        for r in moving:  # its messages by the removed persister (read back above), the new ones by its old one
            assert {i for room, i in second.after.values() if room == r} == {shard(r, old_writers), new_writers[-1]}
        print(f"[workers] done after {time.monotonic() - started:.0f} s")
    except BaseException:
        print_logs(lab, access_log=True)
        raise
    finally:
        if lab:
            lab.close()
        kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
        wait_for(lambda: kube.get(*SUITES, name, namespace) is None, timeout=120, what="suite deleted")
