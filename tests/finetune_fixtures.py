"""A suite whose FR tenant serves an open model and whose cloud declares its object storage, and FineTunes of it:
shared by the FineTune tests (tests/test_finetune_*.py, tests/components/test_finetune.py)."""

from __future__ import annotations

import copy
from typing import Any

from sovereign_suite.api.finetune_models import FineTune
from sovereign_suite.api.models import NationalCloud, SovereignSuite

from .helpers import load_example, suite_with

STORAGE = {"endpoint": "https://oos.eu-west-2.example.fr", "region": "eu-west-2", "bucket": "fr-suite-data",
           "credentialsSecretRef": "fr-object-storage"}
STORAGE_CIDR = "198.51.100.0/24"
ADMIN_NS = "justice"  # an administration's namespace
# Mistral-Small-3.2-24B-Instruct-2506's config.json: hidden_size 5120, num_hidden_layers 40; Apache-2.0 (its card)
MISTRAL = {"name": "mistral-small", "modelId": "mistralai/Mistral-Small-3.2-24B-Instruct-2506", "license": "Apache-2.0",
           "parametersBillion": 24, "hiddenSize": 5120, "numHiddenLayers": 40,
           "gpuProducts": ["NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"]}


def clouds(storage: dict | None = STORAGE, egress: bool = True) -> dict[str, NationalCloud]:
    _, found = load_example("two-countries")
    out = dict(found)
    doc = found["fr-secnumcloud"].model_dump(by_alias=True, exclude_none=True)
    if storage:
        doc["spec"]["objectStorage"] = storage
    if egress:
        doc["spec"].setdefault("network", {}).setdefault("egress", {})["objectStorage"] = [
            {"cidrs": [STORAGE_CIDR], "ports": [{"port": 443}]}]
    out["fr-secnumcloud"] = NationalCloud.model_validate(doc)
    return out


def suite(model: dict | None = None, fine_tune_namespaces: list[str] | None = None) -> SovereignSuite:
    fr: dict[str, Any] = {"country": "FR", "cloud": "fr-secnumcloud",
                          "components": {"llm": {"enabled": True, "models": [model or MISTRAL]}}}
    if fine_tune_namespaces is not None:
        fr["fineTuneNamespaces"] = fine_tune_namespaces
    return suite_with("two-countries", {"tenants": [fr, {"country": "DE", "cloud": "de-c5"}]})


def suites(s: SovereignSuite | None = None) -> dict[tuple[str, str], SovereignSuite]:
    s = s or suite(fine_tune_namespaces=[ADMIN_NS])
    return {(s.metadata.namespace or "", s.name): s}


FINETUNE: dict[str, Any] = {
    "apiVersion": "sovereignsuite.io/v1alpha1",
    "kind": "FineTune",
    "metadata": {"name": "summaries", "namespace": ADMIN_NS},
    "spec": {
        "suite": {"name": "eu-workplace", "namespace": "sovereign-suite"},
        "country": "FR",
        "baseModel": "mistral-small",
        "dataset": {"uri": f"s3://fr-suite-data/fine-tuning/{ADMIN_NS}/summaries.jsonl", "evalFraction": 0.1},
        "lora": {"rank": 16, "alpha": 32, "targetModules": ["q_proj", "v_proj"]},
        "training": {"steps": 100, "batchSize": 2, "sequenceLength": 1024},
        "consumers": [{"name": "greffe-app"}],
    },
}


def finetune(**spec: Any) -> FineTune:
    doc = copy.deepcopy(FINETUNE)
    doc["spec"].update(spec)
    return FineTune.model_validate(doc)
