"""Deleting a FineTune's artifacts (reconcile/finetune_artifacts.py, deletionPolicy Delete): the guard that keeps
the deletion to the FineTune's own adapter prefix, the deletion itself against moto's S3 server (real listing and
deletes: only that prefix goes, the datasets and the other FineTunes' prefixes stay), each failure as a Problem,
and the status that keeps the finalizer. The operator process doing it on the local control plane:
tests/cluster/test_finetune_storage.py."""

from __future__ import annotations

import base64
import copy
import json

import pytest
from kubernetes import client

from sovereign_suite.api.backups import ObjectStorage
from sovereign_suite.api.secret_refs import OPT_IN_LABEL
from sovereign_suite.backup.s3 import Client, Credentials
from sovereign_suite.components import finetune as renderer
from sovereign_suite.reconcile import finetune_artifacts as artifacts
from sovereign_suite.reconcile.context import OperatorContext, Settings
from sovereign_suite.reconcile.finetune_checks import Resolved
from sovereign_suite.reconcile.kube import Kube
from sovereign_suite.reconcile.problems import Severity, SuiteKey, degraded

from .finetune_fixtures import ADMIN_NS, FINETUNE, clouds, suite
from .s3_server import moto_bucket
from .test_backup_program import ACCESS, SECRET

BUCKET, REGION = "fr-suite-data", "eu-west-2"
OWN = f"fine-tuning/{ADMIN_NS}/summaries/adapter/"
STAMP = "2026-12-03T00:00:00Z"


@pytest.mark.parametrize("prefix, why", [
    (f"fine-tuning/{ADMIN_NS}/summaries/", "not FineTune"),  # the parent: where a dataset may lie
    (f"fine-tuning/{ADMIN_NS}/", "not FineTune"),  # the namespace's: every FineTune's and dataset
    ("fine-tuning/", "not FineTune"),
    ("", "does not end"),
    (f"fine-tuning/{ADMIN_NS}/summaries/adapter", "does not end"),  # would match adapter-old/ too
    (f"fine-tuning/{ADMIN_NS}/summaries2/adapter/", "not FineTune"),  # a sibling FineTune
    (f"fine-tuning/{ADMIN_NS}/other/adapter/", "not FineTune"),
    (f"fine-tuning/other-ns/summaries/adapter/", "not FineTune"),  # the same name in another namespace
    (f"fine-tuning/{ADMIN_NS}/summaries/adapter/../", "segment"),
    (f"fine-tuning/{ADMIN_NS}/summaries/adapter/../../", "segment"),
    (f"fine-tuning/{ADMIN_NS}//summaries/adapter/", "segment"),
    (f"fine-tuning/{ADMIN_NS}/summaries/./adapter/", "segment"),
])
def test_only_the_finetunes_own_adapter_prefix_passes_the_guard(prefix: str, why: str) -> None:
    assert artifacts.refusal(OWN, ADMIN_NS, "summaries") is None
    found = artifacts.refusal(prefix, ADMIN_NS, "summaries")
    assert found is not None and why in found


def test_the_prefix_is_where_the_job_tells_the_trainer_to_write() -> None:
    from sovereign_suite.api.finetune_models import FineTune
    from sovereign_suite.reconcile.finetune_checks import check_finetune
    from .finetune_fixtures import suites

    ft = FineTune.model_validate(FINETUNE)
    resolved, problems = check_finetune(ft, suites(), clouds())
    assert problems == [] and isinstance(resolved, Resolved)
    uri = renderer.adapter_uri(ft, resolved)
    args = renderer.trainer_args(ft, resolved)
    assert uri == f"s3://{BUCKET}/{OWN}" == args[args.index("--output") + 1]
    assert artifacts.adapter_prefix(ADMIN_NS, "summaries") == OWN


@pytest.fixture(scope="module")
def s3():
    with moto_bucket(BUCKET, REGION, ACCESS, SECRET) as c:
        yield c


def fill(s3: Client) -> dict[str, bytes]:
    objects = {
        OWN + "adapter_config.json": b'{"r": 16}', OWN + "adapter_model.safetensors": b"weights",
        OWN + "result.json": b"{}", OWN + "checkpoints/step-10/state": b"x",
        f"fine-tuning/{ADMIN_NS}/summaries/train.jsonl": b'{"text": "beside the adapter"}\n',  # its dataset
        OWN + "kept-dataset.jsonl": b'{"text": "a dataset another FineTune reads"}\n',
        f"fine-tuning/{ADMIN_NS}/summaries2/adapter/adapter_model.safetensors": b"sibling",
        f"fine-tuning/{ADMIN_NS}/summaries/adapter-old/adapter_model.safetensors": b"no trailing slash match",
        "fine-tuning/other-ns/summaries/adapter/adapter_model.safetensors": b"another namespace",
        "sovereign-suite/eu-workplace/fr/20261203T020000Z/manifest.json": b"a backup",
    }
    for key, data in objects.items():
        s3.put_bytes(key, data)
    return objects


def keys(s3: Client) -> set[str]:
    return {k for k, _ in s3.list("")}


def test_delete_removes_the_prefix_only_and_keeps_datasets_siblings_and_backups(s3: Client) -> None:
    objects = fill(s3)
    protected = {f"fine-tuning/{ADMIN_NS}/summaries/train.jsonl", OWN + "kept-dataset.jsonl"}
    done = artifacts.delete_prefix(s3, OWN, ADMIN_NS, "summaries", protected)
    gone = {OWN + n for n in ("adapter_config.json", "adapter_model.safetensors", "result.json",
                              "checkpoints/step-10/state")}
    assert set(done.deleted) == gone and done.kept == [OWN + "kept-dataset.jsonl"]
    assert keys(s3) == set(objects) - gone
    assert s3.get(f"fine-tuning/{ADMIN_NS}/summaries2/adapter/adapter_model.safetensors") == b"sibling"
    # again: nothing left to delete, no error (a retry after a partial deletion)
    assert artifacts.delete_prefix(s3, OWN, ADMIN_NS, "summaries", protected).deleted == []


def test_a_refused_prefix_deletes_nothing(s3: Client) -> None:
    fill(s3)
    before = keys(s3)
    with pytest.raises(artifacts.Refused, match="not FineTune"):
        artifacts.delete_prefix(s3, f"fine-tuning/{ADMIN_NS}/", ADMIN_NS, "summaries")
    assert keys(s3) == before


def secret(labelled: bool = True, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "fr-object-storage", "namespace": "sovereign-suite",
                         "labels": {OPT_IN_LABEL: "true"} if labelled else {}},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def storage(s3: Client, bucket: str = BUCKET) -> ObjectStorage:
    return ObjectStorage.model_validate({"endpoint": s3.endpoint, "region": REGION, "bucket": bucket,
                                         "credentialsSecretRef": "fr-object-storage"})


def test_delete_artifacts_reads_the_credentials_from_the_suites_namespace(s3: Client) -> None:
    fill(s3)
    seen = []

    def read(ns: str, name: str) -> dict:
        seen.append((ns, name))
        return secret(AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=SECRET)

    made = []

    def connect(endpoint: str, bucket: str, region: str, creds: Credentials) -> Client:
        made.append((endpoint, bucket, region, creds))
        return Client(endpoint, bucket, region, creds)

    done = artifacts.delete_artifacts(storage(s3), read, "sovereign-suite", ADMIN_NS, "summaries", (), connect)
    assert isinstance(done, artifacts.Deleted) and done.deleted
    assert set(seen) == {("sovereign-suite", "fr-object-storage")}
    assert made == [(s3.endpoint, BUCKET, REGION, Credentials(ACCESS, SECRET))]
    assert not [k for k in keys(s3) if k.startswith(OWN)]


@pytest.mark.parametrize("found, reason", [
    (None, "MissingSecret"),
    (secret(False, AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=SECRET), "SecretNotReferenceable"),
    (secret(AWS_ACCESS_KEY_ID=ACCESS), "MissingSecret"),
])
def test_credentials_that_cannot_be_read_are_a_stalled_problem_and_nothing_is_deleted(s3: Client, found, reason
                                                                                       ) -> None:
    fill(s3)
    before = keys(s3)
    got = artifacts.delete_artifacts(storage(s3), lambda ns, name: found, "sovereign-suite", ADMIN_NS, "summaries",
                                     ())
    assert got.reason == reason and got.severity is Severity.STALLED
    assert "objectStorage.credentialsSecretRef" in got.message and keys(s3) == before


def test_a_storage_error_is_a_retried_problem_with_the_servers_words(s3: Client) -> None:
    read = lambda ns, name: secret(AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=SECRET)  # noqa: E731
    got = artifacts.delete_artifacts(storage(s3, "no-such-bucket"), read, "sovereign-suite", ADMIN_NS,
                                     "summaries", ())
    assert got.reason == artifacts.FAILED and got.severity is Severity.DEGRADED
    assert "HTTP 404" in got.message and "NoSuchBucket" in got.message and OWN in got.message
    # a server that does not answer
    closed = ObjectStorage.model_validate({"endpoint": "http://127.0.0.1:9", "region": REGION, "bucket": BUCKET,
                                           "credentialsSecretRef": "fr-object-storage"})
    got = artifacts.delete_artifacts(closed, read, "sovereign-suite", ADMIN_NS, "summaries", ())
    assert got.reason == artifacts.FAILED and "could not be deleted" in got.message


def test_the_datasets_of_every_known_finetune_in_the_bucket_are_protected() -> None:
    other = copy.deepcopy(FINETUNE)
    other["spec"]["dataset"]["uri"] = f"s3://{BUCKET}/{OWN}kept-dataset.jsonl"
    elsewhere = copy.deepcopy(FINETUNE)
    elsewhere["spec"]["dataset"]["uri"] = "s3://de-suite-data/fine-tuning/x/a.jsonl"
    assert artifacts.dataset_keys([FINETUNE, other, elsewhere, {"spec": {}}], BUCKET) == {
        f"fine-tuning/{ADMIN_NS}/summaries.jsonl", OWN + "kept-dataset.jsonl"}


def test_a_deletion_that_waits_says_why_and_keeps_the_runs_results() -> None:
    old = {"observedGeneration": 1, "phase": "Ready", "servedName": "justice-summaries", "evalLoss": 1.4,
           "conditions": [{"type": "Ready", "status": "True", "reason": "Served", "message": "",
                           "lastTransitionTime": "2026-12-01T00:00:00Z"}]}
    st = artifacts.deletion_status(old, degraded(artifacts.FAILED, "HTTP 503: SlowDown"), 1, STAMP)
    c = {x["type"]: x for x in st["conditions"]}
    assert (c["Ready"]["status"], c["Ready"]["reason"], c["Ready"]["message"]) == ("False", artifacts.FAILED,
                                                                                  "HTTP 503: SlowDown")
    assert c["Reconciling"]["status"] == "True" and c["Stalled"]["status"] == "False"
    assert c["Ready"]["lastTransitionTime"] == STAMP and st["evalLoss"] == 1.4 and "servedName" not in st
    st = artifacts.deletion_status(old, artifacts.unknown_storage("SovereignSuite x/y is gone"), 1, STAMP)
    c = {x["type"]: x for x in st["conditions"]}
    assert c["Stalled"]["status"] == "True" and c["Stalled"]["reason"] == artifacts.UNKNOWN
    assert "deletionPolicy to Retain" in c["Stalled"]["message"]


@pytest.fixture()
def ctx():
    c = OperatorContext(Kube(client.ApiClient(client.Configuration())), Settings())
    yield c
    c.shutdown()


def deleting() -> dict:
    doc = copy.deepcopy(FINETUNE)
    doc["spec"]["deletionPolicy"] = "Delete"
    doc["metadata"].update({"uid": "u-1", "generation": 1, "resourceVersion": "7",
                            "deletionTimestamp": "2026-12-03T00:00:00Z"})
    return doc


def test_without_its_suite_or_storage_the_operator_cannot_tell_where_and_says_so(ctx: OperatorContext) -> None:
    got = artifacts.delete_for(ctx, deleting())  # no suite held: which cloud, which bucket?
    assert got.reason == artifacts.UNKNOWN and got.severity is Severity.STALLED and "is gone" in got.message
    s = suite(fine_tune_namespaces=[ADMIN_NS])
    doc = json.loads(s.model_dump_json(by_alias=True, exclude_none=True))
    doc["metadata"]["namespace"] = "sovereign-suite"
    ctx.set_suite(SuiteKey("sovereign-suite", s.name), doc)
    for name, cloud in clouds(storage=None).items():
        ctx.clouds.set(name, cloud)
    got = artifacts.delete_for(ctx, deleting())
    assert got.reason == artifacts.UNKNOWN and "declares no objectStorage" in got.message


class _Reads:
    """The two reads credentials_problem makes: the referenceable-Secret cache, then one GET to say why."""

    def __init__(self, cached: dict | None, got: dict | None | Exception):
        self.cached, self.got, self.gets = cached, got, 0

    def referenced_secret(self, ns: str, name: str) -> dict | None:
        return self.cached

    def get(self, api_version: str, kind: str, name: str, ns: str) -> dict | None:
        self.gets += 1
        if isinstance(self.got, Exception):
            raise self.got
        return self.got


def _ctx(reads: _Reads):
    """Just what OperatorContext.read_secret reads (its own code, bound to these two readers)."""
    from types import MethodType, SimpleNamespace

    ctx = SimpleNamespace(cache=reads, kube=reads)
    ctx.read_secret = MethodType(OperatorContext.read_secret, ctx)
    return ctx


def test_the_training_pod_s_credentials_are_checked_where_the_suite_keeps_them() -> None:
    from sovereign_suite.reconcile.kube import ApiError

    cloud = clouds()["fr-secnumcloud"]
    field = "NationalCloud/fr-secnumcloud.spec.objectStorage.credentialsSecretRef"
    ok = _Reads(secret(AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=SECRET), None)
    assert artifacts.credentials_problem(_ctx(ok), "sovereign-suite", cloud) is None and ok.gets == 0
    got = artifacts.credentials_problem(_ctx(_Reads(None, None)), "sovereign-suite", cloud)
    assert (got.reason, got.severity) == ("MissingSecret", Severity.STALLED) and field in got.message
    unshared = _Reads(None, secret(False, AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=SECRET))
    got = artifacts.credentials_problem(_ctx(unshared), "sovereign-suite", cloud)
    assert got.reason == "SecretNotReferenceable" and field in got.message
    got = artifacts.credentials_problem(_ctx(_Reads(secret(AWS_ACCESS_KEY_ID=ACCESS), None)), "sovereign-suite",
                                        cloud)
    assert got.reason == "MissingSecret" and "AWS_SECRET_ACCESS_KEY" in got.message
    denied = _Reads(None, ApiError(403, "Forbidden", "secrets is forbidden", "Secret sovereign-suite/x"))
    got = artifacts.credentials_problem(_ctx(denied), "sovereign-suite", cloud)
    assert got.reason == "Forbidden" and got.severity is Severity.DEGRADED
