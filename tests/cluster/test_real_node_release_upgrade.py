"""A release upgrade on the real node (issue 23, "Upgrades"): a tenant on the previous release's pins, with data,
moved to the current release; then a downgrade asked for and refused.

With real programs only (stand-in images: Synapse v1.99.0 and v1.163.2 from PyPI, Debian's PostgreSQL 17, the
backup image's pg_dump; moto's S3 server on the machine's address; devcluster/realnode/standins.py):

1. A cluster with the real node and the operator (test_real_node_dr.bring_up); the FR tenant on the real node with
   ``spec.release: "2024.01"`` (api/releases.yaml: Synapse v1.99.0, schema 83) and backups to the bucket. Synapse
   v1.99.0 creates its schema: ``schema_version`` says 83, no delta of a later version is applied.
2. A user registered, a room, two messages and a file uploaded (the DR test's client, dr_matrix.py).
3. ``spec.release: "2026.12"``: the status is sampled throughout (status.tenants[].upgrade: Backup, CheckConfig,
   ... ; reconcile/rollout.py), and the evidence read afterwards:
   - the pre-upgrade backup is in the bucket (its manifest, written last, is complete), it was created before the
     new Synapse's container started (the manifest's ``created`` against the pod's ``startedAt``), and its
     database dump holds the database as it was: ``schema_version`` 83 (pg_restore of the dump, in the
     PostgreSQL pod);
   - the database is migrated: ``schema_version`` 94, ``schema_compat_version`` 84, and ``applied_schema_deltas``
     holds exactly the delta files of versions 84..94 that the new image's own Synapse package ships for
     PostgreSQL (synapse/storage/prepare_database.py, _upgrade_existing_database, v1.163.2: every ``.py``,
     ``.sql`` and ``.sql.postgres`` file of common/, main/ and state/ ``delta/<v>/`` is recorded once applied);
   - the new Synapse serves: ``/_matrix/federation/v1/version`` says 1.163.2;
   - the same user logs in with the same password, reads the history and downloads the file (the same bytes).
4. ``spec.release: "2024.01"`` again: Stalled, reason UpgradeRefused, the message naming ``spec.release`` and the
   schema; the Synapse pod is the same one (same uid, never restarted) and still answers 1.163.2; the operator
   wrote nothing in the tenant's namespace (the API server's audit log: only the suite's status, events, leases).

Printed with -s: the time to Ready on the previous release, the upgrade's duration and each step as the status
showed it, the backup's size (docs/operations.md, "Upgrades", quotes them).

What it does not prove: the upstream images (stand-ins: other builds of the same versions); Synapse's workers
(not enabled here: tests/cluster/test_upgrade_rollout.py orders them); a failed step (test_upgrade_rollout.py);
CloudNativePG; Docs' migrations (Docs is off).
"""

from __future__ import annotations

import json
import os
import secrets as _random
import time
from datetime import datetime
from pathlib import Path

import pytest

from sovereign_suite.api.image_pins import OLDER_PINS, PINS
from sovereign_suite.imageref import rewrite

from ..test_backup_program import ACCESS, SECRET, _identity
from .conftest import wait_for
from .dr_matrix import FR_NS, PASSWORD, USER, download, history, register, send, synapse, upload
from .operator_fixture import SUITES, Audit, condition, get_suite, wait_ready
from .realnode_fixture import INGRESS_NS, REGISTRY, Real, call
from .test_real_node_dr import PREFIX, bring_up, diagnose, fr_cloud, node_storage, suite, tear_down

pytestmark = [pytest.mark.realnode, pytest.mark.slow]

PREVIOUS, CURRENT = "2024.01", "2026.12"
IMAGES = ["postgres", "synapse", "synapse-previous", "element-web", "backup"]
NEVER = "0 3 1 1 *"  # the CronJob's schedule: no scheduled backup during the test, only the upgrade's

# Lists the delta files a Synapse applies on PostgreSQL for versions FIRST..SCHEMA_VERSION, from its own package
# (synapse/storage/prepare_database.py, v1.163.2: directories common/delta/<v> and <database>/delta/<v> for the
# databases main and state; ".py", ".sql" and ".<engine>" files with a ".sql" root; recorded as "<v>/<file>")
DELTAS = r"""import os, sys
import synapse.storage.schema as s
first, last = int(sys.argv[1]), s.SCHEMA_VERSION
root = os.path.dirname(s.__file__)
out = []
for v in range(first, last + 1):
    for db in ("common", "main", "state"):
        d = os.path.join(root, db, "delta", str(v))
        for f in (os.listdir(d) if os.path.isdir(d) else []):
            base, ext = os.path.splitext(f)
            if ext in (".py", ".sql") or (ext == ".postgres" and base.endswith(".sql")):
                out.append(f"{v}|{v}/{f}")
print(last); print("\n".join(sorted(out)))
"""


@pytest.fixture(scope="module")
def storage():
    """test_real_node_dr's storage, with the previous release's Synapse image built too."""
    yield from node_storage(IMAGES)


def psql(r: Real, sql: str) -> list[str]:
    """Rows of ``sql`` in the tenant's embedded PostgreSQL (psql in its own container), '|'-separated."""
    pg = r.pod(FR_NS, "matrix-postgres")
    env = {e["name"]: e.get("value") for e in pg["spec"]["containers"][0]["env"]}
    out = r.kubectl("-n", FR_NS, "exec", pg["metadata"]["name"], "-c", "postgres", "--", "psql", "-U",
                    env["POSTGRES_USER"], "-d", env["POSTGRES_DB"], "-tAc", sql)
    return [line for line in out.splitlines() if line.strip()]


def schema(r: Real) -> tuple[int, int, list[str]]:
    """(schema_version, schema_compat_version, applied deltas of versions above 83 as 'version|file')."""
    (version,) = psql(r, "select version from schema_version")
    (compat,) = psql(r, "select compat_version from schema_compat_version")
    deltas = psql(r, "select version || '|' || file from applied_schema_deltas where version > 83 order by 1")
    return int(version), int(compat), sorted(deltas)


def synapse_pods(r: Real) -> list[dict]:
    pods = json.loads(r.kubectl("-n", FR_NS, "get", "pods", "-l", "app.kubernetes.io/name=synapse", "-o",
                                "json"))["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def server_version(r: Real, pod: str) -> str:
    """What Synapse says it is (Server-Server API, GET /_matrix/federation/v1/version)."""
    status, out = call(r, INGRESS_NS, pod, "GET", synapse("/_matrix/federation/v1/version"))
    assert status == 200, out
    assert out["server"]["name"] == "Synapse", out
    return out["server"]["version"]


def synapse_image(r: Real) -> str:
    return r.kubectl("-n", FR_NS, "get", "deployment", "synapse", "-o",
                     "jsonpath={.spec.template.spec.containers[?(@.name=='synapse')].image}")


def tenant_status(r: Real, doc: dict) -> dict:
    return (((get_suite(r.kube, doc) or {}).get("status") or {}).get("tenants") or [{}])[0]


def dump_schema_version(r: Real, s3, key: str) -> str:
    """``schema_version``'s row in a backup's database dump (pg_dump -Fc), read by PostgreSQL 17's pg_restore in the
    tenant's PostgreSQL pod: the dump arrives on its standard input."""
    pg = r.pod(FR_NS, "matrix-postgres")
    import subprocess

    from sovereign_suite.devcluster.cluster import bin_dir

    proc = subprocess.run([str(bin_dir() / "kubectl"), "--kubeconfig", str(r.cluster.kubeconfig), "-n", FR_NS, "exec",
                           "-i", pg["metadata"]["name"], "-c", "postgres", "--", "pg_restore", "--data-only",
                           "--table=schema_version", "-f", "-"], input=s3.get(key), capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    text = proc.stdout.decode()
    # COPY public.schema_version (lock, version, upgraded) FROM stdin;\nX\t83\tf\n\.
    rows = text.split("FROM stdin;\n", 1)[1].split("\n\\.", 1)[0].splitlines()
    assert len(rows) == 1, text
    return rows[0].split("\t")[1]


def test_a_tenant_upgrades_with_its_data_and_a_downgrade_is_refused(storage, tmp_path: Path):
    s3 = storage
    host, port = s3.endpoint.removeprefix("http://").rsplit(":", 1)
    _, recipient = _identity(tmp_path, "fr-country")
    country = {"fr-s3": {"AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET},
               "backup-recipient": {"recipient": recipient}}
    document = b"%PDF-1.4 minutes before the upgrade\n" + _random.token_bytes(100_000)
    r = bring_up(f"upg-{os.getpid()}", fr_cloud(host, int(port)), country, IMAGES)
    try:
        # ---- the previous release, with data ------------------------------------------------------------------
        doc = suite(restore=False)
        doc["spec"]["release"] = PREVIOUS
        doc["spec"]["backups"]["schedule"] = NEVER
        name, ns = doc["metadata"]["name"], doc["metadata"]["namespace"]
        began = time.monotonic()
        r.apply(doc)
        pod = r.client_pod(INGRESS_NS)
        wait_ready(r.kube, doc, timeout=600)
        print(f"suite Ready on release {PREVIOUS}: {time.monotonic() - began:.0f} s")
        assert synapse_image(r) == rewrite(OLDER_PINS[PREVIOUS]["synapse"].ref, REGISTRY)
        assert server_version(r, pod) == "1.99.0"
        assert schema(r) == (83, 83, []), schema(r)
        token = register(r, pod)["access_token"]
        status, room = call(r, INGRESS_NS, pod, "POST", synapse("/_matrix/client/v3/createRoom"),
                            {"name": "Conseil"}, token)
        assert status == 200, room
        room = room["room_id"]
        send(r, pod, token, room, "t1", {"msgtype": "m.text", "body": "avant la mise à jour"})
        mxc = upload(r, pod, token, document)
        send(r, pod, token, room, "t2", {"msgtype": "m.file", "body": "minutes.pdf", "url": mxc})
        expected = [("m.text", "avant la mise à jour"), ("m.file", "minutes.pdf")]
        assert history(r, pod, token, room) == expected
        assert not list(s3.list(PREFIX)), "a backup before the upgrade asked for one"
        (old_pod,) = synapse_pods(r)

        # ---- the upgrade --------------------------------------------------------------------------------------
        began = time.monotonic()
        r.kube.merge_patch(*SUITES, name, ns, {"spec": {"release": CURRENT}})
        steps: list[tuple[str, str]] = []

        def upgraded():
            t = tenant_status(r, doc)
            up = t.get("upgrade")
            if up and (up["step"], up["state"]) not in steps:
                steps.append((up["step"], up["state"]))
                print(f"{time.monotonic() - began:5.0f} s  {up['step']} {up['state']}: {up.get('message', '')}")
            assert not up or up["state"] != "Failed", up
            return (t.get("release") or {}).get("name") == CURRENT and "upgrade" not in t

        wait_for(upgraded, timeout=420, interval=1, what=f"the tenant on release {CURRENT}")
        wait_ready(r.kube, doc, timeout=120)
        took = time.monotonic() - began
        print(f"upgrade {PREVIOUS} -> {CURRENT}: {took:.0f} s, steps {steps}")
        assert [s for s, _ in steps][:2] == ["Backup", "CheckConfig"], steps
        assert synapse_image(r) == rewrite(PINS["synapse"].ref, REGISTRY)
        (new_pod,) = synapse_pods(r)
        assert new_pod["metadata"]["uid"] != old_pod["metadata"]["uid"]
        (main,) = [c for c in new_pod["status"]["containerStatuses"] if c["name"] == "synapse"]
        started = datetime.fromisoformat(main["state"]["running"]["startedAt"].replace("Z", "+00:00"))

        # the pre-upgrade backup: complete, taken before the new Synapse started, of the database as it was
        manifests = [k for k, _ in s3.list(PREFIX) if k.endswith("/manifest.json")]
        assert len(manifests) == 1, manifests
        manifest = json.loads(s3.get(manifests[0]))
        created = datetime.fromisoformat(manifest["created"])
        assert created < started, (manifest["created"], main["state"])
        sizes = {o["key"]: o["bytes"] for o in manifest["objects"]}
        assert {"postgres-matrix.dump", "secrets.tar.age"} <= set(sizes), sizes
        assert any(k.startswith("files-") for k in sizes), sizes
        assert dump_schema_version(r, s3, f"{PREFIX}{manifest['id']}/postgres-matrix.dump") == "83"
        print(f"pre-upgrade backup {manifest['id']}: {sum(sizes.values())} bytes, created "
              f"{(started - created).total_seconds():.0f} s before the new Synapse started")

        # the schema migrated: every delta 84..94 the new Synapse ships, applied
        out = r.kubectl("-n", FR_NS, "exec", new_pod["metadata"]["name"], "-c", "synapse", "--", "python3", "-c",
                        DELTAS, "84").splitlines()
        shipped_version, shipped = int(out[0]), sorted(line for line in out[1:] if line)
        assert shipped_version == 94 and shipped, out[:5]
        assert schema(r) == (94, 84, shipped)
        print(f"schema 83 -> 94 (compat 84): {len(shipped)} delta files of versions 84..94 applied")
        assert server_version(r, pod) == "1.163.2"

        # the data: the same user, the same password, the history, the file
        status, login = call(r, INGRESS_NS, pod, "POST", synapse("/_matrix/client/v3/login"), {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": USER}, "password": PASSWORD})
        assert status == 200, login
        token = login["access_token"]
        assert history(r, pod, token, room) == expected
        status, got = download(r, pod, token, mxc)
        assert status == 200 and got == document, (status, got if isinstance(got, str) else len(got))

        # ---- a downgrade: refused, nothing touched --------------------------------------------------------------
        audit = Audit(r.cluster)
        mark = audit.mark()
        r.kube.merge_patch(*SUITES, name, ns, {"spec": {"release": PREVIOUS}})

        def stalled():
            c = condition(get_suite(r.kube, doc), "Stalled")
            return c if c and c["status"] == "True" else None

        c = wait_for(stalled, timeout=60, what="the downgrade refused (Stalled)")
        print(f"downgrade refused: {c['reason']}: {c['message']}")
        assert c["reason"] == "UpgradeRefused", c
        assert "spec.release: Synapse v1.99.0 (schema 83) cannot run on tenant FR's database" in c["message"], c
        assert "schema 94" in c["message"], c
        time.sleep(6)  # two drift passes (every 3 s) after the refusal: still nothing written
        assert synapse_image(r) == rewrite(PINS["synapse"].ref, REGISTRY)
        (still,) = synapse_pods(r)
        assert still["metadata"]["uid"] == new_pod["metadata"]["uid"]
        assert [c["restartCount"] for c in still["status"]["containerStatuses"]] == \
            [c["restartCount"] for c in new_pod["status"]["containerStatuses"]]
        assert server_version(r, pod) == "1.163.2"
        assert tenant_status(r, doc)["release"]["name"] == CURRENT
        assert schema(r)[:2] == (94, 84)
        children = [w for w in audit.writes(mark) if w.split()[1] not in ("sovereignsuites/status", "events",
                                                                           "leases")]
        assert children == [], children
    except BaseException:
        diagnose(r)
        raise
    finally:
        tear_down(r)
