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
   ``/_matrix/key/v2/server`` serves the same key id and public key; every generated Secret the backup held has
   the same values as before (annotated with the backup id): nothing was regenerated.

Printed with -s: the backup's size and duration, the time to delete the cluster and to create the new one, and
the RTO: from applying the suite with ``restoreFrom`` to the user reading the history (the figures in
docs/operations.md, "Restore into a new cluster", come from this test).

What it does not prove: federation verifying the restored key from another homeserver (only that the same key
is served); a restore of an older backup on the real node (tests/test_disaster_recovery.py does it at process
level); CloudNativePG (refused with restoreFrom); Docs, Jitsi and the LLM gateway (not enabled here); the
upstream images themselves (stand-ins).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
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
from .conftest import wait_for
from .operator_fixture import OperatorProcess, create_referenced_secrets, get_suite, suite_doc, wait_ready
from .realnode_fixture import CLAIMS, FR_CLOUD, INGRESS_NS, REGISTRY, Real, call, local_volume, need_real_node, start

pytestmark = [pytest.mark.realnode, pytest.mark.slow]

SUITE_NS, SUITE = "rn-suites", "dr"
FR_NS = f"{SUITE}-fr"
BUCKET, REGION = "fr-backups", "eu-west-3"
PREFIX = f"{SUITE_NS}/{SUITE}/fr/"  # components/backup prefix(): <suite namespace>/<suite>/<cc>/
USER, PASSWORD = "marianne", "correct horse battery staple"
IMAGES = ["postgres", "synapse", "element-web", "backup"]


def fr_cloud(endpoint_host: str, port: int) -> dict:
    cloud = copy.deepcopy(FR_CLOUD)
    cloud["spec"]["objectStorage"] = {"endpoint": f"http://{endpoint_host}:{port}", "region": REGION,
                                      "bucket": BUCKET, "credentialsSecretRef": "fr-s3"}
    cloud["spec"]["network"] = {"egress": {"objectStorage": [{"cidrs": [f"{endpoint_host}/32"],
                                                              "ports": [{"port": port}]}]}}
    return cloud


def suite(restore: bool) -> dict:
    backups: dict = {"enabled": True, "schedule": "0 3 * * *", "retentionDays": 7,
                     "encryptionRecipientSecretRef": {"name": "backup-recipient", "key": "recipient"}}
    if restore:
        backups["restoreFrom"] = {"backup": "latest", "identitySecretRef": {"name": "fr-identity", "key": "identity"}}
    doc = suite_doc("two-countries", SUITE_NS, name=SUITE, patch={
        "deletionPolicy": "Retain", "backups": backups,
        "components": {"docs": {"enabled": False}, "jitsi": {"enabled": False}, "llm": {"enabled": False}}})
    doc["spec"]["tenants"] = [{"country": "FR", "cloud": "fr-real"}]
    return doc


def bring_up(name: str, cloud: dict, secrets: dict[str, dict[str, str]]) -> Real:
    """A cluster with the real node, the stand-in images tagged under FR's registry, the FR cloud, the suite
    namespace's referenceable Secrets, the tenant's volumes bound in advance on the node, and the operator."""
    began = time.monotonic()
    c = start(name, countries=["DE"])
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
    r.operator.stop()
    r.cluster.down()


def synapse(path: str) -> str:
    return f"http://synapse.{FR_NS}.svc.cluster.local:8008{path}"


def register(r: Real, pod: str) -> dict:
    """Synapse's shared-secret registration (synapse/rest/admin/users.py, UserRegisterServlet, v1.163.2): HMAC-SHA1
    over nonce, user, password and "notadmin", NUL-separated, keyed with the generated registration secret."""
    secret = r.secret(FR_NS, "synapse-keys", "registration_shared_secret")
    status, out = call(r, INGRESS_NS, pod, "GET", synapse("/_synapse/admin/v1/register"))
    assert status == 200, out
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    mac.update(b"\x00".join([out["nonce"].encode(), USER.encode(), PASSWORD.encode(), b"notadmin"]))
    status, reg = call(r, INGRESS_NS, pod, "POST", synapse("/_synapse/admin/v1/register"), {
        "nonce": out["nonce"], "username": USER, "password": PASSWORD, "admin": False, "mac": mac.hexdigest()})
    assert status == 200, reg
    return reg


UPLOAD = """import base64,sys,urllib.request
u,t=sys.argv[1:3]
req=urllib.request.Request(u,method='POST',data=base64.b64decode(sys.stdin.read()),
    headers={'Content-Type':'application/pdf','Authorization':'Bearer '+t})
print(urllib.request.urlopen(req,timeout=60).read().decode())
"""
DOWNLOAD = """import base64,sys,urllib.request,urllib.error
u,t=sys.argv[1:3]
try:
    r=urllib.request.urlopen(urllib.request.Request(u,headers={'Authorization':'Bearer '+t}),timeout=60)
    print(200); print(base64.b64encode(r.read()).decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
"""


def upload(r: Real, pod: str, token: str, data: bytes) -> str:
    out = r.kubectl("-n", INGRESS_NS, "exec", "-i", pod, "--", "python3", "-c", UPLOAD,
                    synapse("/_matrix/media/v3/upload?filename=minutes.pdf"), token,
                    input=base64.b64encode(data).decode())
    return json.loads(out)["content_uri"]


def download(r: Real, pod: str, token: str, mxc: str) -> tuple[int, bytes | str]:
    server, media_id = mxc.removeprefix("mxc://").split("/", 1)
    out = r.kubectl("-n", INGRESS_NS, "exec", pod, "--", "python3", "-c", DOWNLOAD,
                    synapse(f"/_matrix/client/v1/media/download/{server}/{media_id}"), token)
    status, _, body = out.partition("\n")
    return int(status), base64.b64decode(body.strip()) if status == "200" else body


def send(r: Real, pod: str, token: str, room: str, txn: str, content: dict) -> None:
    status, out = call(r, INGRESS_NS, pod, "PUT",
                       synapse(f"/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}"), content, token)
    assert status == 200, out


def history(r: Real, pod: str, token: str, room: str) -> list[tuple[str, str]]:
    status, out = call(r, INGRESS_NS, pod, "GET", synapse(f"/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=50"),
                       token=token)
    assert status == 200, out
    return [(e["content"]["msgtype"], e["content"]["body"]) for e in reversed(out["chunk"])
            if e["type"] == "m.room.message"]


def server_key(r: Real, pod: str) -> dict[str, str]:
    """key id -> public key, as other servers fetch it (the key API, served with the federation resource)."""
    status, out = call(r, INGRESS_NS, pod, "GET", synapse("/_matrix/key/v2/server"))
    assert status == 200, out
    return {k: v["key"] for k, v in out["verify_keys"].items()}


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


@pytest.fixture(scope="module")
def storage():
    """moto's S3 server on the machine's address (reachable from the real node's pods), the country's bucket."""
    need_real_node()
    from sovereign_suite.devcluster.realnode.build import build_all

    build_all(IMAGES, progress=lambda m: print(f"[images] {m}"))
    with moto_bucket(BUCKET, REGION, ACCESS, SECRET, host=node_ip()) as s3:
        yield s3


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
    try:
        doc = suite(restore=True)
        began = time.monotonic()
        second.apply(doc)
        pod = second.client_pod(INGRESS_NS)  # the test's client, started meanwhile
        wait_ready(second.kube, doc, timeout=900)
        assert restore_entry(second, doc) == {"phase": "Restored", "backupId": bid}
        on_node_volumes(second)
        status, login = call(second, INGRESS_NS, pod, "POST", synapse("/_matrix/client/v3/login"), {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": USER}, "password": PASSWORD})
        assert status == 200, login
        token = login["access_token"]
        assert history(second, pod, token, room) == expected
        rto = time.monotonic() - began
        status, got = download(second, pod, token, mxc)
        assert status == 200 and got == document, (status, got if isinstance(got, str) else len(got))
        assert server_key(second, pod) == key  # the same key id and public key: other servers still verify it
        after = generated(second)
        for name in sealed:
            assert after[name]["data"] == before[name]["data"], f"Secret {name} was regenerated"
            assert after[name]["annotations"].get("sovereignsuite.io/restored-from") == bid, name
        print(f"RTO: {rto:.0f} s from applying the suite with restoreFrom to the user reading the history "
              f"(backup {bid}, {sum(sizes.values())} bytes)")
    except BaseException:
        diagnose(second)
        raise
    finally:
        tear_down(second)
