"""From FineTunes to the adapters a tenant serves, and back (reconcile/finetune_serving.py): which FineTunes are
served, under which name, and when the FineTune counts as served. Pure, no cluster; the cluster test is
tests/cluster/test_finetune_operator.py."""

from __future__ import annotations

import copy
import json

from sovereign_suite.components.llm.adapters import ServedAdapter
from sovereign_suite.reconcile.finetune_serving import is_served, promoted, served_adapters, served_name
from sovereign_suite.render import render_suite

from .finetune_fixtures import ADMIN_NS, FINETUNE, MISTRAL, clouds, suite

URI = f"s3://fr-suite-data/fine-tuning/{ADMIN_NS}/summaries/adapter/"


def body(reason: str = "Promoting", generation: int = 2, observed: int = 2, name: str = "summaries", **spec) -> dict:
    doc = copy.deepcopy(FINETUNE)
    doc["metadata"].update({"name": name, "generation": generation})
    doc["spec"].update(spec)
    doc["status"] = {"observedGeneration": observed, "phase": "Evaluating" if reason == "Promoting" else "Ready",
                     "adapterUri": URI.replace("summaries", name),
                     "conditions": [{"type": "Ready", "status": "True" if reason == "Served" else "False",
                                     "reason": reason}]}
    return doc


def with_namespace():
    s = suite(fine_tune_namespaces=[ADMIN_NS])
    return s.model_copy(update={"metadata": s.metadata.model_copy(update={"namespace": "sovereign-suite"})})


def test_a_promoted_finetune_of_the_suite_is_served_in_its_tenant_under_its_namespaced_name() -> None:
    s = with_namespace()
    served = served_adapters(s, clouds(), [body(), body("Served", name="letters")])
    assert served == {"FR": [
        ServedAdapter(f"{ADMIN_NS}-letters", "mistral-small", URI.replace("summaries", "letters"), 16, ("greffe-app",)),
        ServedAdapter(f"{ADMIN_NS}-summaries", "mistral-small", URI, 16, ("greffe-app",))]}
    # the render takes it: the vLLM flags and a gateway route of that name
    result = render_suite(s, clouds(), adapters=served)
    text = json.dumps(result.manifests)
    assert "--enable-lora" in text and f"{ADMIN_NS}-summaries" in text


def test_not_served_unless_promoted_for_its_current_generation_with_consumers_and_not_deleted() -> None:
    s = with_namespace()
    deleting = body()
    deleting["metadata"]["deletionTimestamp"] = "2026-12-03T00:00:00Z"
    other_suite = body(suite={"name": "another", "namespace": "sovereign-suite"})
    for b in (body("NotPromoted"), body("Training"), body(generation=3), body(consumers=[]), deleting, other_suite):
        assert served_adapters(s, clouds(), [b]) == {}, b
    assert promoted(body()) and promoted(body("Served")) and not promoted(body(observed=1))


def test_a_name_taken_by_a_base_model_is_left_unserved_rather_than_breaking_the_suite() -> None:
    s = suite(model={**MISTRAL, "servedName": f"{ADMIN_NS}-summaries"}, fine_tune_namespaces=[ADMIN_NS])
    s = s.model_copy(update={"metadata": s.metadata.model_copy(update={"namespace": "sovereign-suite"})})
    assert served_adapters(s, clouds(), [body()]) == {}
    assert served_adapters(with_namespace(), clouds(storage=None), [body()]) == {}  # the cloud lost its storage


def test_a_long_namespace_and_name_are_shortened_to_a_dns_label() -> None:
    ns, name = "a" * 60, "summaries"
    short = served_name(ns, name)
    assert len(short) <= 63 and short.startswith("summaries-") and short != served_name("b" * 60, name)
    assert served_name("justice", "summaries") == "justice-summaries"


def test_served_once_the_tenants_adapters_configmap_lists_it_with_its_uri() -> None:
    from sovereign_suite.api.models import LLMModel

    model = LLMModel.model_validate(MISTRAL)
    config = {"adapters": [{"name": "justice-summaries", "uri": URI, "rank": 16, "version": "x"}]}
    store = {("ConfigMap", "vllm-mistral-small-adapters", "t"): {"data": {"config.json": json.dumps(config)}}}

    def get(api_version, kind, name, namespace):
        return store.get((kind, name, namespace))

    assert is_served(get, "t", model, "justice-summaries", URI)
    assert not is_served(get, "t", model, "justice-summaries", URI + "v2/")  # an older run's adapter
    assert not is_served(get, "t", model, "justice-letters", URI)
    assert not is_served(get, "other", model, "justice-summaries", URI)
