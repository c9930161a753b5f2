"""The Kubernetes objects of a Synapse worker topology: valid, one StatefulSet per type with stable instance names,
HPAs only where the type may grow, Redis and the router, the Ingress through the router, and network policies
that let only the tenant's Synapse processes reach Redis and only the federation senders out."""

from __future__ import annotations

import pytest

from sovereign_suite.api.matrix_workers import PRESETS
from sovereign_suite.components import matrix, tenancy
from sovereign_suite.components.base import build_contexts
from sovereign_suite.components.matrix import workers as synapse_workers

from ..helpers import load_example, suite_with
from .test_matrix import validate


def _render(workers, example="four-countries"):
    suite = suite_with(example, {"components": {"matrix": {"workers": workers}}})
    ctx = build_contexts(suite, load_example(example)[1])[0]
    return ctx, matrix.render(ctx)


def _by(objs, kind):
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


@pytest.mark.parametrize("size", ["small", "large", "national"])
def test_every_object_is_valid_and_each_type_has_its_statefulset(size):
    ctx, objs = _render({"size": size, "autoscaling": {"enabled": True}})
    for obj in objs:
        validate(obj)
    sts = _by(objs, "StatefulSet")
    for key, count in PRESETS[size].items():
        kind = synapse_workers.BY_KEY[key]
        if not count:
            assert kind.statefulset not in sts
            continue
        s = sts[kind.statefulset]
        assert s["spec"]["serviceName"] == kind.statefulset  # the headless Service: pod DNS names
        assert _by(objs, "Service")[kind.statefulset]["spec"]["clusterIP"] == "None"
        labels = s["spec"]["template"]["metadata"]["labels"]
        assert labels[synapse_workers.WORKER_LABEL] == kind.name
        assert labels["app.kubernetes.io/name"] == "synapse-worker"
        hpa = _by(objs, "HorizontalPodAutoscaler").get(kind.statefulset)
        if kind.autoscaled:
            assert "replicas" not in s["spec"]  # the HPA owns it
            assert hpa["spec"]["minReplicas"] == count and hpa["spec"]["maxReplicas"] == 3 * count
            assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
        else:
            assert s["spec"]["replicas"] == count and hpa is None
        pod = s["spec"]["template"]["spec"]
        init = {c["name"]: c for c in pod["initContainers"]}
        assert init["worker-config"]["command"][-1] == kind.statefulset
        assert init["worker-config"]["env"][0]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert pod["containers"][0]["command"][:3] == ["python3", "-m", "synapse.app.generic_worker"]
        pdb = _by(objs, "PodDisruptionBudget").get(kind.statefulset)
        assert (pdb is not None) is (count > 1 or kind.autoscaled)
        mounts = {m["name"] for m in pod["containers"][0]["volumeMounts"]}
        assert ("media" in mounts) is (key == "media_repository")


def test_instance_map_names_the_statefulset_pods():
    ctx, objs = _render({"size": "small", "eventPersister": 2})
    config = matrix.homeserver_config(ctx)
    assert config["instance_map"]["synapse-event-persister-1"] == {
        "host": f"synapse-event-persister-1.synapse-event-persister.{ctx.namespace}.svc.cluster.local", "port": 9093}
    assert config["instance_map"]["main"]["host"] == f"synapse.{ctx.namespace}.svc.cluster.local"
    ports = {p["name"]: p["port"] for p in _by(objs, "Service")["synapse"]["spec"]["ports"]}
    assert ports["replication"] == 9093


def test_main_gives_the_media_store_to_the_media_worker_and_the_ingress_goes_through_the_router():
    ctx, objs = _render({"size": "small"})
    main = _by(objs, "Deployment")["synapse"]["spec"]["template"]["spec"]
    media = next(v for v in main["volumes"] if v["name"] == "media")
    assert "emptyDir" in media  # the ReadWriteOnce PVC is the media worker's
    backends = {p["backend"]["service"]["name"] for r in _by(objs, "Ingress")["synapse"]["spec"]["rules"]
                for p in r["http"]["paths"]}
    assert backends == {"synapse-router"}
    assert _by(objs, "Deployment")["synapse-router"]["spec"]["replicas"] == 2
    assert _by(objs, "PodDisruptionBudget")["synapse-router"]["spec"]["maxUnavailable"] == 1


def test_a_config_change_rolls_every_process():
    def hashes(objs):
        return {o["metadata"]["name"]: o["spec"]["template"]["metadata"]["annotations"]["sovereignsuite.io/config-hash"]
                for o in objs if o["kind"] in ("StatefulSet", "Deployment")
                and o["metadata"]["name"].startswith("synapse")
                and o["metadata"]["name"] not in ("synapse-redis", "synapse-router")}
    _, two = _render({"size": "small", "eventPersister": 2})
    _, three = _render({"size": "small", "eventPersister": 3})
    h2, h3 = hashes(two), hashes(three)
    assert "synapse" in h2 and len(h2) == 10  # main and the nine worker types of the small preset
    assert h2.keys() == h3.keys() and all(h2[k] != h3[k] for k in h2)  # every Synapse process restarts


def test_monolith_renders_no_worker_object():
    _, objs = _render({})
    assert not [o for o in objs if "worker" in o["metadata"]["name"] or o["metadata"]["name"].startswith(
        ("synapse-redis", "synapse-router"))]


def test_workers_secrets_and_network_policies():
    ctx, _ = _render({"size": "small"})
    keys = matrix.secrets(ctx)[0].keys
    assert {"worker_replication_secret", "redis_password"} <= set(keys)
    policies = {p["metadata"]["name"]: p["spec"] for p in tenancy.network.render(ctx)}
    redis = policies["allow-to-synapse-redis"]["ingress"]
    assert len(redis) == 1 and redis[0]["ports"] == [{"protocol": "TCP", "port": 6379}]
    assert redis[0]["from"][0]["podSelector"]["matchExpressions"][0]["values"] == ["synapse", "synapse-worker"]
    senders = {"matchLabels": {"app.kubernetes.io/name": "synapse-worker",
                               synapse_workers.WORKER_LABEL: "federation-sender"}}
    assert policies["allow-egress-public-hosts-synapse"]["podSelector"] == senders
    # the ingress controller reaches the router only, not Synapse's processes
    assert policies["allow-to-synapse"]["ingress"][0]["from"][0]["podSelector"]
    assert all("namespaceSelector" not in f for r in policies["allow-to-synapse-worker"]["ingress"] for f in r["from"])


def test_every_worker_verifies_the_database_with_the_tenants_ca():
    """The workers share main's database settings (sslmode verify-full, sslrootcert in the shared homeserver.yaml:
    tests/components/test_synapse_config.py connects with them to a real PostgreSQL): each worker pod mounts the
    same CA volume at the same path as main, or libpq could not verify the server and the worker would not start."""
    ctx, objs = _render({"size": "small"})
    main = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "synapse")
    main_pod = main["spec"]["template"]["spec"]
    [ca] = [v for v in main_pod["volumes"] if v["name"] == "database-ca"]
    [mount] = [m for m in main_pod["containers"][0]["volumeMounts"] if m["name"] == "database-ca"]
    statefulsets = [o for name, o in _by(objs, "StatefulSet").items() if name.startswith("synapse-")]
    assert statefulsets
    for sts in statefulsets:
        pod = sts["spec"]["template"]["spec"]
        assert ca in pod["volumes"], sts["metadata"]["name"]
        assert mount in pod["containers"][0]["volumeMounts"], sts["metadata"]["name"]


def _homeserver(workers, extra=None):
    patch = {"components": {"matrix": {"workers": workers, **({"extraConfig": extra} if extra else {})}}}
    suite = suite_with("four-countries", patch)
    return matrix.homeserver_config(build_contexts(suite, load_example("four-countries")[1])[0])


def test_federation_senders_shorten_the_first_backoff_of_a_destination():
    """With federation senders every process's federation request goes through them, and one made while none
    listens backs the destination off (workers.DESTINATION_MIN_RETRY_INTERVAL says why): 30 s instead of
    Synapse's 10 minutes. extraConfig's own ``federation`` keys win one by one; a monolith keeps Synapse's
    defaults."""
    assert _homeserver({"federationSender": 1})["federation"] == {"destination_min_retry_interval": "30s"}
    assert _homeserver({"federationSender": 1}, {"federation": {"destination_min_retry_interval": "2m",
                                                                 "client_timeout": "30s"}})["federation"] == {
        "destination_min_retry_interval": "2m", "client_timeout": "30s"}
    assert _homeserver({"federationSender": 1}, {"federation": {"client_timeout": "30s"}})["federation"] == {
        "destination_min_retry_interval": "30s", "client_timeout": "30s"}
    assert "federation" not in _homeserver({})
    assert "federation" not in _homeserver({"sync": 2})  # no sender: main sends, nothing goes through a proxy
