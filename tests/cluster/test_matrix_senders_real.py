"""Issue 26: a tenant's Synapse federation senders with real Synapse processes, in the lab of
test_matrix_workers_real.py (tests/cluster/matrix_workers_lab.py on top of tests/cluster/matrix_lab.py): two
behaviours that test does not show.

FR runs main + federation senders only (the other worker types change nothing here), DE a monolith, from what the
operator applied, on real PostgreSQL and Redis, behind the rendered router and the ingress.

1. **The lone sender restarts in steady state** (only its process is killed and started again, as the kubelet
   restarts a crashed container; main, Redis and DE keep running). While it is down a message to DE is sent and a
   client asks FR for one of bob's one-time keys, so FR's main makes a federation request that fails (every
   process's federation request goes through a sender, ``outbound_federation_restricted_to``): DE is backed off
   for the rendered 30 s. A message sent right after the restart and the one sent while the sender was down both
   reach DE within the bound below, and the restarted sender's own log shows the transaction.
2. **A destination moves to the other sender when the sender count changes** (1 -> 2, which rolls every process).
   Synapse shards destinations over ``federation_sender_instances`` by a hash of the destination's name; the
   suite's ``domain`` is chosen at run time, with Synapse's own function from the lab's venv, so that DE's
   server name falls on the *second* sender of two (with the examples' domain it falls on the first, and nothing
   would move). A message delivered before the change left from sender 0; after the change a new message leaves
   from sender 1 (its own log and its ``synapse_federation_client_sent_transactions`` counter; sender 0's log and
   counter have none), and every message FR sent is in DE's room.

Needs what test_matrix_workers_real.py needs (root, network namespaces, Debian's PostgreSQL, nginx, redis-server).
178 to 199 s for the file, its cluster start included (three runs on the shared 2-core machine, load average 7 to
21); the restart's messages wait ~60 s for the sender's catch-up loop (restart_sender).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ..components.test_synapse_config import synapse_python  # noqa: F401 - the fixture: Synapse's own venv
from .conftest import wait_for
from .matrix_lab import Applied, Lab
from .matrix_workers_federation import DELIVERY_BOUND_S, backed_off, delivered, sent_to
from .matrix_workers_lab import Workers, print_logs, sql, start_tenants
from .matrix_workers_roll import log_after, log_offsets, roll
from .operator_fixture import SUITES, create_referenced_secrets, suite_doc, wait_ready
from .test_matrix_federation import Tenant, _need_tools, q
from .test_matrix_workers_real import send

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SENDERS = "synapse-federation-sender"  # the StatefulSet; its pods are the instance names (components/matrix/workers.py)
TOPOLOGY = {"federationSender": 1}
MOVED = {"federationSender": 2}

# Synapse's own sharding of destinations over federation senders, run in the lab's Synapse venv (1.163.2):
# synapse/config/workers.py builds ``federation_shard_config = ShardedWorkerHandlingConfig(
# federation_sender_instances)``, and a sender queues a destination only when ``should_handle(instance_name,
# destination)`` (synapse/federation/sender/__init__.py); ShardedWorkerHandlingConfig._get_instance
# (synapse/config/_base.py) takes sha256 of the destination's name, little-endian, modulo the number of senders.
# The element-hq/synapse tag v1.163.2, read in the release's wheel from PyPI.
SHARD = r"""
import json, sys
from synapse.config._base import ShardedWorkerHandlingConfig
instances, keys = json.loads(sys.argv[1]), json.loads(sys.argv[2])
config = ShardedWorkerHandlingConfig(instances)
print(json.dumps({key: [i for i in instances if config.should_handle(i, key)] for key in keys}))
"""


def synapse_owner(python: Path, instances: list[str], keys: list[str]) -> dict[str, str]:
    """key -> the one sender of ``instances`` Synapse's own ``should_handle`` gives it to."""
    done = subprocess.run([str(python), "-c", SHARD, json.dumps(instances), json.dumps(keys)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    owners = json.loads(done.stdout)
    assert all(len(o) == 1 for o in owners.values()), owners  # exactly one sender per destination
    return {key: o[0] for key, o in owners.items()}


def moving_domain(python: Path) -> str:
    """The first suite domain ``workplace<n>.example.eu`` whose DE server name ``de.<domain>`` Synapse gives to
    the second of two senders (the instance names the operator renders for two)."""
    two = [f"{SENDERS}-0", f"{SENDERS}-1"]
    candidates = {f"de.workplace{n}.example.eu": f"workplace{n}.example.eu" for n in range(1, 33)}
    owners = synapse_owner(python, two, list(candidates))
    return next(candidates[d] for d in candidates if owners[d] == two[1])


def sent_transactions(lab: Lab, workers: Workers, pod: str) -> float:
    """A sender's ``synapse_federation_client_sent_transactions`` (synapse/metrics/__init__.py, incremented per
    transaction a remote server accepted in synapse/federation/sender/per_destination_queue.py, 1.163.2), read
    from its own metrics listener (the port the ServiceMonitor scrapes); 0 before its first transaction."""
    status, text = lab.request("GET", f"http://{workers.addresses[pod]}:9001/_synapse/metrics")
    assert status == 200, text
    values = re.findall(r"^synapse_federation_client_sent_transactions_total(?:\{[^}]*\})? (\S+)$", text, re.M)
    return sum(float(v) for v in values)


def restart_sender(lab: Lab, workers: Workers, fr: Tenant, de: Tenant, tokens: tuple[str, str], bob: str,
                   room: str) -> dict[str, int]:
    """Behaviour 1: the lone sender killed and started again, the rest running. Returns the deliveries' seconds.

    The bound (DELIVERY_BOUND_S, matrix_workers_federation.py): a federation request any FR process makes while
    no sender listens fails to connect to the sender's replication listener, and the retry limiter wrapping it
    backs the *destination* off (synapse/http/matrixfederationclient.py, get_retry_limiter;
    synapse/util/retryutils.py, RetryDestinationLimiter.__exit__: the first interval is
    ``destination_min_retry_interval``, rendered 30 s instead of Synapse's 10 minutes, synapse/config/
    federation.py). The restarted sender reads the events persisted while it was down from its stream position
    (synapse/federation/sender/__init__.py, _process_event_queue_loop, get_federation_out_pos), but holds a
    transaction to a destination backed off (per_destination_queue.py, NotRetryingDestination, logged at DEBUG
    only) until something wakes the destination once the 30 s are over: a new event for it, the destination
    contacting FR, or at the latest the sender's catch-up loop, run at its start and every WAKEUP_RETRY_PERIOD
    (60 s), 5 s between destinations (WAKEUP_INTERVAL_BETWEEN_DESTINATIONS, same file), which skips destinations
    still backed off (transactions.py, get_catch_up_outstanding_destinations). So 30 + 60 + 5 s from the
    backoff's start, + 30 s of slack for a loaded 2-core machine: 125 s from each send, both sends being after
    the backoff began. With Synapse's default the wait would be 10 minutes."""
    alice_token, bob_token = tokens
    pod = workers.pods[SENDERS][0]
    proc = lab.procs[pod]
    offsets = log_offsets(workers)
    proc.kill()  # SIGKILL: a crash, as an OOM kill would do it; nothing of the sender is flushed
    proc.wait(30)
    # while it is down: a client asks for one of bob's one-time keys (an encrypted session with bob's device);
    # FR claims it from DE (synapse/handlers/e2e_keys.py, claim_one_time_keys; the transport's post_json does not
    # ignore backoff), which fails: FR's main backs DE off
    device = de.call("GET", "/_matrix/client/v3/account/whoami", token=bob_token)[1]["device_id"]
    claim_at = time.monotonic()
    claimed = fr.call("POST", "/_matrix/client/v3/keys/claim",
                      {"one_time_keys": {bob: {device: "signed_curve25519"}}}, alice_token)[1]
    assert de.domain in claimed.get("failures", {}), claimed
    failed = wait_for(lambda: [f"{name}: {line}" for name in lab.procs if name.startswith("synapse-")
                               for line in backed_off(log_after(workers, name, offsets), de.domain)],
                      timeout=30, what=f"an FR process backing {de.domain} off")
    assert "backoff now 30000" in failed[0], failed  # the rendered first interval, not Synapse's 600000
    while_down = "Pendant que l'expéditeur redémarre"
    down_at = time.monotonic()
    send(fr, alice_token, room, while_down)
    # started again with the same command and the same emptyDir, as the kubelet restarts a container
    restart_at = time.monotonic()
    with open(lab.root / f"{pod}.log", "ab") as log:
        lab.procs[pod] = subprocess.Popen(proc.args, stdout=log, stderr=subprocess.STDOUT, cwd=lab.root)
    wait_for(lambda: lab.request("GET", f"http://{workers.addresses[pod]}:8008/health", timeout=5)[0] == 200,
             timeout=120, interval=0.5, what=f"{pod} healthy again")
    ready = time.monotonic()
    # whether the restarted sender found DE still backed off when it came up (the case the bound is for): the
    # backoff's end in FR's database (synapse/util/retryutils.py writes retry_last_ts and retry_interval, in ms;
    # both 0 again once a request to DE succeeded)
    (last_ts, interval), = sql(lab, "fr", workers.app, "SELECT retry_last_ts, retry_interval FROM destinations "
                                                       f"WHERE destination = '{de.domain}'")
    left = (int(last_ts) + int(interval)) / 1000 - time.time() if int(interval) else 0
    right_after = "Juste après le redémarrage"
    send(fr, alice_token, room, right_after)
    took = delivered(lab, workers.app, de, bob_token, room, {while_down: down_at, right_after: ready})
    assert sent_to(de.domain).search(log_after(workers, pod, offsets)), log_after(workers, pod, offsets)[-3000:]
    assert lab.procs["synapse-fr"].poll() is None  # main ran throughout
    print(f"[senders] {pod} killed; the claim failed after {down_at - claim_at:.0f} s; restarted, healthy "
          f"{ready - restart_at:.0f} s later, DE's backoff then had {left:.0f} s left; delivered after {took} s "
          f"(bound {DELIVERY_BOUND_S} s); {failed[0].split(':', 1)[0]} logged {failed[0][-40:]}")
    return took


def move_destination(kube, doc: dict, lab: Lab, python: Path, workers: Workers, fr: Tenant, de: Tenant,
                     tokens: tuple[str, str], room: str) -> dict[str, int]:
    """Behaviour 2: 1 -> 2 senders through the suite; DE moves from sender 0 to sender 1."""
    alice_token, bob_token = tokens
    old = workers.app
    assert old.homeserver["federation_sender_instances"] == [f"{SENDERS}-0"]
    offsets = log_offsets(workers)
    before = "Avant le changement d'expéditeurs"
    sent_at = time.monotonic()
    send(fr, alice_token, room, before)
    took = delivered(lab, old, de, bob_token, room, {before: sent_at})
    assert sent_to(de.domain).search(log_after(workers, f"{SENDERS}-0", offsets))  # the lone sender sent it

    tenants = doc["spec"]["tenants"]
    kube.merge_patch(*SUITES, doc["metadata"]["name"], doc["metadata"]["namespace"], {"spec": {"tenants": [
        {**tenants[0], "components": {"matrix": {"workers": MOVED}}}, tenants[1]]}})
    wait_ready(kube, doc, timeout=240)
    new = Applied.read(kube, old.namespace)
    senders = new.homeserver["federation_sender_instances"]
    assert senders == [f"{SENDERS}-0", f"{SENDERS}-1"], senders
    # Synapse's own pick for DE, on the instance names the operator rendered: the one sender, then the second one
    assert synapse_owner(python, old.homeserver["federation_sender_instances"], [de.domain])[de.domain] == senders[0]
    assert synapse_owner(python, senders, [de.domain])[de.domain] == senders[1]
    just_before = "Juste avant le changement d'expéditeurs"  # the old sender may not send it before it stops
    send(fr, alice_token, room, just_before)
    done = roll(workers, new)  # every Synapse process stopped, then the new set started (matrix_workers_roll.py)
    restarted = time.monotonic()
    assert set(done.processes) == {"synapse-fr", f"{SENDERS}-0"}, done.processes
    assert workers.pods[SENDERS] == senders
    after = "Après le changement d'expéditeurs"
    sent_at = time.monotonic()
    send(fr, alice_token, room, after)
    # the message sent before the stop: its wait counts from the restart. If sender 0 had not sent it, sender 1
    # does: at its start a sender of a changed set takes the *lowest* position of the old set's rows
    # (synapse/storage/databases/main/stream.py, _reset_federation_positions_txn: "may result in resending
    # ... preferable to dropping them")
    took |= delivered(lab, new, de, bob_token, room, {just_before: restarted, after: sent_at})
    # which sender sent them: the new processes' own logs and counters (the counters start at 0 with the process)
    sent = sent_to(de.domain)
    moved_log = log_after(workers, senders[1], done.stopped_at)
    assert sent.search(moved_log), moved_log[-3000:]
    assert not sent.search(log_after(workers, senders[0], done.stopped_at)), "sender 0 still sends to DE"
    assert not sent.search(log_after(workers, "synapse-fr", done.stopped_at))
    counts = {pod: sent_transactions(lab, workers, pod) for pod in senders}
    assert counts[senders[1]] >= 1 and counts[senders[0]] == 0, counts
    # nothing lost: every message FR sent in the room is in DE's copy of it
    mine = fr.messages(alice_token, room)
    assert set(mine) <= set(de.messages(bob_token, room)), (mine, de.messages(bob_token, room))
    answer = "Bien reçu par le nouvel expéditeur"
    de.send(bob_token, room, answer)
    fr.wait_message(alice_token, room, answer)
    print(f"[senders] {de.domain} moved to {senders[1]}: delivered after {took} s (bound {DELIVERY_BOUND_S} s); "
          f"sent transactions {counts}; restarted at start-up: {done.restarts or 'none'}")
    return took


def test_federation_senders_restart_and_move(operator, kube, core, namespace, synapse_python):  # noqa: F811
    _need_tools()
    if not shutil.which("redis-server"):
        pytest.fail("redis-server missing: run hack/install-federation-tools.sh", pytrace=False)
    started = time.monotonic()
    domain = moving_domain(synapse_python)
    create_referenced_secrets(core, namespace)
    doc = suite_doc("two-countries", namespace, patch={
        "domain": domain,
        "components": {"docs": {"enabled": False}, "jitsi": {"enabled": False}},
        "tenants": [{"country": "FR", "cloud": "fr-secnumcloud", "components": {"matrix": {"workers": TOPOLOGY}}},
                    {"country": "DE", "cloud": "de-c5"}],
        "deletionPolicy": "Delete",
    })
    name = doc["metadata"]["name"]
    kube.create(doc)
    lab = None
    try:
        wait_ready(kube, doc, timeout=240)
        apps = {cc: Applied.read(kube, f"{name}-{cc}") for cc in ("fr", "de")}
        assert apps["de"].domain == f"de.{domain}"
        lab = Lab(synapse_python)
        workers = start_tenants(lab, apps)["fr"]
        assert set(workers.pods) == {SENDERS}
        fr, de = Tenant(lab, "fr", apps["fr"].domain), Tenant(lab, "de", apps["de"].domain)
        alice, alice_token = fr.register("alice", apps["fr"].secrets["synapse-keys"]["registration_shared_secret"])
        bob, bob_token = de.register("bob", apps["de"].secrets["synapse-keys"]["registration_shared_secret"])
        room = fr.call("POST", "/_matrix/client/v3/createRoom", {"preset": "private_chat", "name": "FR-DE"},
                       alice_token)[1]["room_id"]
        fr.call("POST", f"/_matrix/client/v3/rooms/{q(room)}/invite", {"user_id": bob}, alice_token)
        de.call("POST", f"/_matrix/client/v3/join/{q(room)}?server_name={apps['fr'].domain}", {}, bob_token)
        fr.send(alice_token, room, "Bonjour")
        de.wait_message(bob_token, room, "Bonjour")  # steady state: DE reached, not backed off
        print(f"[senders] FR and DE talk after {time.monotonic() - started:.0f} s")

        restart_sender(lab, workers, fr, de, (alice_token, bob_token), bob, room)
        move_destination(kube, doc, lab, synapse_python, workers, fr, de, (alice_token, bob_token), room)
        print(f"[senders] done after {time.monotonic() - started:.0f} s")
    except BaseException:
        print_logs(lab)
        raise
    finally:
        if lab:
            lab.close()
        kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
        wait_for(lambda: kube.get(*SUITES, name, namespace) is None, timeout=120, what="suite deleted")
