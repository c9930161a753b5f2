"""Validation of a FineTune against the suite, the tenant and the cloud it names (pure: the caller passes what it
read). Every failure is a typed value: a reason from ``REASONS``, the field path of the FineTune it is about, and a
message; ``problem()`` turns it into the pipeline's Problem (problems.py), which ends in the FineTune's Stalled
condition. Nothing here reads a cluster; docs/llm-finetuning.md lists the rules.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Mapping

from ..api.finetune_models import FineTune, split_s3_uri
from ..api.licences import is_open, why_not_open
from ..api.models import LLMModel, NationalCloud, SovereignSuite, Tenant
from ..api.network import merged
from ..api.validation import effective_components
from . import training_memory
from .problems import ObjectKey, Problem, stalled

# The prefix of the bucket a FineTune's namespace owns: its datasets are read from there, its artifacts written there.
PREFIX_ROOT = "fine-tuning"

REASONS = frozenset({
    "SuiteNotFound", "TenantNotFound", "NamespaceNotAdmitted", "UnknownCloud", "BaseModelNotFound",
    "LicenceNotOpen", "NoObjectStorage", "DatasetOutsideCountry", "DatasetOutsideNamespace",
    "ObjectStorageEgressNotDeclared", "InsufficientGPUMemory",
})


@dataclass(frozen=True)
class FineTuneProblem:
    reason: str  # one of REASONS
    path: str  # the FineTune's field, e.g. spec.dataset.uri
    message: str

    def __post_init__(self) -> None:
        assert self.reason in REASONS, self.reason

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def problem(self, obj: ObjectKey | None = None) -> Problem:
        return stalled(self.reason, str(self), obj)


@dataclass(frozen=True)
class Resolved:
    """What a valid FineTune trains on: its suite, tenant, cloud and base model, and the GPU products (in the
    model's order of preference) one GPU of which holds the run."""

    suite: SovereignSuite
    tenant: Tenant
    cloud: NationalCloud
    model: LLMModel
    products: tuple[str, ...]
    estimate: training_memory.TrainingEstimate


def namespace_prefix(namespace: str) -> str:
    return f"{PREFIX_ROOT}/{namespace}/"


def artifacts_prefix(ft: FineTune) -> str:
    """Where the run writes (the adapter under adapter/, the evaluation beside it): the namespace's prefix, then the
    FineTune's name. Deterministic, so a new run after a change of spec overwrites the previous adapter."""
    return f"{namespace_prefix(ft.namespace)}{ft.name}/"


def tenant_admits(suite: SovereignSuite, tenant: Tenant, namespace: str) -> bool:
    """Whether FineTunes of ``namespace`` may use the tenant: its fineTuneNamespaces (names or globs), or, absent,
    the suite's own namespace only (as a NationalCloud's suiteNamespaces, api/validation.cloud_admits)."""
    patterns = tenant.fine_tune_namespaces
    if patterns is None:
        return namespace == (suite.metadata.namespace or "")
    return any(fnmatch.fnmatchcase(namespace, p) for p in patterns)


def check_finetune(ft: FineTune, suites: Mapping[tuple[str, str], SovereignSuite],
                   clouds: Mapping[str, NationalCloud],
                   gpu_memory: Mapping[str, int] | None = None) -> tuple[Resolved | None, list[FineTuneProblem]]:
    """(what it resolves to, []) or (None, every problem found). ``suites``: (namespace, name) -> suite;
    ``gpu_memory``: product -> MiB read from the tenant's cluster (absent: the cloud's declared memory)."""
    spec = ft.spec
    suite = suites.get((ft.suite_namespace, spec.suite.name))
    if suite is None:
        return None, [FineTuneProblem("SuiteNotFound", "spec.suite", f"SovereignSuite {ft.suite_namespace}/"
                                      f"{spec.suite.name} not found")]
    tenant = next((t for t in suite.spec.tenants if t.country == spec.country), None)
    if tenant is None:
        countries = ", ".join(t.country for t in suite.spec.tenants)
        return None, [FineTuneProblem("TenantNotFound", "spec.country", f"SovereignSuite {suite.name} has no tenant "
                                      f"in {spec.country} (its countries: {countries})")]
    if not tenant_admits(suite, tenant, ft.namespace):
        allowed = (f"its fineTuneNamespaces {tenant.fine_tune_namespaces}" if tenant.fine_tune_namespaces is not None
                   else f"without fineTuneNamespaces only the suite's namespace {suite.metadata.namespace!r}")
        return None, [FineTuneProblem("NamespaceNotAdmitted", "spec.suite", f"the {spec.country} tenant of "
                                      f"SovereignSuite {suite.name} does not admit FineTunes of namespace "
                                      f"{ft.namespace!r} ({allowed})")]
    cloud = clouds.get(tenant.cloud)
    if cloud is None:
        return None, [FineTuneProblem("UnknownCloud", "spec.country", f"the tenant's NationalCloud {tenant.cloud!r} "
                                      "was not found")]
    problems: list[FineTuneProblem] = []
    llm = effective_components(suite, tenant).llm
    model = next((m for m in llm.models if m.name == spec.base_model), None) if llm.enabled else None
    if model is None:
        served = ", ".join(m.name for m in llm.models) if llm.enabled and llm.models else "none"
        problems.append(FineTuneProblem("BaseModelNotFound", "spec.baseModel", f"the {spec.country} tenant serves "
                                        f"no model {spec.base_model!r} (its models: {served})"))
    elif not is_open(model.license):
        problems.append(FineTuneProblem("LicenceNotOpen", "spec.baseModel", f"model {model.name} ({model.model_id}): "
                                        + why_not_open(model.license)))
    problems += _storage_problems(ft, suite, cloud)
    if model is None or problems:
        return None, problems
    est = training_memory.estimate(model, spec.lora, spec.training)
    fits = training_memory.product_fits(model, cloud, est, gpu_memory)
    message = training_memory.insufficient_memory_message(est, fits)
    if message:
        return None, [FineTuneProblem("InsufficientGPUMemory", "spec.training", f"{message} (base model "
                                      f"{model.name} on NationalCloud {cloud.name}; lower sequenceLength or "
                                      "batchSize)")]
    return Resolved(suite, tenant, cloud, model, tuple(f.product for f in fits if f.fits), est), []


def _storage_problems(ft: FineTune, suite: SovereignSuite, cloud: NationalCloud) -> list[FineTuneProblem]:
    storage = cloud.spec.object_storage
    if storage is None:
        return [FineTuneProblem("NoObjectStorage", "spec.dataset.uri", f"NationalCloud {cloud.name} declares no "
                                "spec.objectStorage: the country has no storage to train from")]
    out = []
    bucket, key = split_s3_uri(ft.spec.dataset.uri)
    if bucket != storage.bucket:
        out.append(FineTuneProblem("DatasetOutsideCountry", "spec.dataset.uri", f"bucket {bucket!r} is not the "
                                   f"object storage of NationalCloud {cloud.name} ({storage.bucket!r} at "
                                   f"{storage.endpoint}): the data must stay in {cloud.spec.country}'s storage"))
    elif not key.startswith(namespace_prefix(ft.namespace)):
        out.append(FineTuneProblem("DatasetOutsideNamespace", "spec.dataset.uri", f"the key must be under "
                                   f"{namespace_prefix(ft.namespace)} (the FineTune's namespace's own prefix in the "
                                   "bucket; nothing else in it is readable from here)"))
    if not merged(cloud.spec.network, suite.spec.network)["object_storage"]:
        out.append(FineTuneProblem("ObjectStorageEgressNotDeclared", "spec.dataset.uri", "neither NationalCloud "
                                   f"{cloud.name} nor SovereignSuite {suite.name} declares "
                                   "spec.network.egress.objectStorage: the training pod could not reach the storage"))
    return out
