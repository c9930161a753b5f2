"""The tenant's three ResourceQuotas (components/tenancy/__init__.py): storage unscoped under the old name, the
pods' compute but training's scoped PriorityClass NotIn [fine-tuning], training's own share scoped In; and the
quota.fineTuning field's validation. tests/cluster/test_quota_scopes.py checks the scopes' counting on the API
server."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sovereign_suite.api.models import FineTuningQuota, Quota
from sovereign_suite.components import finetune, tenancy
from sovereign_suite.render import render_suite

from .helpers import load_example, suite_with

# Resources a PriorityClass scope admits (kubernetes v1.37.2 pkg/apis/core/helper/helpers.go
# IsResourceQuotaScopeValidForResource: podObjectCountQuotaResources and podComputeQuotaResources, and any resource
# that is not a standard quota resource name, e.g. an extended resource like nvidia.com/gpu).
POD_SCOPED = {"pods", "cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"}


def quotas(suite, clouds, ns: str) -> dict[str, dict]:
    objs = render_suite(suite, clouds).manifests
    return {o["metadata"]["name"]: o for o in objs
            if o["kind"] == "ResourceQuota" and o["metadata"]["namespace"] == ns}


def selector(quota: dict) -> list[dict]:
    return quota["spec"].get("scopeSelector", {}).get("matchExpressions", [])


def test_the_three_quotas_split_storage_serving_and_training() -> None:
    suite, clouds = load_example("four-countries")
    for tenant in suite.spec.tenants:
        ns = f"{suite.name}-{tenant.country.lower()}"
        gpu = "requests." + clouds[tenant.cloud].spec.gpu.resource_name
        q = quotas(suite, clouds, ns)
        assert set(q) == {"tenant-quota", "tenant-serving", "tenant-fine-tuning"}
        # the old name stays unscoped and holds only what a PriorityClass scope cannot (storage)
        assert "scopes" not in q["tenant-quota"]["spec"] and "scopeSelector" not in q["tenant-quota"]["spec"]
        assert q["tenant-quota"]["spec"]["hard"] == {"requests.storage": str(tenant.quota.storage)}
        assert q["tenant-serving"]["spec"]["hard"] == {
            "requests.cpu": str(tenant.quota.cpu), "requests.memory": str(tenant.quota.memory),
            "pods": str(tenant.quota.pods), gpu: str(tenant.quota.gpus)}
        ft = tenant.quota.fine_tuning
        assert q["tenant-fine-tuning"]["spec"]["hard"] == {
            "requests.cpu": str(ft.cpu), "requests.memory": str(ft.memory), "pods": str(ft.pods), gpu: str(ft.gpus)}
        assert selector(q["tenant-serving"]) == [
            {"scopeName": "PriorityClass", "operator": "NotIn", "values": [finetune.PRIORITY_CLASS]}]
        assert selector(q["tenant-fine-tuning"]) == [
            {"scopeName": "PriorityClass", "operator": "In", "values": [finetune.PRIORITY_CLASS]}]
        for name in ("tenant-serving", "tenant-fine-tuning"):  # else the API server refuses the quota
            assert all(k in POD_SCOPED or "/" in k for k in q[name]["spec"]["hard"]), q[name]
        assert q["tenant-fine-tuning"]["metadata"]["labels"] == q["tenant-quota"]["metadata"]["labels"]


def test_the_scopes_name_the_class_training_pods_run_at() -> None:
    assert tenancy.FINE_TUNING_PRIORITY_CLASS == finetune.PRIORITY_CLASS == "sovereign-suite-fine-tuning"


def test_fine_tuning_defaults_and_what_a_user_writes_reach_the_training_quota() -> None:
    assert FineTuningQuota().wire() == {"gpus": 2, "cpu": "16", "memory": "256Gi", "pods": 4}
    assert Quota().fine_tuning == FineTuningQuota()
    suite, clouds = load_example("two-countries")
    doc_tenants = [t.wire() for t in suite.spec.tenants]
    doc_tenants[0]["quota"] = {"gpus": 4, "fineTuning": {"gpus": 0, "cpu": "8500m", "memory": "100Gi", "pods": 1}}
    suite = suite_with("two-countries", {"tenants": doc_tenants})
    tenant = suite.spec.tenants[0]
    q = quotas(suite, clouds, f"{suite.name}-{tenant.country.lower()}")
    gpu = "requests." + clouds[tenant.cloud].spec.gpu.resource_name
    assert q["tenant-fine-tuning"]["spec"]["hard"] == {"requests.cpu": "8500m", "requests.memory": "100Gi",
                                                        "pods": "1", gpu: "0"}
    assert q["tenant-serving"]["spec"]["hard"][gpu] == "4"
    assert q["tenant-serving"]["spec"]["hard"]["requests.cpu"] == "64"  # the rest of quota at its defaults


@pytest.mark.parametrize("field, value, says", [
    ("gpus", -1, "greater than or equal to 0"),
    ("pods", -1, "greater than or equal to 0"),
    ("cpu", "-2", "never negative"),
    ("memory", "lots", "not a Kubernetes quantity"),
    ("storage", "1Ti", "Extra inputs are not permitted"),  # storage cannot be scoped: not a training field
])
def test_a_bad_fine_tuning_quota_is_refused_naming_the_field(field, value, says) -> None:
    with pytest.raises(ValidationError) as err:
        Quota.model_validate({"fineTuning": {field: value}})
    (e,) = err.value.errors()
    assert e["loc"][:2] == ("fineTuning", field) and says in e["msg"], e
