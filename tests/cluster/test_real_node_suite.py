"""What the operator renders really runs: a two-country suite whose FR tenant is on the real node (NationalCloud
fr-real: region local-real, imageRegistry registry.fr.local, the stand-in images tagged there), DE's on
simulated nodes. Real PostgreSQL, Synapse and Element (nginx) containers, with the rendered commands, users,
mounts, probes, Secrets and NetworkPolicies (kube-router). docs/development.md, "Real node", says what the
stand-in images do and do not prove.

The network test: real traffic against the FR tenant's NetworkPolicies (kube-router): from a pod in
the other tenant's namespace, the ingress controller's namespace, a monitoring namespace, an unrelated namespace
and from Synapse itself, a TCP connection to each serving port of FR's pods. The measured matrix must equal the
one Cyclonus computes from the policies in the cluster (tests/netpol_eval.py), and hold both outcomes. (Synapse
reaching its own address is measured apart: kube-router does not filter a pod's traffic to itself.)"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from sovereign_suite.devcluster.cluster import bin_dir
from sovereign_suite.devcluster.realnode import NODE_NAME, RealNode

from .conftest import wait_for
from .operator_fixture import suite_doc, wait_ready
from ..netpol_eval import Pod, evaluate
from .realnode_fixture import (  # noqa: F401 - real: the module's cluster
    CLAIMS, FR_NS, INGRESS_NS, PATCH, REGISTRY, SUITE, Real, call, ensure_suite, real,
)

pytestmark = [pytest.mark.realnode, pytest.mark.slow]


def password_ref(pod: dict) -> dict[str, str]:
    """The Secret name and key of the password the postgres container reads from the file POSTGRES_PASSWORD_FILE
    names (a Secret volume: upstream's entrypoint reads it with file_env, docker-library/postgres
    docker-entrypoint.sh)."""
    ctr = pod["spec"]["containers"][0]
    path = next(e["value"] for e in ctr["env"] if e["name"] == "POSTGRES_PASSWORD_FILE")
    mount = next(m for m in ctr["volumeMounts"] if path.startswith(m["mountPath"].rstrip("/") + "/"))
    secret = next(v["secret"] for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
    rel = path[len(mount["mountPath"].rstrip("/")) + 1:]
    key = next((i["key"] for i in secret.get("items", []) if i["path"] == rel), rel)
    return {"name": secret["secretName"], "key": key}

def test_suite_runs_on_the_real_node(real: Real):
    r = real
    started = time.monotonic()
    suite = ensure_suite(r)
    print(f"suite Ready from real pods in {time.monotonic() - started:.0f} s")
    # every FR pod ran on the real node, from the country's registry
    pods = json.loads(r.kubectl("-n", FR_NS, "get", "pods", "-o", "json"))["items"]
    assert pods and all(p["spec"]["nodeName"] == NODE_NAME for p in pods), [p["spec"].get("nodeName") for p in pods]
    for p in pods:
        for ctr in p["spec"]["containers"] + p["spec"].get("initContainers", []):
            assert ctr["image"].startswith(REGISTRY + "/"), ctr["image"]
        assert all(s["ready"] for s in p["status"]["containerStatuses"]), p["status"]["containerStatuses"]

    # PostgreSQL was initialised with the operator's generated credentials: a TCP login with them works, one with
    # another password fails (on the pod's address: like upstream's image, loopback connections are trusted)
    pg = r.pod(FR_NS, "matrix-postgres")
    pg_ip = pg["status"]["podIP"]
    env = {e["name"]: e for e in pg["spec"]["containers"][0]["env"]}
    ref = password_ref(pg)
    password = r.secret(FR_NS, ref["name"], ref["key"])
    user, db = env["POSTGRES_USER"]["value"], env["POSTGRES_DB"]["value"]
    out = r.kubectl("-n", FR_NS, "exec", pg["metadata"]["name"], "-c", "postgres", "--", "env",
                    f"PGPASSWORD={password}", "psql", "-h", pg_ip, "-U", user, "-d", db, "-tAc",
                    "select count(*) from information_schema.tables where table_name = 'schema_version'")
    assert out.strip() == "1", f"Synapse's schema is not in {db}: {out}"
    wrong = subprocess.run([str(bin_dir() / "kubectl"), "--kubeconfig", str(r.cluster.kubeconfig), "-n", FR_NS,
                            "exec", pg["metadata"]["name"], "-c", "postgres", "--", "env", "PGPASSWORD=wrong",
                            "psql", "-h", pg_ip, "-U", user, "-d", db, "-c", "select 1"],
                           capture_output=True, text=True)
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr, wrong.stderr

    # Synapse: its init container wrote the database settings; it migrated and passes its readiness probe
    syn = r.pod(FR_NS, "synapse")
    init = syn["status"]["initContainerStatuses"][0]
    assert init["state"]["terminated"]["exitCode"] == 0, init
    assert "synapse" in r.kubectl("-n", FR_NS, "logs", syn["metadata"]["name"], "-c", "synapse", "--tail=200").lower()

    # through the Services, from a pod in the ingress controller's namespace (the path the policies open)
    client_pod = r.client_pod(INGRESS_NS)
    status, body = r.http(INGRESS_NS, client_pod, f"http://synapse.{FR_NS}.svc.cluster.local:8008/_matrix/client/versions")
    assert status == 200 and "v1.1" in json.loads(body)["versions"], body
    cm = r.core.read_namespaced_config_map("element-web", FR_NS).data
    port = r.core.read_namespaced_service("element-web", FR_NS).spec.ports[0].port
    status, body = r.http(INGRESS_NS, client_pod, f"http://element-web.{FR_NS}.svc.cluster.local:{port}/config.json")
    assert status == 200 and json.loads(body) == json.loads(cm["config.json"]), body
    wk = {k: v for k, v in cm.items() if k.startswith("well-known")} or {
        k: v for k, v in r.core.read_namespaced_config_map("element-web", FR_NS).data.items() if "client" in k}
    status, body = r.http(INGRESS_NS, client_pod,
                          f"http://element-web.{FR_NS}.svc.cluster.local:{port}/.well-known/matrix/client")
    assert status == 200 and json.loads(body)["m.homeserver"]["base_url"].startswith("https://matrix."), (body, wk)
    assert suite["status"]["conditions"]


def _synapse_url(path: str) -> str:
    return f"http://synapse.{FR_NS}.svc.cluster.local:8008{path}"


def _register(r: Real, client_pod: str, user: str, password: str) -> dict:
    """Synapse's shared-secret registration (synapse/rest/admin/users.py, UserRegisterServlet): HMAC-SHA1 over
    nonce, user, password and "notadmin", NUL-separated; the secret is the generated synapse-keys entry."""
    secret = r.secret(FR_NS, "synapse-keys", "registration_shared_secret")
    status, out = call(r, INGRESS_NS, client_pod, "GET", _synapse_url("/_synapse/admin/v1/register"))
    assert status == 200, out
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    mac.update(b"\x00".join([out["nonce"].encode(), user.encode(), password.encode(), b"notadmin"]))
    status, reg = call(r, INGRESS_NS, client_pod, "POST", _synapse_url("/_synapse/admin/v1/register"),
                       {"nonce": out["nonce"], "username": user, "password": password, "admin": False,
                        "mac": mac.hexdigest()})
    assert status == 200, reg
    return reg


def _ready_again(r: Real, doc: dict) -> None:
    wait_ready(r.kube, doc, timeout=600)


def test_killed_pod_comes_back(real: Real):
    """The Synapse container's process killed on the machine (SIGKILL): kubelet restarts it, it passes its
    probes again and the suite is Ready again."""
    r = real
    syn = r.pod(FR_NS, "synapse")
    before = syn["status"]["containerStatuses"][0]["restartCount"]
    cid = syn["status"]["containerStatuses"][0]["containerID"].split("//", 1)[1]
    node = RealNode(r.cluster)
    tasks = node._ctr("tasks", "ls", timeout=30).stdout.splitlines()
    pid = next(int(line.split()[1]) for line in tasks if line.startswith(cid))
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: (s := r.pod(FR_NS, "synapse")["status"]["containerStatuses"][0])["restartCount"] > before
             and s["ready"], timeout=300, interval=2, what="Synapse restarted and ready")
    doc = suite_doc("two-countries", "rn-suites", name=SUITE, patch=PATCH)
    _ready_again(r, doc)


def test_data_survives_delete_with_retain_and_recreate(real: Real):
    r = real
    client_pod = "client"
    password = uuid.uuid4().hex
    reg = _register(r, client_pod, "alice", password)
    token = reg["access_token"]
    status, room = call(r, INGRESS_NS, client_pod, "POST", _synapse_url("/_matrix/client/v3/createRoom"),
                        {"name": "survives"}, token)
    assert status == 200, room
    text = f"kept across delete and recreate {uuid.uuid4().hex[:8]}"
    status, sent = call(r, INGRESS_NS, client_pod, "PUT", _synapse_url(
        f"/_matrix/client/v3/rooms/{room['room_id']}/send/m.room.message/t1"), {"msgtype": "m.text", "body": text},
        token)
    assert status == 200, sent
    pvc_uids = {c: r.core.read_namespaced_persistent_volume_claim(c, FR_NS).metadata.uid for c in CLAIMS}
    signing_key = r.secret(FR_NS, "synapse-keys", "signing.key")

    doc = suite_doc("two-countries", "rn-suites", name=SUITE, patch=PATCH)
    r.kubectl("-n", "rn-suites", "delete", f"sovereignsuites.sovereignsuite.io/{SUITE}", "--wait=true", timeout=300)
    wait_for(lambda: not json.loads(r.kubectl("-n", FR_NS, "get", "pods", "-o", "json"))["items"], timeout=300,
             interval=2, what="the FR pods gone after the suite's deletion")
    assert {c: r.core.read_namespaced_persistent_volume_claim(c, FR_NS).metadata.uid for c in CLAIMS} == pvc_uids
    r.apply(doc)
    _ready_again(r, doc)
    assert {c: r.core.read_namespaced_persistent_volume_claim(c, FR_NS).metadata.uid for c in CLAIMS} == pvc_uids
    assert r.secret(FR_NS, "synapse-keys", "signing.key") == signing_key
    status, login = call(r, INGRESS_NS, client_pod, "POST", _synapse_url("/_matrix/client/v3/login"), {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": password})
    assert status == 200, login
    status, msgs = call(r, INGRESS_NS, client_pod, "GET", _synapse_url(
        f"/_matrix/client/v3/rooms/{room['room_id']}/messages?dir=b&limit=20"), token=login["access_token"])
    assert status == 200 and any(e.get("content", {}).get("body") == text for e in msgs["chunk"]), msgs


def test_gateway_starts_with_its_rendered_configuration(real: Real):
    """LiteLLM runs the rendered config.yaml on the real node: ready, refusing requests without the generated
    master key, and listing the suite's model under its served name with it."""
    r = real
    ensure_suite(r)
    gw = r.pod(FR_NS, "llm-gateway")
    assert gw["spec"]["nodeName"] == NODE_NAME and all(s["ready"] for s in gw["status"]["containerStatuses"])
    port = r.core.read_namespaced_service("llm-gateway", FR_NS).spec.ports[0].port
    url = f"http://llm-gateway.{FR_NS}.svc.cluster.local:{port}"
    status, _ = call(r, INGRESS_NS, "client", "GET", url + "/v1/models")
    assert status in (401, 403), status
    key = "sk-" + r.secret(FR_NS, "llm-gateway", "master-key")
    status, models = call(r, INGRESS_NS, "client", "GET", url + "/v1/models", token=key)
    assert status == 200 and [m["id"] for m in models["data"]] == ["albert"], models


def test_a_failing_start_shows_its_real_reason(real: Real):
    """The database's password changed under Synapse (as a rotation done behind the operator's back would): the
    restarted Synapse cannot log in, and the suite's status names the stuck container with the tail of its log;
    with the password back, the suite is Ready again."""
    r = real
    doc = suite_doc("two-countries", "rn-suites", name=SUITE, patch=PATCH)
    ensure_suite(r)
    pg = r.pod(FR_NS, "matrix-postgres")
    env = {e["name"]: e for e in pg["spec"]["containers"][0]["env"]}
    user = env["POSTGRES_USER"]["value"]
    ref = password_ref(pg)

    def set_password(value: str) -> None:  # over the local socket (trusted, as in upstream's image)
        r.kubectl("-n", FR_NS, "exec", pg["metadata"]["name"], "-c", "postgres", "--", "psql", "-U", user, "-d",
                  "postgres", "-v", "ON_ERROR_STOP=1", "-c", f"ALTER ROLE \"{user}\" PASSWORD '{value}'")

    set_password(uuid.uuid4().hex)
    try:
        r.kubectl("-n", FR_NS, "delete", "pod", "-l", "app.kubernetes.io/name=synapse", "--wait=false")

        def stuck():
            suite = r.kube.get("sovereignsuite.io/v1alpha1", "SovereignSuite", SUITE, "rn-suites") or {}
            for t in (suite.get("status") or {}).get("tenants") or []:
                for c in t.get("components") or []:
                    if c.get("reason") == "CrashLoopBackOff":
                        return c
            return None

        comp = wait_for(stuck, timeout=300, interval=2, what="the status naming Synapse's crash loop")
        assert "container synapse" in comp["message"], comp
        assert "password authentication failed" in comp["message"], comp
    finally:
        set_password(r.secret(FR_NS, ref["name"], ref["key"]))
    wait_ready(r.kube, doc, timeout=400)


SOURCES = (  # (namespace, extra namespace labels)
    ("rn-de", {}),  # the other tenant
    (INGRESS_NS, {}),
    ("rn-monitoring", {"sovereignsuite.io/monitoring": "true"}),
    ("rn-unrelated", {}),
)
PROBE = """import json,socket,sys
from concurrent.futures import ThreadPoolExecutor
def ok(t):
    try:
        socket.create_connection((t[0], t[1]), timeout=3).close(); return True
    except OSError:
        return False
with ThreadPoolExecutor(16) as ex: print(json.dumps(list(ex.map(ok, json.loads(sys.argv[1])))))
"""


def _pod(obj: dict) -> Pod:
    ports = tuple((p.get("name", ""), p["containerPort"], p.get("protocol", "TCP"))
                  for c in obj["spec"]["containers"] for p in c.get("ports", []))
    return Pod(obj["metadata"]["namespace"], obj["metadata"]["name"], obj["metadata"].get("labels", {}), ports,
               obj["status"]["podIP"])


def test_measured_matrix_equals_the_policies(real: Real, tmp_path: Path):
    r = real
    ensure_suite(r)
    fr = [json.loads(r.kubectl("-n", FR_NS, "get", "pod", p, "-o", "json")) for p in
          r.kubectl("-n", FR_NS, "get", "pods", "-o", "jsonpath={.items[*].metadata.name}").split()]
    targets = [(pod, port, proto) for pod in map(_pod, fr) for _, port, proto in pod.ports if proto == "TCP"]
    assert {t[0].app for t in targets} >= {"synapse", "element-web", "matrix-postgres"}, targets
    sources: list[tuple[Pod, str]] = []
    for ns, labels in SOURCES:
        name = r.client_pod(ns, "probe", labels)
        sources.append((_pod(json.loads(r.kubectl("-n", ns, "get", "pod", name, "-o", "json"))), "c"))
    synapse = next(p for p in fr if p["metadata"]["labels"].get("app.kubernetes.io/name") == "synapse")
    sources.append((_pod(synapse), "synapse"))  # from inside the tenant: Synapse to its database and neighbours

    measured, cases = [], []
    for src, container in sources:
        out = r.kubectl("-n", src.namespace, "exec", src.name, "-c", container, "--", "python3", "-c", PROBE,
                        json.dumps([[dst.ip, port] for dst, port, _ in targets]), timeout=180)
        measured += json.loads(out)
        cases += [(src, dst, port, proto) for dst, port, proto in targets]

    namespaces = json.loads(r.kubectl("get", "namespaces", "-o", "json"))["items"]
    ns_labels = {n["metadata"]["name"]: n["metadata"].get("labels", {}) for n in namespaces}
    policies = [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                 "metadata": {"name": p["metadata"]["name"], "namespace": p["metadata"]["namespace"]},
                 "spec": p["spec"]}
                for p in json.loads(r.kubectl("get", "networkpolicies", "-A", "-o", "json"))["items"]]
    port_names = {(dst, port, proto): name for dst in {t[0] for t in targets} for name, port, proto in dst.ports}
    computed = evaluate(policies, cases, ns_labels, port_names, tmp_path)

    table = [f"{'ALLOW' if m else 'deny '} {'ALLOW' if c else 'deny '}  {s.namespace}/{s.app} -> {d.app}:{p}"
             for (s, d, p, _), m, c in zip(cases, measured, computed)]
    print("measured computed  connection\n" + "\n".join(table))
    assert any(measured) and not all(measured), "the matrix must hold allowed and refused connections"
    # A pod reaching its own address is not filtered by kube-router (its chains see the pod's own traffic
    # as the pod's, and Kubernetes does not define a pod's policy on itself); Cyclonus applies the ingress rules.
    # Those cases are measured (they connect) and left out of the comparison.
    own = [s.ip == d.ip for s, d, _, _ in cases]
    assert all(m for m, o in zip(measured, own) if o)
    assert [m for m, o in zip(measured, own) if not o] == [c for c, o in zip(computed, own) if not o], \
        "\n".join(t for t, m, c, o in zip(table, measured, computed, own) if m != c and not o)
