"""Disaster recovery on the real node (issue 23, "Done when"): a whole cluster deleted, the country's tenant
restored into a new one from its backups.

What it does, with real programs only (the stand-in images: Debian's PostgreSQL 17, Synapse 1.163.2 from PyPI,
the backup image's pg_dump/pg_restore and age; docs/development.md, "Stand-in images"):

1. A cluster with the real node and the operator (a host process, as the other real-node tests run it); moto's
   S3 server on the machine's own address (the pods reach it through the bridge, as they reach the API server);
   NationalCloud ``fr-real`` declares it as its ``objectStorage`` and its address/port in
   ``network.egress.objectStorage`` (a ``/32`` and the port: a NetworkPolicy's ``ipBlock`` takes addresses,
   not host names, so the endpoint is the address itself), which the backup pod's egress policy then allows
   (kube-router enforces it). A suite with only the FR tenant on the real node, backups enabled.
2. A user registered (Synapse's shared-secret admin API), a room, two messages, a file uploaded; the server's
   signing key read from ``/_matrix/key/v2/server``; the tenant's generated Secrets read.
3. A backup: the rendered CronJob run as a Job (``kubectl create job --from=cronjob/backup``) on the real node; it
   succeeds, writes its manifest last; the suite's status reports its id and size.
4. The disaster: the operator stopped, ``Cluster.down()`` (what ``sovereign-suite cluster down`` does): the real
   node evicted and stopped, the machine restored, its folders removed — the tenant's volumes with them (they
   live under the node's folder) — and the control plane with its etcd deleted. Only the bucket and the country's
   identity survive.
5. A NEW cluster (another name, another CA), the real node joins it, the operator runs, the country's Secrets
   (bucket credentials, age recipient and identity) are created, the suite applied with
   ``backups.restoreFrom: {backup: latest, identitySecretRef}``.
6. The same user logs in with the same password, reads the history, downloads the file (the same bytes);
   ``/_matrix/key/v2/server`` serves the same key id and public key, and its signature verifies with the public
   key read before the disaster (the check a homeserver that cached FR's key makes: the restored server holds the
   same PRIVATE key); a second real Synapse (``de.test``, a pod on the real node: dr_federation.py) with no key
   cached and no other key server fetches FR's key over federation and accepts it (its notary answer carries its
   countersignature), the same key id and public key; then a federated exchange with it (dr_exchange.py): FR's
   user invites ``de.test``'s user into the restored room, he joins through his own server and reads FR's restored
   history there, a message goes each way, and both servers show the same messages; every generated Secret the
   backup held has the same values as before (annotated with the backup id): nothing was regenerated.
7. The negative case, in the new cluster: a second suite (``dr2``) whose newest backup has a corrupt database
   dump (a copy of the real backup, bytes flipped, the manifest's SHA-256 kept): the restore Job refuses before
   writing anything, the suite is Stalled ``RestoreFailed`` with the program's own words (the object named),
   Synapse and the backup CronJob are never applied and its database stays empty: never a fresh start.

Printed with -s: the backup's size and duration, the time to delete the cluster and to create the new one, and
the RTO: from applying the suite with ``restoreFrom`` to the user reading the history (the figures in
docs/operations.md, "Restore into a new cluster", come from this test).

What it does not prove: federation with the suite's own German tenant (``de.test`` is a throwaway homeserver
outside the suite), FR's certificate chain (the two servers reach each other through TLS proxies with self-signed
certificates); a restore of an older
backup on the real node (tests/test_disaster_recovery.py does it at process level); CloudNativePG (refused with
restoreFrom); Docs, Jitsi and the LLM gateway (not enabled here); the upstream images themselves (stand-ins);
a cluster on other machines (the bucket is on this one).
"""

from __future__ import annotations

import copy
import json
import os
import secrets as _random
import time
from pathlib import Path

import pytest

from sovereign_suite.devcluster.realnode import RealNode
from sovereign_suite.devcluster.realnode.configs import Layout
from sovereign_suite.devcluster.realnode.node import node_ip
from sovereign_suite.reconcile.secrets import LABEL_GENERATED

from ..s3_server import moto_bucket
from ..test_backup_program import ACCESS, SECRET, _identity
from . import dr_exchange, dr_federation
from .conftest import wait_for
from .dr_matrix import (FR_NS, PASSWORD, SUITE, USER, download, history, key_response, register, send, server_key,
                        synapse, upload, verify_signed)
from .operator_fixture import OperatorProcess, create_referenced_secrets, get_suite, suite_doc, wait_ready
from .realnode_fixture import CLAIMS, FR_CLOUD, INGRESS_NS, REGISTRY, Real, call, local_volume, need_real_node, start

pytestmark = [pytest.mark.realnode, pytest.mark.slow]

SUITE_NS = "rn-suites"
BUCKET, REGION = "fr-backups", "eu-west-3"
PREFIX = f"{SUITE_NS}/{SUITE}/fr/"  # components/backup prefix(): <suite namespace>/<suite>/<cc>/
IMAGES = ["postgres", "synapse", "element-web", "backup"]


def fr_cloud(endpoint_host: str, port: int) -> dict:
    cloud = copy.deepcopy(FR_CLOUD)
    cloud["spec"]["objectStorage"] = {"endpoint": f"http://{endpoint_host}:{port}", "region": REGION,
                                      "bucket": BUCKET, "credentialsSecretRef": "fr-s3"}
    cloud["spec"]["network"] = {"egress": {"objectStorage": [{"cidrs": [f"{endpoint_host}/32"],
                                                              "ports": [{"port": port}]}]}}
    return cloud


def suite(restore: bool, federation: dict | None = None) -> dict:
    backups: dict = {"enabled": True, "schedule": "0 3 * * *", "retentionDays": 7,
                     "encryptionRecipientSecretRef": {"name": "backup-recipient", "key": "recipient"}}
    if restore:
        backups["restoreFrom"] = {"backup": "latest", "identitySecretRef": {"name": "fr-identity", "key": "identity"}}
    doc = suite_doc("two-countries", SUITE_NS, name=SUITE, patch={
        "deletionPolicy": "Retain", "backups": backups,
        "components": {"docs": {"enabled": False}, "jitsi": {"enabled": False}, "llm": {"enabled": False}}})
    doc["spec"]["tenants"] = [{"country": "FR", "cloud": "fr-real"}]
    dr_federation.merge(doc["spec"], federation or {})  # Route.suite_patch: de.test, outside the suite
    return doc


def bring_up(name: str, cloud: dict, secrets: dict[str, dict[str, str]], names: list[str] | None = None) -> Real:
    """A cluster with the real node, the stand-in images tagged under FR's registry, the FR cloud, the suite
    namespace's referenceable Secrets, the tenant's volumes bound in advance on the node, and the operator.
    ``names``: the stand-ins to import (default IMAGES)."""
    from sovereign_suite.devcluster.realnode.build import build_all

    began = time.monotonic()
    # only the images the tenant runs (not the gateway's nor the operator's: seconds of import per cluster)
    images = build_all(names or IMAGES, progress=lambda m: print(f"[images] {m}"))
    c = start(name, countries=["DE"], images=list(images.values()))
    try:
        RealNode(c).alias_images(REGISTRY)
        r = Real(c)
        r.apply(cloud)
        r.kubectl("create", "namespace", SUITE_NS)
        create_referenced_secrets(r.core, SUITE_NS)
        for secret, data in secrets.items():
            r.core.create_namespaced_secret(SUITE_NS, {"metadata": {"name": secret, "labels": {
                "sovereignsuite.io/referenceable": "true"}}, "stringData": data})
        # sized above the claims' requests (Synapse's media 20Gi by default): a smaller volume is not bound, and the
        # hostPath provisioner's folder it gets instead is root's 0750 (docs/development.md, "Real-node tests")
        r.apply(*(local_volume(FR_NS, claim, Layout().base / "volumes", size="50Gi") for claim in CLAIMS))
        r.operator = OperatorProcess(c, drift_interval=3.0)
        r.operator.start()
    except BaseException:
        c.down()
        raise
    print(f"cluster {name} with the real node and the operator: {time.monotonic() - began:.0f} s")
    return r


def diagnose(r: Real) -> None:
    """What a failure needs to be understood, printed before the cluster goes: the tenant's pods, Synapse's and
    the Jobs' logs, the suite's conditions."""
    print(r.kubectl("-n", FR_NS, "get", "pods,jobs", "-o", "wide", check=False))
    for target in ("deploy/synapse", "statefulset/matrix-postgres", "job/backup-dr"):
        print(f"--- {target}\n" + r.kubectl("-n", FR_NS, "logs", target, "--all-containers", "--tail=60",
                                          check=False)[-6000:])
    for job in r.kubectl("-n", FR_NS, "get", "jobs", "-o", "name", check=False).split():
        if "restore" in job:
            print(f"--- {job}\n" + r.kubectl("-n", FR_NS, "logs", job, "--tail=60", check=False)[-6000:])
    print(r.kubectl("-n", SUITE_NS, "get", "sovereignsuites", "-o", "jsonpath={.items[*].status}", check=False))


def tear_down(r: Real) -> None:
    # the test's own client pod (`sleep` as PID 1 ignores SIGTERM: its 30 s grace would only slow the eviction)
    r.kubectl("-n", INGRESS_NS, "delete", "pod", "--all", "--grace-period=0", "--force", check=False)
    r.operator.stop()
    r.cluster.down()


def generated(r: Real) -> dict[str, dict]:
    """The tenant's generated Secrets: name -> (data, annotations)."""
    items = json.loads(r.kubectl("-n", FR_NS, "get", "secrets", "-l", f"{LABEL_GENERATED}=true", "-o",
                                 "json"))["items"]
    return {s["metadata"]["name"]: {"data": s.get("data") or {},
                                    "annotations": s["metadata"].get("annotations") or {}} for s in items}


def backed_up_secrets(r: Real) -> list[str]:
    """The Secrets the backup seals (the rendered backup configuration's list)."""
    cfg = json.loads(r.core.read_namespaced_config_map("backup-config", FR_NS).data["config.json"])
    return sorted(cfg["secrets"]["dirs"])


def run_backup(r: Real) -> tuple[str, float]:
    """The CronJob run now, as a Job from its template; (the backup id from its termination message, seconds)."""
    began = time.monotonic()
    r.kubectl("-n", FR_NS, "create", "job", "--from=cronjob/backup", "backup-dr")

    def finished():
        job = json.loads(r.kubectl("-n", FR_NS, "get", "job", "backup-dr", "-o", "json"))
        st = job.get("status") or {}
        return "ok" if st.get("succeeded") else ("failed" if st.get("failed") else None)

    state = wait_for(finished, timeout=300, interval=1, what="the backup Job finished")
    took = time.monotonic() - began
    assert state == "ok", r.kubectl("-n", FR_NS, "logs", "job/backup-dr", "--tail=60", check=False)
    pods = json.loads(r.kubectl("-n", FR_NS, "get", "pods", "-l", "job-name=backup-dr", "-o", "json"))["items"]
    (pod,) = [p for p in pods if p["status"]["phase"] == "Succeeded"]
    assert pod["spec"]["nodeName"] == "real-node"
    message = json.loads(pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"])
    return message["id"], took


def on_node_volumes(r: Real) -> None:
    """The tenant's claims are bound to the volumes in the node's folder (the ones ``cluster down`` removes)."""
    for claim in CLAIMS:
        pvc = r.core.read_namespaced_persistent_volume_claim(claim, FR_NS)
        assert pvc.spec.volume_name == f"{FR_NS}-{claim}", (claim, pvc.spec.volume_name)


def restore_entry(r: Real, doc: dict) -> dict:
    tenants = ((get_suite(r.kube, doc) or {}).get("status") or {}).get("tenants") or []
    return (tenants[0].get("restore") or {}) if tenants else {}


def node_storage(images: list[str]):
    """The images built, then moto's S3 server on the machine's address (reachable from the real node's pods) with
    the country's bucket, for a module's fixture to yield from."""
    need_real_node()
    from sovereign_suite.devcluster.realnode.build import build_all

    build_all(images, progress=lambda m: print(f"[images] {m}"))
    with moto_bucket(BUCKET, REGION, ACCESS, SECRET, host=node_ip()) as s3:
        yield s3


@pytest.fixture(scope="module")
def storage():
    yield from node_storage(IMAGES)


def test_a_deleted_cluster_comes_back_from_the_countrys_backups(storage, tmp_path: Path):
    s3 = storage
    host, port = s3.endpoint.removeprefix("http://").rsplit(":", 1)
    cloud = fr_cloud(host, int(port))
    identity_path, recipient = _identity(tmp_path, "fr-country")
    country = {"fr-s3": {"AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET},
               "backup-recipient": {"recipient": recipient}}
    document = b"%PDF-1.4 minutes of the council\n" + _random.token_bytes(200_000)
    pid = os.getpid()

    # ---- the site before the disaster --------------------------------------------------------------------------
    first = bring_up(f"dr-a-{pid}", cloud, country)
    try:
        began = time.monotonic()
        doc = suite(restore=False)
        first.apply(doc)
        wait_ready(first.kube, doc, timeout=900)
        print(f"suite Ready on the real node: {time.monotonic() - began:.0f} s")
        on_node_volumes(first)
        pod = first.client_pod(INGRESS_NS)
        token = register(first, pod)["access_token"]
        status, room = call(first, INGRESS_NS, pod, "POST", synapse("/_matrix/client/v3/createRoom"),
                            {"name": "Conseil"}, token)
        assert status == 200, room
        room = room["room_id"]
        send(first, pod, token, room, "t1", {"msgtype": "m.text", "body": "message one"})
        mxc = upload(first, pod, token, document)
        send(first, pod, token, room, "t2", {"msgtype": "m.file", "body": "minutes.pdf", "url": mxc})
        send(first, pod, token, room, "t3", {"msgtype": "m.text", "body": "message two"})
        expected = [("m.text", "message one"), ("m.file", "minutes.pdf"), ("m.text", "message two")]
        assert history(first, pod, token, room) == expected
        key = server_key(first, pod)
        assert key and all(k.startswith("ed25519:") for k in key), key
        sealed = backed_up_secrets(first)
        before = generated(first)
        assert {"synapse-keys", "matrix-postgres"} <= set(sealed) <= set(before), (sealed, sorted(before))

        bid, backup_seconds = run_backup(first)
        manifest = json.loads(s3.get(f"{PREFIX}{bid}/manifest.json"))
        sizes = {o["key"]: o["bytes"] for o in manifest["objects"]}
        assert any(k.endswith(".dump") for k in sizes) and any(k.startswith("files-") for k in sizes), sizes
        assert "secrets.tar.age" in sizes, sizes
        # the operator learns it (CronJob's lastSuccessfulTime, the pod's termination message)
        reported = wait_for(lambda: (((get_suite(first.kube, doc) or {}).get("status") or {}).get("tenants")
                                     or [{}])[0].get("backup", {}).get("lastBackupId") == bid
                            and get_suite(first.kube, doc)["status"]["tenants"][0]["backup"],
                            timeout=120, interval=1, what="the backup in the suite's status")
        print(f"backup {bid}: {backup_seconds:.0f} s for the Job, {sum(sizes.values())} bytes in the bucket "
              f"(status sizeBytes {reported.get('sizeBytes')}): {sizes}")
    except BaseException:
        diagnose(first)
        raise
    finally:
        # ---- the disaster: the whole cluster deleted, the node's folders (and the tenant's volumes) with it -----
        began = time.monotonic()
        tear_down(first)
        print(f"cluster deleted (cluster down, the real node's machine state restored): "
              f"{time.monotonic() - began:.0f} s")
    assert not first.cluster.exists() and not first.cluster.kubeconfig.exists()
    assert not (Layout().base / "volumes").exists()  # the database and media volumes are gone

    # ---- a new cluster, the suite applied with restoreFrom -----------------------------------------------------
    country["fr-identity"] = {"identity": identity_path.read_text()}
    second = bring_up(f"dr-b-{pid}", cloud, country)
    route = None
    try:
        route = dr_federation.prepare(second)  # the German server's Service: FR's suite names its address
        doc = suite(restore=True, federation=route.suite_patch())
        began = time.monotonic()
        second.apply(doc)
        pod = second.client_pod(INGRESS_NS)  # the test's client, started meanwhile
        wait_ready(second.kube, doc, timeout=900)
        assert restore_entry(second, doc) == {"phase": "Restored", "backupId": bid}
        on_node_volumes(second)
        answers: list[tuple[int, object]] = []

        def login_answer():
            """The login's answer, once it comes from Synapse. Once in about eight runs (2026-12-04, a CI run), the
            first request after Ready got a 404 with an empty body: not Synapse's answer (Synapse's errors are JSON
            with an errcode); the next one, moments later, reached it. Such an answer is retried for up to 30 s
            and every one is printed; any answer from Synapse (JSON) is final."""
            answer = call(second, INGRESS_NS, pod, "POST", synapse("/_matrix/client/v3/login"), {
                "type": "m.login.password", "identifier": {"type": "m.id.user", "user": USER}, "password": PASSWORD})
            answers.append(answer)
            return answer if isinstance(answer[1], dict) else None

        status, login = wait_for(login_answer, timeout=30, interval=1, what="a login answered by Synapse")
        if len(answers) > 1:
            print(f"login: {len(answers) - 1} answer(s) not from Synapse before it answered: {answers[:-1]}")
        assert status == 200, login
        token = login["access_token"]
        assert history(second, pod, token, room) == expected
        rto = time.monotonic() - began
        status, got = download(second, pod, token, mxc)
        assert status == 200 and got == document, (status, got if isinstance(got, str) else len(got))
        assert server_key(second, pod) == key  # the same key id and public key: other servers still verify it
        # and it holds the same private key: its signature verifies with the key read before the disaster, as a
        # server that cached it would check it
        body = key_response(second, pod)
        assert verify_signed(body, body["server_name"], key) == list(key), body
        another_server_verifies_the_key(second, body["server_name"], key, route, lambda: dr_exchange.exchange(
            second, pod, token, login["user_id"], room, expected, route))
        after = generated(second)
        for name in sealed:
            assert after[name]["data"] == before[name]["data"], f"Secret {name} was regenerated"
            assert after[name]["annotations"].get("sovereignsuite.io/restored-from") == bid, name
        print(f"RTO: {rto:.0f} s from applying the suite with restoreFrom to the user reading the history "
              f"(backup {bid}, {sum(sizes.values())} bytes)")
        corrupt_backup_is_refused(second, s3, bid)
    except BaseException:
        diagnose(second)
        raise
    finally:
        if route is not None:
            route.proxy.close()
        began = time.monotonic()
        tear_down(second)
        print(f"the new cluster deleted: {time.monotonic() - began:.0f} s")


def another_server_verifies_the_key(r: Real, fr_name: str, key: dict[str, str], route, then) -> None:
    """A second real Synapse (``de.test``, dr_federation.py) fetches the restored FR server's key over federation,
    with nothing cached and no other key server: it accepts it (its notary answer carries its own countersignature
    beside FR's), the key id and public key are the ones read before the disaster, and FR's signature verifies with
    that key. Then ``then()`` (the federated exchange, dr_exchange.py) while ``de.test`` runs."""
    began = time.monotonic()
    svc = r.core.read_namespaced_service("synapse", FR_NS)
    dr_federation.start(r, fr_name, f"{svc.spec.cluster_ip}:8008", route)
    try:
        (key_id,) = key
        entry = dr_federation.query_through_de(r, fr_name, key_id)
        assert entry["server_name"] == fr_name, entry
        assert {k: v["key"] for k, v in entry["verify_keys"].items()} == key, entry
        assert set(entry["signatures"]) == {fr_name, dr_federation.DE}, entry
        assert verify_signed(entry, fr_name, key) == [key_id]
        assert verify_signed(entry, dr_federation.DE, dr_federation.de_keys(r))
        print(f"{dr_federation.DE} (a second Synapse) fetched and countersigned FR's key {key_id} over federation: "
              f"{time.monotonic() - began:.0f} s with its start")
        then()
    except BaseException:
        print(dr_federation.log(r))
        raise
    finally:
        dr_federation.stop(r)


def corrupt_backup_is_refused(r: Real, s3, bid: str) -> None:
    """A second suite (``dr2``, FR on the real node) restored from ``latest`` where the newest backup's database
    dump is corrupt (a copy of ``bid`` with bytes flipped; its manifest keeps the SHA-256 of the good dump): the
    restore Job refuses before writing anything, the suite is Stalled with reason RestoreFailed naming the object,
    Synapse is never applied, and the database stays empty: never a fresh start."""
    other = "dr2"
    ns, prefix = f"{other}-fr", f"{SUITE_NS}/{other}/fr/"
    cid = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    assert cid > bid
    for key, _ in list(s3.list(f"{PREFIX}{bid}/")):
        name = key.rsplit("/", 1)[1]
        data = s3.get(key)
        if name == "manifest.json":
            data = json.dumps({**json.loads(data), "id": cid}, indent=1, sort_keys=True).encode()
        elif name.endswith(".dump"):
            data = data[:1000] + bytes(b ^ 0xFF for b in data[1000:1100]) + data[1100:]
        s3.put_bytes(f"{prefix}{cid}/{name}", data)
    r.apply(*(local_volume(ns, claim, Layout().base / "volumes", size="50Gi") for claim in CLAIMS))
    doc = suite(restore=True)
    doc["metadata"]["name"] = other
    began = time.monotonic()
    r.apply(doc)

    def failed():
        cond = next((c for c in ((get_suite(r.kube, doc) or {}).get("status") or {}).get("conditions") or []
                     if c["type"] == "Stalled"), None)
        return cond if cond and cond["status"] == "True" and cond["reason"] == "RestoreFailed" else None

    cond = wait_for(failed, timeout=300, interval=1, what="the suite Stalled RestoreFailed")
    took = time.monotonic() - began
    assert f"restore-{cid.lower()}" in cond["message"] and "postgres-matrix.dump is corrupt" in cond["message"], cond
    assert restore_entry(r, doc)["phase"] == "Failed"
    for kind, name in (("deployment", "synapse"), ("cronjob", "backup")):
        assert not r.kubectl("-n", ns, "get", kind, name, "--ignore-not-found", "-o", "name").strip(), (kind, name)
    pg = r.pod(ns, "matrix-postgres")
    env = {e["name"]: e.get("value") for e in pg["spec"]["containers"][0]["env"]}
    tables = r.kubectl("-n", ns, "exec", pg["metadata"]["name"], "-c", "postgres", "--", "psql", "-U",
                       env["POSTGRES_USER"], "-d", env["POSTGRES_DB"], "-tAc",
                       "select count(*) from information_schema.tables where table_schema = 'public'")
    assert tables.strip() == "0", f"the database is not empty: {tables}"
    assert r.secret(ns, "synapse-keys", "signing.key")  # the backup's Secrets were restored (that archive is whole)
    print(f"corrupt backup {cid}: Stalled RestoreFailed {took:.0f} s after the apply: {cond['message'][:300]}")
