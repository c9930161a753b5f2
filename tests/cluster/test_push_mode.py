"""Push mode on real local control planes: the session's cluster is the hub, and France's and Germany's national
clouds are member clusters of their own (``cluster up --countries FR`` / ``DE``), joined with
``sovereign-suite cloud join``. One operator runs on the hub. Faults are real: a member whose kube-apiserver
process is stopped (SIGTERM) and started again, a token revoked, a permission removed from the member's
ClusterRole."""

from __future__ import annotations

import base64
import json
import os
import time
import uuid

import pytest
import yaml
from kubernetes import config

from sovereign_suite.devcluster.cluster import Cluster
from sovereign_suite.members import join, names
from sovereign_suite.reconcile.kube import Kube

from .conftest import wait_for
from .operator_fixture import (OperatorProcess, condition, create_referenced_secrets, get_suite, suite_doc,
                               wait_ready)
from .test_cloud_join import cli

SUITES = ("sovereignsuite.io/v1alpha1", "SovereignSuite")
GENERATED = "sovereignsuite.io/generated=true"


def _up(country: str) -> Cluster:
    c = Cluster(f"{country.lower()}-member-{os.getpid()}")
    c.up(progress=lambda m: print(f"[{country}] {m}"), countries=[country])
    return c


@pytest.fixture(scope="module")
def members():
    made: dict[str, Cluster] = {}
    try:
        for country in ("FR", "DE"):
            made[country] = _up(country)
        yield made
    finally:
        for c in made.values():
            c.down()


def member_kube(c: Cluster) -> Kube:
    return Kube(config.new_client_from_config(config_file=str(c.kubeconfig)), user_agent="sovereign-suite-tests")


@pytest.fixture(scope="module")
def clouds(cluster, members, kube):
    """Hub NationalClouds for the two members (copies of the hub's own FR and DE clouds, which other test modules
    use locally), each joined to its member cluster; left again afterwards."""
    suffix = uuid.uuid4().hex[:4]
    names = {"FR": f"fr-push-{suffix}", "DE": f"de-push-{suffix}"}
    for country, source in (("FR", "fr-secnumcloud"), ("DE", "de-c5")):
        spec = kube.get(*join.CLOUDS, source)["spec"]
        kube.create({"apiVersion": join.CLOUDS[0], "kind": "NationalCloud", "metadata": {"name": names[country]},
                     "spec": spec})
        done = cli("cloud", "join", names[country], "--member-kubeconfig", str(members[country].kubeconfig),
                   kubeconfig=cluster.kubeconfig)
        assert done.returncode == 0, done.stderr
    yield names
    for country, name in names.items():
        if members[country].exists():
            cli("cloud", "leave", name, "--member-kubeconfig", str(members[country].kubeconfig),
                kubeconfig=cluster.kubeconfig)
        kube.delete({"apiVersion": join.CLOUDS[0], "kind": "NationalCloud", "metadata": {"name": name}})


@pytest.fixture(scope="module")
def hub_operator(cluster):
    op = OperatorProcess(cluster, drift_interval=30.0, tag="push-operator")
    op.start()
    yield op
    op.stop()


def two_country_suite(namespace: str, clouds: dict[str, str], policy: str = "Delete") -> dict:
    doc = suite_doc("two-countries", namespace, patch={"deletionPolicy": policy, "components": {"docs": {
        "enabled": False}}})
    doc["spec"]["tenants"] = [{"country": "FR", "cloud": clouds["FR"]}, {"country": "DE", "cloud": clouds["DE"]}]
    return doc


def ready(kube, doc: dict, timeout: float) -> dict:
    """wait_ready, saying the suite's last status when it times out."""
    try:
        return wait_ready(kube, doc, timeout=timeout)
    except AssertionError as err:
        status = (get_suite(kube, doc) or {}).get("status")
        raise AssertionError(f"{err}; last status: {json.dumps(status)[:4000]}") from None


def tenant(suite: dict, country: str) -> dict:
    return next(t for t in suite["status"]["tenants"] if t["country"] == country)


def generated_values(k: Kube, ns: str) -> set[str]:
    """Every value of the operator's generated Secrets in a tenant namespace (decoded), long enough to be unique."""
    out = set()
    for s in k.list("v1", "Secret", GENERATED, ns):
        for v in (s.get("data") or {}).values():
            text = base64.b64decode(v).decode(errors="replace")
            if len(text) >= 16:
                out.add(text)
    return out


def everything(k: Kube) -> str:
    """Every Secret, ConfigMap, Event and SovereignSuite of a cluster, as one text (Secrets decoded)."""
    parts = []
    for s in k.list("v1", "Secret"):
        parts += [base64.b64decode(v).decode(errors="replace") for v in (s.get("data") or {}).values()]
    for kind in ("ConfigMap", "Event"):
        parts += [json.dumps(o) for o in k.list("v1", kind)]
    if k.kind(*SUITES) is not None:
        parts += [json.dumps(o) for o in k.list(*SUITES)]
    return "\n".join(parts)


def crash_loop(k: Kube, namespace: str, deployment: str) -> str:
    """Make the Deployment's pod crash-loop as the kubelet reports it: its container waiting in CrashLoopBackOff,
    its last termination an exit 1 whose message is the tail of its log (terminationMessagePolicy
    FallbackToLogsOnError), the pod not ready. The kwok nodes run no container, so the test writes the pod's
    status as the kubelet would (kwok's pod-ready stage only acts on Pending pods: it leaves this one alone).
    Returns the pieces of that log text unique to this call: a user ID and a room ID (in a line of SQL with a
    client address, like Synapse's log)."""
    tag = uuid.uuid4().hex[:8]
    user, room = f"@alice-{tag}:example.org", f"!room-{tag}:example.org"
    log_tail = (f"synapse.storage.txn - 812 - ERROR - SELECT room_id FROM local_current_membership WHERE user_id = "
                f"'{user}' AND room_id = '{room}' (client 203.0.113.7)")
    selector = k.get("apps/v1", "Deployment", deployment, namespace)["spec"]["selector"]["matchLabels"]
    pods = k.list("v1", "Pod", ",".join(f"{a}={b}" for a, b in selector.items()), namespace)
    assert pods, f"no pod of {namespace}/{deployment}"
    pod = pods[0]
    now = pod["status"].get("startTime")
    statuses = [{"name": c["name"], "image": c["image"], "imageID": "", "ready": False, "started": False,
                 "restartCount": 3,
                 "state": {"waiting": {"reason": "CrashLoopBackOff",
                                       "message": f"back-off 40s restarting failed container={c['name']} "
                                                  f"pod={pod['metadata']['name']}_{namespace}"}},
                 "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": log_tail,
                                              "startedAt": now, "finishedAt": now}}}
                for c in pod["spec"]["containers"]]
    conditions = [dict(c, status="False", reason="ContainersNotReady") if c["type"] in ("Ready", "ContainersReady")
                  else c for c in pod["status"].get("conditions") or []]
    k.merge_patch("v1", "Pod", pod["metadata"]["name"], namespace,
                  {"status": {"containerStatuses": statuses, "conditions": conditions}}, sub="status")
    return [user, room]


def test_push_applies_each_tenant_in_its_own_cluster_and_no_secret_leaves_it(members, clouds, hub_operator, kube,
                                                                              core, namespace):
    create_referenced_secrets(core, namespace)
    doc = two_country_suite(namespace, clouds)
    kube.create(doc)
    suite = ready(kube, doc, 240)
    name = doc["metadata"]["name"]
    fr, de = member_kube(members["FR"]), member_kube(members["DE"])
    assert fr.get("v1", "Namespace", f"{name}-fr") and fr.get("apps/v1", "Deployment", "synapse", f"{name}-fr")
    assert de.get("v1", "Namespace", f"{name}-de") and de.get("apps/v1", "Deployment", "synapse", f"{name}-de")
    # each tenant only in its own country's cluster, nothing of either on the hub
    assert fr.get("v1", "Namespace", f"{name}-de") is None and de.get("v1", "Namespace", f"{name}-fr") is None
    assert kube.get("v1", "Namespace", f"{name}-fr") is None and kube.get("v1", "Namespace", f"{name}-de") is None
    assert (tenant(suite, "FR")["cluster"], tenant(suite, "FR")["clusterReachable"]) == (clouds["FR"], True)
    assert (tenant(suite, "DE")["cluster"], tenant(suite, "DE")["clusterReachable"]) == (clouds["DE"], True)
    assert suite["status"]["readySummary"] == "2/2"
    assert hub_operator.metric("sovereign_suite_member_cluster_up", cloud=clouds["DE"]) == 1

    # sovereignty: a generated value of one country is nowhere else (other member, hub objects, status, Events,
    # the operator's log, its metrics)
    fr_values, de_values = generated_values(fr, f"{name}-fr"), generated_values(de, f"{name}-de")
    assert fr_values and de_values  # Synapse's signing key, database passwords ...
    hub_text = everything(kube)
    log_text = hub_operator.log_path.read_text(errors="replace")
    metrics_text = hub_operator.metrics_text()
    assert "sovereign_suite_member_cluster_up" in metrics_text
    for values, elsewhere in ((fr_values, everything(de)), (de_values, everything(fr))):
        for v in values:
            assert v not in elsewhere and v not in hub_text and v not in log_text and v not in metrics_text

    # a container's log stays in its country: France's Synapse crash-loops with a log tail as its termination
    # message; the hub's status, conditions and Events say CrashLoopBackOff and the exit code, never the log text
    markers = crash_loop(fr, f"{name}-fr", "synapse")

    def reported():
        s = get_suite(kube, doc)
        matrix = next((c for c in tenant(s, "FR")["components"] if c["name"] == "matrix"), {})
        events = [e for e in kube.list("v1", "Event", namespace=namespace)
                  if e["involvedObject"].get("name") == name and "CrashLoopBackOff" in e.get("message", "")]
        return (s, matrix, events) if matrix.get("reason") == "CrashLoopBackOff" and events else None

    suite, matrix, events = wait_for(reported, timeout=120, what="France's CrashLoopBackOff reported on the hub")
    assert "last exit 1 (Error)" in matrix["message"] and "last exit 1 (Error)" in events[0]["message"]
    assert "CrashLoopBackOff" in condition(suite, "Ready")["message"]
    hub_text, log_text = everything(kube), hub_operator.log_path.read_text(errors="replace")
    for text in (hub_text, json.dumps(suite), log_text, hub_operator.metrics_text()):
        assert not [m for m in markers if m in text]
    # the member keeps the detail (its pod's own status, read with the member's credentials)
    crashed = [p for p in fr.list("v1", "Pod", namespace=f"{name}-fr") if markers[0] in json.dumps(p)]
    assert crashed
    for pod in crashed:  # a new pod: Synapse runs again
        fr.delete(pod)
    ready(kube, doc, 120)

    # a spec change reaches both members
    kube.merge_patch(*SUITES, name, namespace, {"metadata": {"labels": {"touched": "yes"}},
                                                "spec": {"components": {"jitsi": {"enabled": False}}}})
    wait_for(lambda: fr.get("apps/v1", "Deployment", "jvb", f"{name}-fr") is None
             and de.get("apps/v1", "Deployment", "jvb", f"{name}-de") is None, timeout=120, what="jitsi pruned")
    ready(kube, doc, 120)


def test_a_member_that_stops_answering_degrades_only_its_tenant_and_deletion_waits_for_it(
        members, clouds, hub_operator, kube, core, namespace):
    create_referenced_secrets(core, namespace)
    doc = two_country_suite(namespace, clouds)
    doc["spec"]["components"]["jitsi"] = {"enabled": False}
    kube.create(doc)
    name = doc["metadata"]["name"]
    fr, de = member_kube(members["FR"]), member_kube(members["DE"])
    # mid-convergence: Germany's cluster goes away as soon as its generated Secrets are there
    wait_for(lambda: de.list("v1", "Secret", GENERATED, f"{name}-de"), timeout=120, what="Germany's Secrets")
    before = {(o["kind"], o["metadata"]["name"]): (o["metadata"]["uid"], o.get("data"))
              for kind in ("Secret", "ConfigMap", "Service") for o in de.list("v1", kind, namespace=f"{name}-de")}
    members["DE"].stop_component("kube-apiserver")
    try:
        def degraded():
            s = get_suite(kube, doc)
            c = condition(s, "Degraded")
            return s if c and c["status"] == "True" and c["reason"] == "ClusterUnreachable" \
                and tenant(s, "FR")["ready"] else None

        suite = wait_for(degraded, timeout=180, what="Degraded ClusterUnreachable, France ready")
        assert clouds["DE"] in condition(suite, "Degraded")["message"]
        assert tenant(suite, "DE")["clusterReachable"] is False and tenant(suite, "DE")["ready"] is False
        assert condition(suite, "Ready")["status"] == "False"  # never a stale Ready
        wait_for(lambda: hub_operator.metric("sovereign_suite_member_cluster_up", cloud=clouds["DE"]) == 0,
                 timeout=30, what="member_cluster_up 0")
        # France keeps converging while Germany is away: a federation setting reaches France's Synapse
        kube.merge_patch(*SUITES, name, namespace, {"spec": {"components": {"matrix": {"federation": {
            "extraDomains": ["example.org"]}}}}})
        wait_for(lambda: "example.org" in json.dumps(fr.get("v1", "ConfigMap", "synapse", f"{name}-fr")),
                 timeout=120, what="France's Synapse configuration changed while Germany is unreachable")
    finally:
        members["DE"].start_component("kube-apiserver")
    ready(kube, doc, 180)  # no restart of the operator: its watches found the member again
    assert "example.org" in json.dumps(de.get("v1", "ConfigMap", "synapse", f"{name}-de"))
    assert hub_operator.proc.poll() is None
    # no duplicate: what Germany held before the outage is the same object (same UID), generated values unchanged
    for (kind, obj_name), (uid, data) in before.items():
        now = de.get("v1", kind, obj_name, f"{name}-de")
        assert now and now["metadata"]["uid"] == uid, (kind, obj_name)
        if kind == "Secret":
            assert now.get("data") == data, obj_name

    # deleting the suite while Germany is away: France is cleaned, the finalizer waits for Germany
    members["DE"].stop_component("kube-apiserver")
    try:
        wait_for(lambda: hub_operator.metric("sovereign_suite_member_cluster_up", cloud=clouds["DE"]) == 0,
                 timeout=60, what="member_cluster_up 0")
        kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
        wait_for(lambda: fr.get("v1", "Namespace", f"{name}-fr") is None, timeout=120, what="France cleaned")

        def waiting():
            s = get_suite(kube, doc)
            c = condition(s, "Ready")
            return s if s and c and clouds["DE"] in c["message"] else None

        suite = wait_for(waiting, timeout=60, what="deletion waits for Germany")
        assert "sovereignsuite.io/cleanup" in suite["metadata"]["finalizers"]
    finally:
        members["DE"].start_component("kube-apiserver")
    wait_for(lambda: get_suite(kube, doc) is None, timeout=120, what="suite deleted after Germany answered")
    try:
        wait_for(lambda: de.get("v1", "Namespace", f"{name}-de") is None, timeout=120, what="Germany cleaned")
    except AssertionError as err:
        left = de.get("v1", "Namespace", f"{name}-de")
        raise AssertionError(f"{err}; namespace: {json.dumps(left)[:3000]}; events: "
                             f"{[e['message'] for e in kube.list('v1', 'Event', namespace=namespace)][-10:]}") from None


def test_rotated_and_weakened_member_credentials(members, clouds, hub_operator, kube, core, namespace, cluster):
    create_referenced_secrets(core, namespace)
    doc = two_country_suite(namespace, clouds)
    doc["spec"]["components"]["jitsi"] = {"enabled": False}
    kube.create(doc)
    ready(kube, doc, 240)
    name = doc["metadata"]["name"]
    de = member_kube(members["DE"])
    ref = kube.get(*join.CLOUDS, clouds["DE"])["spec"]["kubeconfigSecretRef"]

    # rotation: a new token for the same ServiceAccount replaces the kubeconfig on the hub, the old one is revoked
    fresh = f"{names.token_secret(clouds['DE'])}-{uuid.uuid4().hex[:4]}"
    de.create({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
               "metadata": {"name": fresh, "namespace": names.MEMBER_NAMESPACE,
                            "annotations": {"kubernetes.io/service-account.name": names.service_account(
                                clouds["DE"])}}})
    token = wait_for(lambda: (de.get("v1", "Secret", fresh, names.MEMBER_NAMESPACE).get("data") or {}).get("token"),
                     timeout=30, what="new token")
    old = kube.get("v1", "Secret", ref["name"], ref["namespace"])
    cfg = yaml.safe_load(base64.b64decode(old["data"]["kubeconfig"]))
    cfg["users"][0]["user"]["token"] = base64.b64decode(token).decode()
    kube.merge_patch("v1", "Secret", ref["name"], ref["namespace"], {"data": {
        "kubeconfig": base64.b64encode(yaml.safe_dump(cfg).encode()).decode()}})
    de.delete({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": names.token_secret(clouds["DE"]),
                                                                  "namespace": names.MEMBER_NAMESPACE}})
    kube.merge_patch(*SUITES, name, namespace, {"spec": {"components": {"matrix": {"enabled": False}}}})
    wait_for(lambda: de.get("apps/v1", "Deployment", "synapse", f"{name}-de") is None, timeout=120,
             what="the rotated credentials are used")
    ready(kube, doc, 120)
    assert hub_operator.proc.poll() is None  # no restart

    # weak credentials: the member's role loses Services; the suite says so, naming the member
    role_name = names.cluster_role(clouds["DE"])
    role = de.get("rbac.authorization.k8s.io/v1", "ClusterRole", role_name)
    weakened = [dict(r, resources=[x for x in r["resources"] if x != "services"])
                if r.get("apiGroups") == [""] and "services" in r.get("resources", []) and "create" in r["verbs"]
                else r for r in role["rules"]]
    assert weakened != role["rules"]
    de.merge_patch("rbac.authorization.k8s.io/v1", "ClusterRole", role_name, None, {"rules": weakened})
    try:
        def forbidden():
            c = condition(get_suite(kube, doc), "Degraded")
            return c if c and c["status"] == "True" and c["reason"] in ("ClusterForbidden", "Forbidden") else None

        kube.merge_patch(*SUITES, name, namespace, {"spec": {"components": {"matrix": {"enabled": True}}}})
        c = wait_for(forbidden, timeout=120, what="Degraded Forbidden naming the member")
        assert clouds["DE"] in c["message"] and "forbidden" in c["message"].lower()
    finally:
        de.merge_patch("rbac.authorization.k8s.io/v1", "ClusterRole", role_name, None,
                       {"rules": role["rules"]})
    ready(kube, doc, 180)
    kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
    wait_for(lambda: get_suite(kube, doc) is None, timeout=120, what="suite deleted")


def test_gpu_placement_reads_the_members_own_nodes(members, clouds, hub_operator, kube, core, namespace):
    """France's H100 nodes are cordoned in France's member only (the hub's simulated French nodes stay free): the
    model goes to the A100s, as the member's nodes say."""
    fr = member_kube(members["FR"])
    product = "nvidia.com/gpu.product"
    h100 = [n["metadata"]["name"] for n in fr.list("v1", "Node", f"{product}=NVIDIA-H100-80GB-HBM3")]
    assert h100 and kube.list("v1", "Node", f"{product}=NVIDIA-H100-80GB-HBM3")
    for n in h100:
        fr.merge_patch("v1", "Node", n, None, {"spec": {"unschedulable": True}})
    try:
        create_referenced_secrets(core, namespace)
        doc = two_country_suite(namespace, clouds)
        doc["spec"]["tenants"] = [{"country": "FR", "cloud": clouds["FR"]}]
        doc["spec"]["components"].update(jitsi={"enabled": False}, llm={
            "enabled": True, "huggingFaceTokenSecretRef": {"name": "hf-token", "key": "token"},
            "models": [{"name": "llama-70b", "modelId": "meta-llama/Llama-3.3-70B-Instruct",
                        "parametersBillion": 70.6, "kvCacheMiBPer1kTokens": 320, "gpusPerReplica": 2,
                        "maxModelLen": 8192,
                        "gpuProducts": ["NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB"]}]})
        kube.create(doc)

        def placed():
            models = (((get_suite(kube, doc) or {}).get("status") or {}).get("tenants") or [{}])[0].get("models")
            return models[0] if models and models[0].get("product") else None

        model = wait_for(placed, timeout=120, what="the model placed")
        assert model["product"] == "NVIDIA-A100-SXM4-80GB"
        kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
        wait_for(lambda: get_suite(kube, doc) is None, timeout=120, what="suite deleted")
    finally:
        for n in h100:
            fr.merge_patch("v1", "Node", n, None, {"spec": {"unschedulable": False}})


def test_a_cloud_whose_credentials_come_to_reach_another_member_is_refused_as_a_move(
        members, clouds, hub_operator, kube, core, namespace):
    """FR's kubeconfig Secret on the hub is overwritten with DE's (the hub's credentials of the other member): the
    cloud's name is the same, the cluster behind it is not. The status remembers the identity of the cluster the
    tenant was applied to (its kube-system namespace's uid), so the pass refuses it as a move: Stalled
    TenantMoveRefused, and nothing of the French tenant is created in the German cluster. With FR's credentials
    back, the suite is Ready again."""
    create_referenced_secrets(core, namespace)
    doc = two_country_suite(namespace, clouds, policy="Retain")
    doc["spec"]["tenants"] = doc["spec"]["tenants"][:1]  # FR only
    doc["spec"]["components"]["jitsi"] = {"enabled": False}
    name, fr_ns = doc["metadata"]["name"], f"{doc['metadata']['name']}-fr"
    fr, de = member_kube(members["FR"]), member_kube(members["DE"])
    fr_uid = fr.get("v1", "Namespace", "kube-system")["metadata"]["uid"]
    de_uid = de.get("v1", "Namespace", "kube-system")["metadata"]["uid"]
    ref = kube.get(*join.CLOUDS, clouds["FR"])["spec"]["kubeconfigSecretRef"]
    de_ref = kube.get(*join.CLOUDS, clouds["DE"])["spec"]["kubeconfigSecretRef"]
    fr_secret = kube.get("v1", "Secret", ref["name"], ref["namespace"])["data"]
    kube.create(doc)
    try:
        suite = ready(kube, doc, 180)
        assert (tenant(suite, "FR")["cluster"], tenant(suite, "FR")["clusterUID"]) == (clouds["FR"], fr_uid)

        de_secret = kube.get("v1", "Secret", de_ref["name"], de_ref["namespace"])["data"]
        kube.merge_patch("v1", "Secret", ref["name"], ref["namespace"],
                         {"data": {ref["key"]: de_secret[de_ref["key"]]}})

        def refused():
            c = condition(get_suite(kube, doc), "Stalled")
            return c if c and c["status"] == "True" and c["reason"] == "TenantMoveRefused" else None

        c = wait_for(refused, timeout=90, what="Stalled TenantMoveRefused")
        assert f"kube-system namespace uid {de_uid}" in c["message"] and f"({fr_uid})" in c["message"], c
        time.sleep(5)  # more passes: still nothing of the French tenant in the German cluster
        assert de.get("v1", "Namespace", fr_ns) is None
        assert fr.get("v1", "Namespace", fr_ns) is not None  # where its data is, untouched
        assert tenant(get_suite(kube, doc), "FR")["clusterUID"] == fr_uid

        kube.merge_patch("v1", "Secret", ref["name"], ref["namespace"], {"data": fr_secret})
        suite = ready(kube, doc, 180)
        assert tenant(suite, "FR")["clusterUID"] == fr_uid and condition(suite, "Stalled")["status"] == "False"
    finally:
        kube.merge_patch("v1", "Secret", ref["name"], ref["namespace"], {"data": fr_secret})
        kube.merge_patch(*SUITES, name, namespace, {"spec": {"deletionPolicy": "Delete"}})
        kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
        wait_for(lambda: get_suite(kube, doc) is None, timeout=120, what="suite deleted")
