"""FineTune validation (reconcile/finetune_checks.py) and the training memory estimate
(reconcile/training_memory.py): each refusal is a typed value naming the FineTune's field, no cluster."""

from __future__ import annotations

import pytest

from sovereign_suite.reconcile import training_memory
from sovereign_suite.reconcile.finetune_checks import REASONS, artifacts_prefix, check_finetune
from sovereign_suite.reconcile.problems import ObjectKey, Severity

from .finetune_fixtures import ADMIN_NS, MISTRAL, clouds, finetune, suite, suites

A100, H100 = "NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"


def reasons(ft=None, s=None, c=None, memory=None) -> dict[str, str]:
    resolved, found = check_finetune(ft or finetune(), suites(s), c or clouds(), memory)
    assert (resolved is None) == bool(found)
    return {p.reason: p.path for p in found}


def test_a_valid_finetune_resolves_to_its_tenant_cloud_model_and_products() -> None:
    resolved, found = check_finetune(finetune(), suites(), clouds())
    assert found == [] and resolved is not None
    assert (resolved.tenant.country, resolved.cloud.name, resolved.model.name) == ("FR", "fr-secnumcloud",
                                                                                    "mistral-small")
    assert resolved.products == (A100, H100)  # the model's order of preference, both hold the run
    assert artifacts_prefix(finetune()) == f"fine-tuning/{ADMIN_NS}/summaries/"


def test_unknown_suite_tenant_and_model() -> None:
    assert reasons(finetune(suite={"name": "nope", "namespace": "sovereign-suite"})) == {"SuiteNotFound": "spec.suite"}
    assert reasons(finetune(country="LU")) == {"TenantNotFound": "spec.country"}
    assert reasons(finetune(baseModel="llama")) == {"BaseModelNotFound": "spec.baseModel"}


def test_only_admitted_namespaces_may_train_on_a_tenant() -> None:
    # absent fineTuneNamespaces: only the suite's own namespace
    assert reasons(s=suite()) == {"NamespaceNotAdmitted": "spec.suite"}
    assert reasons(s=suite(fine_tune_namespaces=["just*"])) == {}
    assert reasons(s=suite(fine_tune_namespaces=["other"])) == {"NamespaceNotAdmitted": "spec.suite"}


@pytest.mark.parametrize("licence", [None, "llama3.3", "gemma", "mnpl-0.1"])
def test_a_model_without_an_open_licence_is_refused(licence) -> None:
    model = {**MISTRAL, "license": licence} if licence else {k: v for k, v in MISTRAL.items() if k != "license"}
    s = suite(model=model, fine_tune_namespaces=[ADMIN_NS])
    resolved, found = check_finetune(finetune(), suites(s), clouds())
    assert resolved is None and [(p.reason, p.path) for p in found] == [("LicenceNotOpen", "spec.baseModel")]
    assert "Apache-2.0" in found[0].message


def test_the_dataset_must_be_in_the_tenants_cloud_storage_and_the_namespaces_prefix() -> None:
    outside = finetune(dataset={"uri": f"s3://us-bucket/fine-tuning/{ADMIN_NS}/x.jsonl"})
    assert reasons(outside) == {"DatasetOutsideCountry": "spec.dataset.uri"}
    backups = finetune(dataset={"uri": "s3://fr-suite-data/sovereign-suite/eu-workplace/fr/db.dump"})
    assert reasons(backups) == {"DatasetOutsideNamespace": "spec.dataset.uri"}
    other_admin = finetune(dataset={"uri": "s3://fr-suite-data/fine-tuning/health/x.jsonl"})
    assert reasons(other_admin) == {"DatasetOutsideNamespace": "spec.dataset.uri"}
    assert reasons(c=clouds(storage=None)) == {"NoObjectStorage": "spec.dataset.uri"}
    assert reasons(c=clouds(egress=False)) == {"ObjectStorageEgressNotDeclared": "spec.dataset.uri"}


def test_the_other_countrys_storage_is_refused_even_with_the_same_bucket_name() -> None:
    # the DE tenant's cloud declares no storage: a FineTune of DE cannot reach FR's bucket by naming it
    s = suite(fine_tune_namespaces=[ADMIN_NS])
    s.spec.tenants[1].components = {"llm": {"enabled": True, "models": [MISTRAL]}}
    s.spec.tenants[1].fine_tune_namespaces = [ADMIN_NS]
    assert reasons(finetune(country="DE"), s=s) == {"NoObjectStorage": "spec.dataset.uri"}


def test_the_estimate_follows_the_documented_formula() -> None:
    ft = finetune()
    model = suite().spec.tenants[0].components["llm"]["models"][0]
    from sovereign_suite.api.models import LLMModel
    m = LLMModel.model_validate(model)
    est = training_memory.estimate(m, ft.spec.lora, ft.spec.training)
    params = 40 * 2 * 16 * 2 * 5120  # layers x targets x rank x 2 x hidden
    assert est.lora_parameters == params == 13_107_200
    assert est.adapter_mib == pytest.approx(params * 16 / 2**20)
    assert est.activations_mib == pytest.approx(2 * 1024 * 40 * 5120 * 34 / 2**20)  # batch x seq x L x h x 34
    assert est.weights_mib == pytest.approx(24e9 * 2 / 2**20)
    assert est.needed_mib == int(est.weights_mib + est.adapter_mib + est.activations_mib + 1024)


def test_a_run_that_fits_no_gpu_is_refused_with_insufficient_gpu_memory() -> None:
    # 24 B parameters: ~44.7 GiB of weights; 8 x 8192 tokens of activations (~425 GiB) exceed an 80 GB GPU
    big = finetune(training={"batchSize": 8, "sequenceLength": 8192})
    resolved, found = check_finetune(big, suites(), clouds())
    assert resolved is None and [(p.reason, p.path) for p in found] == [("InsufficientGPUMemory", "spec.training")]
    assert A100 in found[0].message and "activations" in found[0].message
    problem = found[0].problem(ObjectKey("sovereignsuite.io", "FineTune", ADMIN_NS, "summaries"))
    assert problem.severity is Severity.STALLED and problem.reason == "InsufficientGPUMemory"
    assert "spec.training" in problem.message


def test_memory_read_from_the_cluster_narrows_the_products() -> None:
    # the fixture's run (2 x 1024 tokens) needs ~59 GiB: it fits an 80 GB GPU, not nodes that report 40 GB
    resolved, found = check_finetune(finetune(), suites(), clouds(), {A100: 40960})
    assert resolved is not None and 58 < resolved.estimate.needed_mib / 1024 < 60
    assert found == [] and resolved is not None and resolved.products == (H100,)


def test_unknown_architecture_counts_the_weights_only_and_unknown_weights_fit_anywhere() -> None:
    lean = {k: v for k, v in MISTRAL.items() if k not in ("hiddenSize", "numHiddenLayers")}
    s = suite(model=lean, fine_tune_namespaces=[ADMIN_NS])
    resolved, found = check_finetune(finetune(training={"batchSize": 64, "sequenceLength": 8192}), suites(s), clouds())
    assert found == [] and resolved is not None and resolved.estimate.lora_parameters is None
    huge = {**lean, "parametersBillion": 70}  # 130 GiB of weights: no 80 GB GPU
    assert reasons(s=suite(model=huge, fine_tune_namespaces=[ADMIN_NS])) == {"InsufficientGPUMemory": "spec.training"}
    unknown = {k: v for k, v in lean.items() if k != "parametersBillion"}
    assert reasons(s=suite(model=unknown, fine_tune_namespaces=[ADMIN_NS])) == {}


def test_every_reason_is_camel_case() -> None:
    assert all(r[0].isupper() and r.isalnum() for r in REASONS)


def test_the_example_manifest_is_valid_and_passes_the_checks() -> None:
    """manifests/examples/finetune.yaml, against the suite and cloud its header says the platform team declares
    (tests/finetune_fixtures.py builds them from two-countries.yaml)."""
    import yaml

    from sovereign_suite.api.finetune_models import FineTune

    from .helpers import EXAMPLES

    docs = [d for d in yaml.safe_load_all((EXAMPLES / "finetune.yaml").read_text()) if d]
    assert [d["kind"] for d in docs] == ["Namespace", "RoleBinding", "FineTune"]
    ft = FineTune.model_validate(docs[2])
    resolved, problems = check_finetune(ft, suites(), clouds())
    assert problems == [] and resolved is not None
    assert docs[1]["roleRef"]["name"] == "sovereign-suite-finetune-editor"
    assert docs[1]["metadata"]["namespace"] == ft.namespace
