"""A FineTune's storage side with the operator process on the local control plane, the country's object storage
being moto's S3 server on this machine (the operator runs as a host process and reaches it on loopback):

- the suite's backups are off, and the tenant's namespace still gets the copy of the cloud's objectStorage
  credentials Secret that the training Job mounts, while a FineTune of that tenant exists (pruned after);
- deleting a FineTune with ``deletionPolicy: Delete`` deletes every object under its adapter prefix and nothing
  else (its dataset, a dataset beside the adapter, another FineTune's prefix stay); ``Retain`` keeps its objects;
- a deletion that cannot read the storage credentials keeps the finalizer and says why in the FineTune's
  conditions, and completes once the Secret is fixed.

A cloud and a suite of this module's own (tests/cluster/test_finetune_operator.py's pattern), kwok GPU nodes."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
import yaml

from sovereign_suite.api.secret_refs import OPT_IN_LABEL
from sovereign_suite.components import finetune as renderer
from sovereign_suite.reconcile.kube import Kube

from ..finetune_fixtures import MISTRAL
from ..helpers import CLOUDS
from ..s3_server import moto_bucket
from .conftest import wait_for
from .test_finetune_job import chart_priority_class
from .test_finetune_operator import (ADAPTERS_CM, FT, SUITE, conditions, finetune, job_name, pods_of,
                                     remove_setup, status_of, write_result)

BUCKET, REGION, CREDS = "fr-suite-data", "eu-west-2", "fr-object-storage"
ACCESS, SECRET = "AKIDFINETUNETEST", "finetune-test-secret-key"


@pytest.fixture(scope="module")
def s3():
    with moto_bucket(BUCKET, REGION, ACCESS, SECRET) as client:
        yield client


def credentials(ns: str, labelled: bool = True) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": CREDS, "namespace": ns, "labels": {OPT_IN_LABEL: "true" if labelled else "no"}},
            "data": {"AWS_ACCESS_KEY_ID": base64.b64encode(ACCESS.encode()).decode(),
                     "AWS_SECRET_ACCESS_KEY": base64.b64encode(SECRET.encode()).decode()}}


@pytest.fixture(scope="module")
def setup(kube: Kube, operator, s3):
    """A NationalCloud whose objectStorage is the moto server, its credentials Secret (referenceable) in the
    suite's namespace, a suite with backups off whose FR tenant serves an open model (no replica)."""
    tag = uuid.uuid4().hex[:6]
    suite_ns, admin_ns, name, cloud = f"t-ftst-{tag}", f"t-ftsta-{tag}", f"fts{tag}", f"fr-fts-{tag}"
    for ns in (suite_ns, admin_ns):
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    kube.create(credentials(suite_ns))
    if kube.get("scheduling.k8s.io/v1", "PriorityClass", renderer.PRIORITY_CLASS) is None:
        kube.create(chart_priority_class())
    doc = next(d for d in yaml.safe_load_all(CLOUDS.read_text()) if d and d["metadata"]["name"] == "fr-secnumcloud")
    doc["metadata"] = {"name": cloud}
    doc["spec"]["suiteNamespaces"] = [suite_ns]
    doc["spec"]["objectStorage"] = {"endpoint": s3.endpoint, "region": REGION, "bucket": BUCKET,
                                    "credentialsSecretRef": CREDS}
    port = int(s3.endpoint.rsplit(":", 1)[1])
    doc["spec"]["network"]["egress"]["objectStorage"] = [{"cidrs": ["127.0.0.1/32"], "ports": [{"port": port}]}]
    kube.create(doc)
    suite = {"apiVersion": SUITE[0], "kind": SUITE[1], "metadata": {"name": name, "namespace": suite_ns},
             "spec": {"domain": "fts.example.eu", "deletionPolicy": "Delete",
                      "tenants": [{"country": "FR", "cloud": cloud, "fineTuneNamespaces": [admin_ns]}],
                      "components": {"matrix": {"enabled": False}, "jitsi": {"enabled": False},
                                     "docs": {"enabled": False},
                                     "llm": {"enabled": True, "models": [{**MISTRAL, "replicas": 0}]}}}}
    kube.create(suite)
    tenant = f"{name}-fr"
    wait_for(lambda: kube.get("v1", "Namespace", tenant), timeout=120, what=f"the tenant namespace {tenant}")
    yield {"suite": name, "suite_ns": suite_ns, "admin": admin_ns, "tenant": tenant, "cloud": cloud}
    remove_setup(kube, suite, admin_ns, cloud)


def adapter(setup: dict, name: str) -> str:
    return f"fine-tuning/{setup['admin']}/{name}/adapter/"


def upload(s3, setup: dict, name: str) -> dict[str, bytes]:
    """What a run writes (the adapter, its result), its dataset, and a dataset beside the adapter."""
    base = f"fine-tuning/{setup['admin']}/{name}"
    objects = {f"{base}/adapter/adapter_config.json": b'{"r": 16}',
               f"{base}/adapter/adapter_model.safetensors": f"weights of {name}".encode(),
               f"{base}/adapter/result.json": b"{}",
               f"{base}.jsonl": b'{"text": "its dataset"}\n',
               f"{base}/more-data.jsonl": b'{"text": "a dataset beside the adapter"}\n'}
    for key, data in objects.items():
        s3.put_bytes(key, data)
    return objects


def keys(s3) -> set[str]:
    return {k for k, _ in s3.list("fine-tuning/")}


def start(kube: Kube, setup: dict, name: str, policy: str) -> dict:
    doc = finetune(setup, name, deletionPolicy=policy)
    kube.create(doc)
    wait_for(lambda: kube.get("batch/v1", "Job", job_name(doc), setup["tenant"]), timeout=90,
             what=f"the training Job of {name}")
    return doc


def gone(kube: Kube, setup: dict, name: str) -> None:
    wait_for(lambda: kube.get(*FT, name, setup["admin"]) is None, timeout=90, what=f"FineTune {name} gone")


def test_backups_off_the_tenant_gets_the_storage_credentials_while_it_fine_tunes(kube: Kube, setup) -> None:
    ns = setup["tenant"]
    assert kube.get("v1", "Secret", CREDS, ns) is None  # backups off, no FineTune: no copy
    doc = start(kube, setup, "creds", "Retain")
    copy_ = wait_for(lambda: kube.get("v1", "Secret", CREDS, ns), timeout=60, what="the credentials' copy")
    assert copy_["data"] == credentials(setup["suite_ns"])["data"]
    job = kube.get("batch/v1", "Job", job_name(doc), ns)
    mounted = {v["secret"]["secretName"] for v in job["spec"]["template"]["spec"]["volumes"] if "secret" in v}
    assert mounted == {CREDS}  # what the training pod mounts is what was copied
    kube.delete(doc)
    gone(kube, setup, "creds")
    wait_for(lambda: kube.get("v1", "Secret", CREDS, ns) is None, timeout=60,
             what="the copy pruned once no FineTune of the tenant is left")


def served(kube: Kube, setup: dict) -> list[str]:
    cm = kube.get("v1", "ConfigMap", ADAPTERS_CM, setup["tenant"])
    return [a["name"] for a in json.loads(cm["data"]["config.json"])["adapters"]] if cm else []


def test_delete_removes_only_its_adapter_prefix_and_retain_keeps_its_objects(kube: Kube, setup, s3) -> None:
    deleted, kept = start(kube, setup, "deleted", "Delete"), start(kube, setup, "kept", "Retain")
    objects = {**upload(s3, setup, "deleted"), **upload(s3, setup, "kept")}
    assert set(objects) <= keys(s3)
    # "deleted" is promoted and served first: its adapter is unloaded before its objects go
    (pod,) = wait_for(lambda: pods_of(kube, setup["tenant"], job_name(deleted)), timeout=60, what="its pod")
    write_result(kube, pod, {"phase": "Succeeded", "step": 100, "totalSteps": 100, "baseEvalLoss": 2.0,
                             "evalLoss": 1.4, "adapterUri": f"s3://{BUCKET}/{adapter(setup, 'deleted')}"})
    wait_for(lambda: status_of(kube, deleted).get("phase") == "Ready", timeout=90, what="served (Ready)")
    assert served(kube, setup) == [f"{setup['admin']}-deleted"]
    kube.delete(deleted)
    gone(kube, setup, "deleted")
    assert served(kube, setup) == []
    assert kube.get("batch/v1", "Job", job_name(deleted), setup["tenant"]) is None
    left = keys(s3)
    assert not [k for k in left if k.startswith(adapter(setup, "deleted"))]
    assert {k for k in objects if not k.startswith(adapter(setup, "deleted"))} <= left  # datasets, the other
    assert s3.get(adapter(setup, "kept") + "adapter_model.safetensors") == b"weights of kept"
    kube.delete(kept)
    gone(kube, setup, "kept")
    assert {k for k in objects if not k.startswith(adapter(setup, "deleted"))} <= keys(s3)  # Retain


def test_a_deletion_that_cannot_read_the_credentials_waits_and_says_why(kube: Kube, setup, s3) -> None:
    doc = start(kube, setup, "blocked", "Delete")
    upload(s3, setup, "blocked")
    ns = setup["suite_ns"]
    kube.merge_patch("v1", "Secret", CREDS, ns, {"metadata": {"labels": {OPT_IN_LABEL: "no"}}})
    try:
        # a new FineTune is refused (its pod could not mount the credentials), and its suite is not stopped
        refused = finetune(setup, "nocreds")
        kube.create(refused)
        st = wait_for(lambda: (s := status_of(kube, refused)).get("phase") and s, timeout=60, what="a status")
        assert (st["phase"], *conditions(st)["Stalled"][:2]) == ("Pending", "True", "SecretNotReferenceable")
        assert kube.get("batch/v1", "Job", job_name(refused), setup["tenant"]) is None
        suite = kube.get(*SUITE, setup["suite"], ns)
        assert conditions(suite["status"])["Stalled"][0] == "False"
        kube.delete(refused)
        gone(kube, setup, "nocreds")
        kube.delete(doc)
        st = wait_for(lambda: (s := status_of(kube, doc)) and conditions(s).get("Stalled", ("",))[0] == "True"
                      and s, timeout=90, what="the deletion's reason in the conditions")
        stalled = conditions(st)["Stalled"]
        assert stalled[1] == "SecretNotReferenceable" and "objectStorage.credentialsSecretRef" in stalled[2]
        assert conditions(st)["Ready"][:2] == ("False", "SecretNotReferenceable")
        live = kube.get(*FT, "blocked", setup["admin"])
        assert live is not None and "sovereignsuite.io/finetune-cleanup" in live["metadata"]["finalizers"]
        assert [k for k in keys(s3) if k.startswith(adapter(setup, "blocked"))]  # nothing deleted
    finally:
        kube.merge_patch("v1", "Secret", CREDS, ns, {"metadata": {"labels": {OPT_IN_LABEL: "true"}}})
    gone(kube, setup, "blocked")  # retried: the Secret fixed, the artifacts deleted, the finalizer removed
    assert not [k for k in keys(s3) if k.startswith(adapter(setup, "blocked"))]
    assert f"fine-tuning/{setup['admin']}/blocked.jsonl" in keys(s3)


def test_a_suite_deleted_with_delete_waits_for_its_finetunes_then_goes_with_its_namespace(kube: Kube, setup,
                                                                                         s3) -> None:
    """Last of the module: it deletes the module's suite."""
    doc = start(kube, setup, "last", "Delete")
    upload(s3, setup, "last")
    ns, tenant = setup["suite_ns"], setup["tenant"]
    kube.delete({"apiVersion": SUITE[0], "kind": SUITE[1], "metadata": {"name": setup["suite"], "namespace": ns}})

    def waiting() -> dict | None:
        live = kube.get(*SUITE, setup["suite"], ns) or {}
        ready = next((c for c in (live.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), {})
        return live if "waiting for the FineTunes" in ready.get("message", "") else None

    live = wait_for(waiting, timeout=60, what="the suite's deletion waiting for its FineTunes")
    assert f"{setup['admin']}/last" in next(c for c in live["status"]["conditions"] if c["type"] == "Ready")["message"]
    # nothing of the suite deleted meanwhile: the tenant namespace, its serving, the training Job are there
    tenant_ns = kube.get("v1", "Namespace", tenant)
    assert tenant_ns is not None and not tenant_ns["metadata"].get("deletionTimestamp")
    assert kube.get("batch/v1", "Job", job_name(doc), tenant) is not None
    assert kube.get("apps/v1", "Deployment", "vllm-mistral-small", tenant) is not None
    wait_for(lambda: conditions(status_of(kube, doc)).get("Stalled", ("",))[1] == "SuiteNotFound", timeout=60,
             what="the FineTune saying its suite is being deleted")
    kube.delete(doc)
    gone(kube, setup, "last")
    assert not [k for k in keys(s3) if k.startswith(adapter(setup, "last"))]  # deleted with the suite's storage
    assert f"fine-tuning/{setup['admin']}/last.jsonl" in keys(s3)
    wait_for(lambda: kube.get(*SUITE, setup["suite"], ns) is None, timeout=90, what="the suite gone")
    wait_for(lambda: (n := kube.get("v1", "Namespace", tenant)) is None or n["metadata"].get("deletionTimestamp"),
             timeout=60, what="the tenant namespace deleted with the suite")
