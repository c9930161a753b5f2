"""cert-manager on the local control plane (issue 14): its real CRDs (v1.21.2, from its Go module through the module
proxy: hack/fetch-test-crds.sh), a NationalCloud with spec.certManager.issuerRef, the operator as a real process.

cert-manager's controllers do not run here (nothing would answer an ACME challenge); what ingress-shim would do
with each Ingress is done by this test, transcribed from cert-manager v1.21.2 pkg/controller/certificate-shim/
sync.go: ``issuerForIngressLike`` reads the issuer from the annotations (and refuses cluster-issuer beside
issuer-kind or issuer-group, or issuer beside cluster-issuer), ``buildCertificates`` makes one Certificate per tls
entry, named after and stored in its secretName, for its hosts, with ``DefaultKeyUsages`` (digital signature, key
encipherment). Each such Certificate is then sent to the API server (server-side dry-run, strict field
validation), which checks it against the real CRD schema, CEL rules included.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config

from sovereign_suite.api.models import NationalCloud
from sovereign_suite.reconcile.kube import ApiError, Kube
from sovereign_suite.render import render_suite

from sovereign_suite.api.validation import parse_suite
from sovereign_suite.devcluster.cluster import dev_clouds

from ..helpers import ROOT, example_dict, load_example
from .conftest import wait_crds, wait_for
from .operator_fixture import SUITES, create_referenced_secrets, suite_doc, wait_ready
from .test_render_dryrun import dry_run_apply
from .test_reconcile_core import delete_suite, kubectl

CM = "cert-manager.io/"
ISSUER = "sovereign-test-selfsigned"
USER_NOTES = {"nginx.ingress.kubernetes.io/limit-rps": "20", "example.eu/owner": "team \"chat\"\n"}


@pytest.fixture(scope="module")
def cert_manager_crds(cluster, kube):
    script = str(ROOT / "hack" / "fetch-test-crds.sh")
    subprocess.run([script], check=True)
    crds = Path(subprocess.run([script, "--print", "cert-manager"], check=True, capture_output=True,
                               text=True).stdout.strip())
    wait_crds(kube, crds, established=False)
    try:
        kubectl(cluster, "apply", "--server-side", "-f", str(crds))
        wait_crds(kube, crds)
        yield crds
    finally:  # not awaited: no later module reads them, and the removal of cert-manager's CRDs can take minutes
        kubectl(cluster, "delete", "--ignore-not-found", "--wait=false", "-f", str(crds))


@pytest.fixture(scope="module")
def cm_kube(cluster, cert_manager_crds) -> Kube:
    """A client created after the CRDs: its discovery sees cert-manager.io/v1."""
    return Kube(config.new_client_from_config(config_file=str(cluster.kubeconfig)), user_agent="sovereign-suite-tests")


def issuer_of(annotations: dict[str, str]) -> tuple[str, str, str]:
    """cert-manager v1.21.2 certificate-shim/sync.go ``issuerForIngressLike``, without defaults (none configured)."""
    name = kind = group = ""
    errors = []
    if CM + "issuer" in annotations:
        name, kind = annotations[CM + "issuer"], "Issuer"
    if CM + "cluster-issuer" in annotations:
        name, kind = annotations[CM + "cluster-issuer"], "ClusterIssuer"
    kind = annotations.get(CM + "issuer-kind", kind)
    group = annotations.get(CM + "issuer-group", group)
    if not name:
        errors.append("failed to determine issuer name to be used for ingress resource")
    if CM + "issuer" in annotations and CM + "cluster-issuer" in annotations:
        errors.append("both issuer and cluster-issuer")
    if CM + "cluster-issuer" in annotations and ({CM + "issuer-group", CM + "issuer-kind"} & set(annotations)):
        errors.append("cluster-issuer with issuer-kind or issuer-group")
    assert not errors, errors
    return name, kind, group


def certificates(ingress: dict[str, Any]) -> list[dict[str, Any]]:
    """The Certificates ingress-shim would create for ``ingress`` (``buildCertificates``)."""
    name, kind, group = issuer_of(ingress["metadata"].get("annotations", {}))
    ref = {"name": name, "kind": kind, **({"group": group} if group else {})}
    return [{"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
             "metadata": {"name": tls["secretName"], "namespace": ingress["metadata"]["namespace"]},
             "spec": {"dnsNames": tls["hosts"], "secretName": tls["secretName"], "issuerRef": ref,
                      "usages": ["digital signature", "key encipherment"]}}
            for tls in ingress["spec"]["tls"]]


def cloud_with(ref: dict[str, Any], name: str) -> dict[str, Any]:
    doc = dev_clouds()["fr-secnumcloud"].wire()  # as the dev cluster holds it: it admits the test's namespace
    doc["metadata"] = {"name": name}
    doc["spec"]["certManager"] = {"issuerRef": ref}
    return doc


def test_the_operator_annotates_every_ingress_and_each_certificate_fits_the_real_crd(operator, cm_kube, core,
                                                                                     namespace):
    kube = cm_kube
    kube.apply({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": ISSUER},
                "spec": {"selfSigned": {}}}, "sovereign-suite-tests")  # accepted by the real schema: a real issuer
    cloud = cloud_with({"name": ISSUER}, f"fr-cm-{uuid.uuid4().hex[:5]}")
    kube.create(cloud)
    create_referenced_secrets(core, namespace)
    doc = suite_doc("two-countries", namespace, patch={
        "deletionPolicy": "Delete", "components": {"matrix": {"ingressAnnotations": USER_NOTES}}})
    doc["spec"]["tenants"] = [{"country": "FR", "cloud": cloud["metadata"]["name"]}]
    fr = f"{doc['metadata']['name']}-fr"
    try:
        kube.create(doc)
        wait_ready(kube, doc)
        ingresses = kube.list("networking.k8s.io/v1", "Ingress", namespace=fr)
        assert {"synapse", "element-web", "matrix-well-known", "jitsi-web", "docs"} <= \
            {i["metadata"]["name"] for i in ingresses}
        checked = 0
        for ing in ingresses:
            notes = ing["metadata"]["annotations"]
            assert notes[CM + "cluster-issuer"] == ISSUER, ing["metadata"]["name"]
            matrix = ing["metadata"]["labels"]["sovereignsuite.io/component"] == "matrix"
            assert all((notes.get(k) == v) is matrix for k, v in USER_NOTES.items()), ing["metadata"]["name"]
            for cert in certificates(ing):
                assert cert["spec"]["issuerRef"] == {"name": ISSUER, "kind": "ClusterIssuer"}
                assert cert["spec"]["secretName"] == cert["spec"]["dnsNames"][0] + "-tls"
                dry_run_apply(kube, cert)
                checked += 1
        assert checked == len(ingresses)
    finally:
        delete_suite(kube, doc)
        wait_for(lambda: kube.get(*SUITES, doc["metadata"]["name"], namespace) is None, timeout=60,
                 what="suite deleted")
        kube.delete(cloud)
        kube.delete({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": ISSUER}})


@pytest.mark.parametrize("ref", [{"name": "tenant-ca", "kind": "Issuer"},
                                 {"name": "pca", "kind": "ClusterIssuer", "group": "awspca.cert-manager.io"}])
def test_other_issuer_shapes_give_certificates_the_crd_accepts(cm_kube, ref):
    """Rendered offline (no operator): the namespaced and the external issuer, every Ingress of the four
    countries, each Certificate dry-run in its tenant namespace."""
    doc = example_dict("four-countries")
    doc["metadata"]["name"] = f"cm{uuid.uuid4().hex[:5]}"  # namespaces of its own (test_render_dryrun has the example's)
    suite, (_, clouds) = parse_suite(doc), load_example("four-countries")
    clouds = {n: NationalCloud.model_validate({**c.wire(), "spec": {**c.wire()["spec"],
                                                                     "certManager": {"issuerRef": ref}}})
              for n, c in clouds.items()}
    objs = render_suite(suite, clouds).manifests
    namespaces = [o for o in objs if o["kind"] == "Namespace"]
    for ns in namespaces:
        cm_kube.apply(ns, "sovereign-suite-tests")
    try:
        certs = [c for o in objs if o["kind"] == "Ingress" for c in certificates(o)]
        assert len(certs) >= 4 * 4
        for cert in certs:
            assert cert["spec"]["issuerRef"] == ref
            dry_run_apply(cm_kube, cert)
    finally:
        for ns in namespaces:
            cm_kube.delete(ns)


def test_the_crd_refuses_a_certificate_ingress_shim_could_not_use(cm_kube, namespace):
    """The control: without this the dry-runs above could pass against a schema that checks nothing."""
    bad = {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "x", "namespace": namespace},
           "spec": {"dnsNames": ["x.example.eu"], "secretName": "x-tls", "issuerRef": {"kind": "ClusterIssuer"}}}
    with pytest.raises(ApiError) as err:
        dry_run_apply(cm_kube, bad)
    assert err.value.status == 422 and "issuerRef.name" in str(err.value)


def test_the_api_server_refuses_the_ingress_class_annotation_the_suite_refuses(cm_kube, namespace):
    """Why kubernetes.io/ingress.class is refused in ingressAnnotations (api/ingress_annotations.py): beside
    spec.ingressClassName the API server takes only the same value (kubernetes v1.37.2 ValidateIngressCreate)."""
    ing = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": "x", "namespace": namespace, "annotations": {"kubernetes.io/ingress.class": "other"}},
           "spec": {"ingressClassName": "nginx", "defaultBackend": {"service": {"name": "x", "port": {"number": 80}}}}}
    with pytest.raises(ApiError) as err:
        dry_run_apply(cm_kube, ing)
    assert "must match `ingressClassName` when both are specified" in str(err.value)
