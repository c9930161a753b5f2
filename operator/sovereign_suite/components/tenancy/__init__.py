"""Tenant baseline: the namespace of one country and what isolates it.

Namespace ``<suite>-<country>`` with Pod Security ``restricted`` enforced, three ResourceQuotas (below), a
LimitRange, NetworkPolicies (network.py: default deny in both directions, then each
component's paths, and with ``spec.monitoring.serviceMonitors`` the metrics ports from namespaces labelled
``sovereignsuite.io/monitoring: "true"``) and a RoleBinding that gives the tenant's admin group the ClusterRole
``sovereign-suite-tenant-admin``.

That ClusterRole is the chart's (templates/rbac-tenant-admin.yaml), not rendered here: the operator holds only
"bind" on it, not the rights it grants (docs/install.md). Its name is fixed so that rendering needs no cluster and
no setting; the RoleBinding carries the same name (not the former ``tenant-admin``, whose roleRef pointed to a
Role: a roleRef cannot change, and the old binding is pruned as an orphan instead).

The quotas (docs/llm-finetuning.md, "Quota"). Training must never take what a serving replica needs; its pods run at
the PriorityClass ``sovereign-suite-fine-tuning`` (components/finetune), and a ResourceQuota's ``scopeSelector`` on
``PriorityClass`` counts only the pods it selects, so:

- ``tenant-fine-tuning``: ``PriorityClass In [sovereign-suite-fine-tuning]``, ``spec.tenants[].quota.fineTuning``;
- ``tenant-serving``: ``PriorityClass NotIn [sovereign-suite-fine-tuning]``, the rest of ``quota`` (cpu, memory,
  GPUs, pods). ``NotIn`` matches a pod without a class too: the pod evaluator matches the selector against the
  labels {PriorityClass: <class>} when the pod has one, against none otherwise, and a NotIn requirement matches a
  missing key (kubernetes v1.37.2 pkg/quota/v1/evaluator/core/pods.go podMatchesSelector;
  tests/cluster/test_quota_scopes.py checks it on the API server);
- ``tenant-quota``: ``requests.storage``, unscoped. A PriorityClass scope admits pod resources only (cpu, memory,
  pods, extended resources: v1.37.2 pkg/apis/core/helper/helpers.go IsResourceQuotaScopeValidForResource), so
  storage cannot move into a scoped one. The name is the one every tenant had (then holding everything): an
  upgrade applies the smaller ``hard`` onto the existing object, and the scoped shares are new objects. A scope is
  never added to an existing quota: ``spec.scopes`` is immutable (v1.37.2 pkg/apis/core/validation/validation.go
  ValidateResourceQuotaUpdate); that version does not check ``scopeSelector`` there, but new names keep the
  upgrade independent of that and let each share be named in a status.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...api.host_ports import host_ports_allowed
from .. import tls
from ..base import RenderContext, SecretSpec, render_template
from . import network

HERE = str(Path(__file__).parent)
COMPONENT = "tenancy"
from .network import MONITORING_NAMESPACE_LABEL  # noqa: F401 - re-exported for the tests and docs

TENANT_ADMIN_CLUSTER_ROLE = "sovereign-suite-tenant-admin"  # the chart's sso.tenantAdminRole
STORAGE_QUOTA = "tenant-quota"
SERVING_QUOTA = "tenant-serving"
FINE_TUNING_QUOTA = "tenant-fine-tuning"
# components/finetune PRIORITY_CLASS (not imported: that module imports this package; tests/test_tenancy_quota.py
# checks they are equal)
FINE_TUNING_PRIORITY_CLASS = "sovereign-suite-fine-tuning"


def pod_security_level(ctx: RenderContext) -> str:
    """``restricted``, except when Jitsi's JVB uses hostPort, which every Pod Security level but ``privileged``
    forbids (``baseline`` included): the namespace then enforces ``privileged`` and still warns and audits at
    ``restricted``. Only when the tenant's NationalCloud allows host ports (api/host_ports.py): nothing a suite
    editor writes alone lowers the level (validation refuses HostPort elsewhere; this is the second guard)."""
    jitsi = ctx.components.jitsi
    if jitsi.enabled and jitsi.jvb.type == "HostPort" and host_ports_allowed(ctx.cloud):
        return "privileged"
    return "restricted"


def render(ctx: RenderContext) -> list[dict[str, Any]]:
    return network.render(ctx) + render_template(
        HERE,
        "tenancy.yaml.j2",
        ctx=ctx,
        labels=ctx.labels(COMPONENT),
        ns_labels={
            **ctx.labels(COMPONENT),
            "pod-security.kubernetes.io/enforce": pod_security_level(ctx),
            "pod-security.kubernetes.io/enforce-version": "latest",
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/audit": "restricted",
        },
        quota=ctx.tenant.quota,
        names={"storage": STORAGE_QUOTA, "serving": SERVING_QUOTA, "fine_tuning": FINE_TUNING_QUOTA},
        priority_class=FINE_TUNING_PRIORITY_CLASS,
        gpu_resource=ctx.cloud.spec.gpu.resource_name,
        admin_role=TENANT_ADMIN_CLUSTER_ROLE,
        admin_group=ctx.tenant.admin_group or f"{ctx.suite_name}-{ctx.country}-admins",
    )


def secrets(ctx: RenderContext) -> list[SecretSpec]:
    """The tenant's TLS Secret (its CA and its databases' certificates, components/tls.py), when it has any."""
    spec = tls.secret_spec(ctx)
    return [spec] if spec else []
