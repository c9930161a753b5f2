"""Issue 26: the operator's Synapse worker topology run with real Synapse processes, real PostgreSQL, real Redis
and the rendered router (tests/cluster/matrix_workers_lab.py on top of tests/cluster/matrix_lab.py).

FR runs main + 2 sync workers + 2 event persisters + 1 federation sender + 1 media repository + 1 background
worker, from what the operator applied; DE stays a monolith. A client goes through the ingress and the router:
it registers, talks in rooms whose events two different persisters write (``events.instance_name`` in FR's
database), syncs (the router's log shows a sync worker answered, and that worker's own access log has the
request; when that worker dies the other one answers and no message is lost), uploads media (the media worker's log and store), and federates with DE, the transactions leaving FR
only from the federation sender (its log; the main process's and the other workers' logs have no outbound
transaction; main's own requests, the invite, went through the sender's federation proxy). Redis is TLS only
and verifies the processes' client certificate (tests/components/test_matrix_redis.py proves the refusals).

Needs what test_matrix_federation.py needs, and Debian's redis-server (hack/install-federation-tools.sh).
220 s on the shared 2-core machine under a load average above 20 (plus the session's cluster start).
"""

from __future__ import annotations

import re
import shutil
import time
import uuid

import pytest

from ..components.test_synapse_config import synapse_python  # noqa: F401 - the fixture: Synapse's own venv
from .conftest import wait_for
from .matrix_lab import NOBODY, Applied, Lab
from .matrix_workers_lab import start_tenants
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


def sql(lab: Lab, tenant: str, app: Applied, query: str) -> list[list[str]]:
    """A query on the tenant's database over its local socket (the rows, tab-separated by psql)."""
    env = app.env(app.container(app.statefulsets["matrix-postgres"], "postgres"))
    base = lab.postgres[tenant]
    done = lab.run([str(lab.pg_bin / "psql"), "-h", str(base / "sock"), "-p", "5432", "-U", env["POSTGRES_USER"],
                    "-d", env["POSTGRES_DB"], "-At", "-F", "\t", "-c", query], user=NOBODY)
    assert done.returncode == 0, done.stderr
    return [line.split("\t") for line in done.stdout.splitlines()]


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
        print(f"[workers] done after {time.monotonic() - started:.0f} s")
    except BaseException:
        if lab:
            for proc in list(lab.procs):
                print(f"----- {proc}\n{lab.log(proc)[-2500:]}")
            print(f"----- ingress access log\n{lab.access_log()[-2000:]}")
        raise
    finally:
        if lab:
            lab.close()
        kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
        wait_for(lambda: kube.get(*SUITES, name, namespace) is None, timeout=120, what="suite deleted")
