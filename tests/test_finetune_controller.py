"""The FineTune controller's logic without a cluster (reconcile/finetune_store.py, finetune_pass.py, handlers):
keys that never collide with suites', what enqueues a FineTune, and a pass that refuses before writing anything.
The operator context here has a client that is never called (no cache is started): every case below ends before
any request, which is the point (a refused FineTune reads and writes nothing). The applying half runs on the
local control plane: tests/cluster/test_finetune_operator.py."""

from __future__ import annotations

import copy
import json

import pytest
from kubernetes import client

from sovereign_suite.reconcile.context import OperatorContext, Settings
from sovereign_suite.reconcile.finetune_pass import FineTunePass, ended, newest, parse
from sovereign_suite.reconcile.finetune_store import FineTuneKey, finetune_of, suite_of_body
from sovereign_suite.reconcile.handlers import _finetune_trigger
from sovereign_suite.reconcile.kube import Kube
from sovereign_suite.reconcile.problems import SuiteKey

from .finetune_fixtures import ADMIN_NS, FINETUNE, MISTRAL, clouds, suite

STAMP = "2026-12-03T00:00:00Z"


@pytest.fixture()
def ctx():
    c = OperatorContext(Kube(client.ApiClient(client.Configuration())), Settings())
    yield c
    c.shutdown()


def body(**spec) -> dict:
    doc = copy.deepcopy(FINETUNE)
    doc["spec"].update(spec)
    doc["metadata"].update({"uid": "u-1", "generation": 2, "resourceVersion": "7"})
    return doc


def hold(ctx: OperatorContext, s=None, cloud_set=None) -> None:
    s = s or suite(fine_tune_namespaces=[ADMIN_NS])
    doc = json.loads(s.model_dump_json(by_alias=True, exclude_none=True))
    doc["metadata"]["namespace"] = "sovereign-suite"
    ctx.set_suite(SuiteKey("sovereign-suite", s.name), doc)
    for name, cloud in (cloud_set or clouds()).items():
        ctx.clouds.set(name, cloud)


def run(ctx: OperatorContext, doc: dict) -> dict:
    return FineTunePass(ctx, doc, STAMP).run().status


def stalled(status: dict) -> tuple[str, str]:
    c = {c["type"]: c for c in status["conditions"]}["Stalled"]
    assert c["status"] == "True", status
    return c["reason"], c["message"]


def test_a_finetune_key_never_equals_a_suite_key_of_the_same_names() -> None:
    ft, s = FineTuneKey("justice", "summaries"), SuiteKey("justice", "summaries")
    assert ft != s and s != ft and len({ft, s}) == 2  # one queue holds both, each its own entry


def test_the_objects_of_a_finetune_name_it_and_its_body_names_its_suite() -> None:
    labels = {"sovereignsuite.io/finetune": "summaries", "sovereignsuite.io/finetune-namespace": "justice"}
    assert finetune_of({"metadata": {"labels": labels}}) == FineTuneKey("justice", "summaries")
    assert finetune_of({"metadata": {"labels": {"sovereignsuite.io/finetune": "x"}}}) is None
    assert suite_of_body(FINETUNE) == SuiteKey("sovereign-suite", "eu-workplace")
    default_ns = copy.deepcopy(FINETUNE)
    del default_ns["spec"]["suite"]["namespace"]
    assert suite_of_body(default_ns) == SuiteKey(ADMIN_NS, "eu-workplace")


def test_its_jobs_pods_and_suite_enqueue_it_and_nothing_else(ctx: OperatorContext) -> None:
    key = FineTuneKey(ADMIN_NS, "summaries")
    ctx.finetunes.set(key, body())
    ctx.other_changed({"metadata": {"labels": {"sovereignsuite.io/finetune": "summaries",
                                               "sovereignsuite.io/finetune-namespace": ADMIN_NS}}})
    ctx.other_changed({"metadata": {"labels": {"sovereignsuite.io/finetune": "other",
                                               "sovereignsuite.io/finetune-namespace": ADMIN_NS}}})
    assert ctx.queue.get(timeout=2) == key and ctx.queue.get(timeout=0.7) is None
    ctx.queue.done(key)
    ctx.enqueue_finetunes(SuiteKey("sovereign-suite", "eu-workplace"))
    ctx.enqueue_finetunes(SuiteKey("sovereign-suite", "another"))
    assert ctx.queue.get(timeout=1) == key and ctx.queue.get(timeout=0.2) is None


def test_only_a_change_of_spec_deletion_or_finalizers_makes_a_pass() -> None:
    before = body()
    status_only = {**before, "status": {"phase": "Training"}, "metadata": {**before["metadata"], "resourceVersion": "8"}}
    assert _finetune_trigger(before) == _finetune_trigger(status_only)
    for meta in ({"generation": 3}, {"deletionTimestamp": STAMP}, {"finalizers": ["sovereignsuite.io/finetune-cleanup"]}):
        assert _finetune_trigger(before) != _finetune_trigger({**before, "metadata": {**before["metadata"], **meta}})


def test_bad_input_names_the_field() -> None:
    doc = body(dataset={"uri": "https://elsewhere.example/x.jsonl"})
    ft, problems = parse(doc)
    assert ft is None and problems[0].reason == "InvalidSpec" and "spec.dataset.uri" in problems[0].message


@pytest.mark.parametrize("change, reason, field", [
    ({"licence": None}, "LicenceNotOpen", "spec.baseModel"),
    ({"licence": "llama3.1"}, "LicenceNotOpen", "spec.baseModel"),
    ({"uri": "s3://de-bucket/fine-tuning/justice/x.jsonl"}, "DatasetOutsideCountry", "spec.dataset.uri"),
    ({"uri": "s3://fr-suite-data/fine-tuning/other/x.jsonl"}, "DatasetOutsideNamespace", "spec.dataset.uri"),
    ({"suite": "missing"}, "SuiteNotFound", "spec.suite"),
])
def test_a_refused_finetune_is_stalled_naming_the_field_and_nothing_is_read_or_written(
        ctx: OperatorContext, change: dict, reason: str, field: str) -> None:
    model = dict(MISTRAL)
    if "licence" in change:
        model.pop("license")
        if change["licence"]:
            model["license"] = change["licence"]
    hold(ctx, suite(model=model, fine_tune_namespaces=[ADMIN_NS]))
    spec = {}
    if "uri" in change:
        spec["dataset"] = {"uri": change["uri"]}
    if "suite" in change:
        spec["suite"] = {"name": change["suite"], "namespace": "sovereign-suite"}
    status = run(ctx, body(**spec))
    got, message = stalled(status)
    assert (status["phase"], got) == ("Pending", reason) and message.startswith(field), message
    assert "job" not in status and status["observedGeneration"] == 2


def test_an_invalid_or_deleted_suite_is_the_finetunes_spec_suite_problem(ctx: OperatorContext) -> None:
    hold(ctx)
    key = SuiteKey("sovereign-suite", "eu-workplace")
    doc = ctx.suite(key)
    ctx.set_suite(key, {**doc, "spec": {**doc["spec"], "tenants": []}})
    assert stalled(run(ctx, body()))[0] == "SuiteInvalid"
    ctx.set_suite(key, {**doc, "metadata": {**doc["metadata"], "deletionTimestamp": STAMP}})
    reason, message = stalled(run(ctx, body()))
    assert reason == "SuiteNotFound" and "being deleted" in message


def test_a_valid_finetune_waits_for_its_tenant_namespace_without_writing(ctx: OperatorContext) -> None:
    """The FR cloud is the operator's own cluster (the example's): the tenant namespace is not in the cache (none
    started), so the pass waits, Pending and Reconciling, and retried (TenantNamespaceMissing)."""
    hold(ctx)
    result = FineTunePass(ctx, body(), STAMP).run()
    conds = {c["type"]: (c["status"], c["reason"]) for c in result.status["conditions"]}
    assert result.status["phase"] == "Pending" and result.writes == 0
    assert conds["Reconciling"] == ("True", "TenantNamespaceMissing") and conds["Stalled"][0] == "False"


def test_a_jobs_end_and_its_latest_pod() -> None:
    assert not ended(None) and not ended({"status": {"conditions": [{"type": "Complete", "status": "False"}]}})
    assert ended({"status": {"conditions": [{"type": "Failed", "status": "True"}]}})
    pods = [{"metadata": {"name": "a", "creationTimestamp": "2026-12-03T01:00:00Z"}, "status": {"phase": "Failed"}},
            {"metadata": {"name": "b", "creationTimestamp": "2026-12-03T02:00:00Z"}, "status": {"phase": "Succeeded"}},
            {"metadata": {"name": "c", "creationTimestamp": "2026-12-03T00:00:00Z"}, "status": {"phase": "Running"}}]
    assert newest(pods)["metadata"]["name"] == "c"
    assert newest(pods[:2])["metadata"]["name"] == "b" and newest([]) is None


def test_a_pass_sees_the_status_the_operator_wrote_last_until_the_watch_shows_it(ctx: OperatorContext) -> None:
    """Else a suite pass right after a FineTune's status write would not see it promoted (finetune_serving.py)."""
    key = FineTuneKey(ADMIN_NS, "summaries")
    ctx.finetunes.set(key, body())
    mem = ctx.finetunes.memory(key)
    mem.last_status, mem.status_version = {"phase": "Ready"}, "9"
    assert ctx.finetunes.current(key)["status"] == {"phase": "Ready"}
    assert ctx.finetunes.bodies()[0]["status"] == {"phase": "Ready"}
    seen = {**body(), "status": {"phase": "Ready", "seen": True}}
    seen["metadata"]["resourceVersion"] = "9"
    ctx.finetunes.set(key, seen)
    assert ctx.finetunes.current(key)["status"]["seen"] is True


def test_a_suite_deleted_with_delete_waits_for_its_finetunes_and_deletes_nothing_before(ctx: OperatorContext) -> None:
    from sovereign_suite.reconcile.cleanup import WAITING_FOR_FINETUNES, cleanup

    hold(ctx)
    key = SuiteKey("sovereign-suite", suite().name)
    doc = copy.deepcopy(ctx.suite(key))
    doc["spec"]["deletionPolicy"] = "Delete"
    doc["metadata"].update({"uid": "s-1", "generation": 1, "deletionTimestamp": STAMP,
                            "finalizers": ["sovereignsuite.io/cleanup"]})
    ctx.finetunes.set(FineTuneKey(ADMIN_NS, "summaries"), body())
    other = body()
    other["metadata"]["name"] = "elsewhere"
    other["spec"]["suite"]["name"] = "another-suite"
    ctx.finetunes.set(FineTuneKey(ADMIN_NS, "elsewhere"), other)
    result = cleanup(ctx, doc)  # the client reaches no server: any request would raise
    assert not result.complete and [p.reason for p in result.problems] == [WAITING_FOR_FINETUNES]
    assert f"{ADMIN_NS}/summaries" in result.problems[0].message and "elsewhere" not in result.problems[0].message
    conds = {c["type"]: c for c in result.status["conditions"]}
    assert (conds["Ready"]["status"], conds["Ready"]["reason"]) == ("False", "Terminating")
    assert "waiting for the FineTunes that name this suite" in conds["Ready"]["message"]
    assert conds["Degraded"]["reason"] == WAITING_FOR_FINETUNES
    assert result.writes == 0 and result.events[0][1] == WAITING_FOR_FINETUNES
