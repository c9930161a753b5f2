"""A FineTune (or a suite) known to the operator but gone from the API before it got the finalizer (listed at start, deleted
before Kopf's watch listed: no event will say it went) is forgotten by its first pass; one that only changed
meanwhile is kept (its event brings it back). Without this, its suite's deletion would wait for it forever
(``WaitingForFineTunes``). In-process operator context against the real API server."""

from __future__ import annotations

import copy
import uuid

from sovereign_suite.reconcile import finetune_worker, worker
from sovereign_suite.reconcile.context import OperatorContext, Settings
from sovereign_suite.reconcile.finetune_store import FineTuneKey
from sovereign_suite.reconcile.problems import SuiteKey

from ..finetune_fixtures import FINETUNE
from .operator_fixture import suite_doc


def test_a_finetune_gone_before_its_finalizer_is_forgotten_and_a_changed_one_kept(kube, namespace) -> None:
    ctx = OperatorContext(kube, Settings(namespaces=()))
    gone = copy.deepcopy(FINETUNE)
    gone["metadata"] = {"name": "gone", "namespace": namespace, "uid": str(uuid.uuid4()), "resourceVersion": "1",
                        "generation": 1}
    changed = copy.deepcopy(FINETUNE)
    changed["metadata"] = {"name": "changed", "namespace": namespace}
    live = kube.create(changed)
    stale = copy.deepcopy(live)
    stale["metadata"]["resourceVersion"] = "1"  # an older version than the API server's: the patch conflicts (409)
    for body in (gone, stale):
        ctx.finetunes.set(FineTuneKey(namespace, body["metadata"]["name"]), body)
    try:
        finetune_worker.process(ctx, FineTuneKey(namespace, "gone"))
        finetune_worker.process(ctx, FineTuneKey(namespace, "changed"))
        assert ctx.finetunes.get(FineTuneKey(namespace, "gone")) is None
        assert ctx.finetunes.get(FineTuneKey(namespace, "changed")) is stale
        assert kube.get(*finetune_worker.FINETUNES, "changed", namespace)["metadata"].get("finalizers") is None
    finally:
        ctx.shutdown()


def test_a_suite_gone_before_its_finalizer_is_forgotten(kube, namespace) -> None:
    ctx = OperatorContext(kube, Settings(namespaces=()))
    key = SuiteKey(namespace, "gone")
    ctx.set_suite(key, {**suite_doc("two-countries", namespace, name="gone"),
                        "metadata": {"name": "gone", "namespace": namespace, "uid": str(uuid.uuid4()),
                                     "resourceVersion": "1", "generation": 1}})
    try:
        worker.process(ctx, key)
        assert ctx.suite(key) is None and key not in ctx.suite_keys()
        assert kube.list("v1", "Namespace", label_selector="sovereignsuite.io/suite=gone") == []  # nothing applied
    finally:
        ctx.shutdown()
