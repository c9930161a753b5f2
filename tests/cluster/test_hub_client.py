"""The hub client in a pod, against the real API server (reconcile/credentials.py, apiclient.py): the ServiceAccount
folder as the kubelet mounts it (token, ca.crt) and the service host and port a pod gets, the token rotated in
place. A 401 makes the next request read the token file again at once (client-go's tokenSourceTransport), not
after the minute's re-read. About 5 s on the session's cluster."""

from __future__ import annotations

import uuid

import pytest

from sovereign_suite.reconcile.apiclient import ApiClient
from sovereign_suite.reconcile.credentials import in_cluster, kubeconfig_client
from sovereign_suite.reconcile.kube import ApiError, Kube
from sovereign_suite.reconcile.transport import client_configuration

from .test_install import kubectl


def test_a_pods_service_account_with_a_rotated_token(cluster, kube, namespace, tmp_path):
    name = f"hub-{uuid.uuid4().hex[:5]}"
    kube.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}})
    admin = kubeconfig_client(str(cluster.kubeconfig)).configuration
    (tmp_path / "ca.crt").write_bytes(open(admin.ssl_ca_cert, "rb").read())
    (tmp_path / "token").write_text("not-a-token-yet")  # what a stale token gets: 401
    host, port = admin.host.removeprefix("https://").rsplit(":", 1)
    cfg = client_configuration()
    assert in_cluster(cfg, str(tmp_path), {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port})
    hub = Kube(ApiClient(cfg), max_retries=0)
    with pytest.raises(ApiError) as err:
        hub.request("GET", "/version", what="version")
    assert err.value.status == 401
    token = kubectl(cluster, "-n", namespace, "create", "token", name, "--duration=10m").strip()
    (tmp_path / "token").write_text(token + "\n")  # the kubelet's rotation, within the minute
    assert hub.request("GET", "/version", what="version")["major"]  # read again after the 401, over verified TLS
    who = hub.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                      body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert who["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:{name}"
