"""The FineTune API (api/finetune_models.py), the model licence field and the open-licence list (api/licences.py),
and the generated CRD: pure, no cluster."""

from __future__ import annotations

import copy

import pytest
from pydantic import ValidationError

from sovereign_suite.api import crdgen
from sovereign_suite.api.finetune_models import FineTune, Promotion, promoted, split_s3_uri
from sovereign_suite.api.licences import OPEN_LICENCES, is_open, why_not_open
from sovereign_suite.api.lora_rules import MAX_LORA_RANK_VALUES
from sovereign_suite.api.models import LLMModel
from sovereign_suite.api.validation import problems_from

from .finetune_fixtures import FINETUNE, MISTRAL, finetune


def errors(patch: dict) -> dict[str, str]:
    doc = copy.deepcopy(FINETUNE)
    doc["spec"].update(patch)
    with pytest.raises(ValidationError) as err:
        FineTune.model_validate(doc)
    return {p.path: p.message for p in problems_from(err.value)}


def test_defaults_and_wire_names() -> None:
    ft = FineTune.model_validate({**FINETUNE, "spec": {k: v for k, v in FINETUNE["spec"].items()
                                                       if k in ("suite", "country", "baseModel", "dataset")}})
    assert (ft.spec.lora.rank, ft.spec.lora.alpha, ft.spec.lora.target_modules) == (16, 32, ["q_proj", "v_proj"])
    assert ft.spec.deletion_policy == "Retain" and ft.spec.consumers == []
    assert ft.spec.promotion.max_eval_loss is None
    assert ft.suite_namespace == "sovereign-suite" and ft.namespace == "justice"
    assert finetune().spec.training.sequence_length == 1024


@pytest.mark.parametrize("rank", [0, MAX_LORA_RANK_VALUES[-1] + 1])
def test_a_rank_vllm_cannot_serve_is_refused(rank: int) -> None:
    found = errors({"lora": {"rank": rank}})
    assert list(found) == ["spec.lora.rank"]


def test_the_largest_rank_vllm_serves_is_accepted() -> None:
    assert finetune(lora={"rank": MAX_LORA_RANK_VALUES[-1]}).spec.lora.rank == 512


@pytest.mark.parametrize("uri", [
    "https://fr-suite-data/x.jsonl",           # not s3://
    "s3://fr-suite-data/",                     # no key
    "s3://Bad_Bucket/x.jsonl",                 # not an S3 bucket name
    "s3://fr-suite-data/a/../b.jsonl",         # dot segment
    "s3://fr-suite-data/a b.jsonl",            # space
    's3://fr-suite-data/a"b.jsonl',            # quote
    "s3://fr-suite-data/a\nb.jsonl",           # control character
])
def test_a_dataset_uri_that_is_not_a_clean_s3_key_is_refused(uri: str) -> None:
    assert "spec.dataset.uri" in errors({"dataset": {"uri": uri}})


def test_field_bounds_name_their_path() -> None:
    assert "spec.dataset.evalFraction" in errors({"dataset": {"uri": FINETUNE["spec"]["dataset"]["uri"],
                                                              "evalFraction": 0.9}})
    assert "spec.lora.targetModules[0]" in errors({"lora": {"targetModules": ["q_proj; rm"]}})
    assert "spec.lora.targetModules" in errors({"lora": {"targetModules": ["q_proj", "q_proj"]}})
    assert "spec.consumers" in errors({"consumers": [{"name": "a"}, {"name": "a"}]})
    assert "spec.consumers[0].name" in errors({"consumers": [{"name": "Not_A_Label"}]})
    assert "spec.deletionPolicy" in errors({"deletionPolicy": "Orphan"})
    assert "spec.unknown" in errors({"unknown": 1})


def test_split_s3_uri() -> None:
    assert split_s3_uri("s3://b-1/fine-tuning/ns/x.jsonl") == ("b-1", "fine-tuning/ns/x.jsonl")


@pytest.mark.parametrize(("gate", "base", "adapter", "serve"), [
    ({}, 2.0, 1.5, True),
    ({}, 2.0, 2.0, False),          # equal is not better
    ({}, None, 1.5, False),         # nothing to compare with
    ({}, 2.0, None, False),
    ({}, 2.0, float("nan"), False),
    ({"maxEvalLoss": 1.6}, 1.0, 1.5, True),   # the threshold replaces the comparison
    ({"maxEvalLoss": 1.4}, 9.0, 1.5, False),
])
def test_promotion_gate(gate: dict, base: float | None, adapter: float | None, serve: bool) -> None:
    decision, why = promoted(Promotion.model_validate(gate), base, adapter)
    assert decision is serve and why


def test_a_missing_licence_is_not_open() -> None:
    model = LLMModel.model_validate({k: v for k, v in MISTRAL.items() if k != "license"})
    assert model.license is None and not is_open(model.license)
    assert "declares no licence" in why_not_open(None)


@pytest.mark.parametrize("licence", ["Apache-2.0", "apache-2.0", "MIT", "BSD-3-Clause"])
def test_open_licences(licence: str) -> None:
    assert is_open(licence)


@pytest.mark.parametrize(("licence", "why"), [("llama3.3", "Llama Community License"), ("gemma", "Gemma Terms"),
                                              ("mnpl-0.1", "Non-Production"), ("mrl-0.1", "Research"),
                                              ("other", "not in the operator's list")])
def test_community_and_research_licences_are_not_open(licence: str, why: str) -> None:
    assert not is_open(licence) and why in why_not_open(licence)


def test_the_licence_field_is_checked_and_in_the_crd() -> None:
    with pytest.raises(ValidationError):
        LLMModel.model_validate({**MISTRAL, "license": "Apache 2.0; rm -rf"})
    suite_crd = crdgen.suite_crd()
    model = (suite_crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
             ["components"]["properties"]["llm"]["properties"]["models"]["items"]["properties"])
    assert {"license", "hiddenSize", "numHiddenLayers"} <= set(model)
    assert all(lic in model["license"]["description"] for lic in OPEN_LICENCES)


def test_the_finetune_crd() -> None:
    crd = crdgen.finetune_crd()
    assert crd["metadata"]["name"] == "finetunes.sovereignsuite.io" and crd["spec"]["scope"] == "Namespaced"
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]
    assert set(spec["required"]) == {"suite", "country", "baseModel", "dataset"}
    assert spec["properties"]["lora"]["properties"]["rank"]["maximum"] == MAX_LORA_RANK_VALUES[-1]
    status = schema["properties"]["status"]["properties"]
    assert status["phase"]["enum"] == ["Pending", "Training", "Evaluating", "Ready", "Failed", "NotPromoted"]
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]
    assert "oldSelf" in spec["x-kubernetes-validations"][0]["rule"]
    assert "finetunes" in crdgen.CRDS

