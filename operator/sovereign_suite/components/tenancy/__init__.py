"""Tenant baseline: the namespace of one country and what isolates it.

Namespace ``<suite>-<country>`` with Pod Security ``restricted`` enforced, a ResourceQuota (with the cloud's
GPU resource), a LimitRange, NetworkPolicies (network.py: default deny in both directions, then each
component's paths, and with ``spec.monitoring.serviceMonitors`` the metrics ports from namespaces labelled
``sovereignsuite.io/monitoring: "true"``) and a RoleBinding that gives the tenant's admin group the ClusterRole
``sovereign-suite-tenant-admin``.

That ClusterRole is the chart's (templates/rbac-tenant-admin.yaml), not rendered here: the operator holds only
"bind" on it, not the rights it grants (docs/install.md). Its name is fixed so that rendering needs no cluster and
no setting; the RoleBinding carries the same name (not the former ``tenant-admin``, whose roleRef pointed to a
Role: a roleRef cannot change, and the old binding is pruned as an orphan instead).
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
        gpu_resource=ctx.cloud.spec.gpu.resource_name,
        admin_role=TENANT_ADMIN_CLUSTER_ROLE,
        admin_group=ctx.tenant.admin_group or f"{ctx.suite_name}-{ctx.country}-admins",
    )


def secrets(ctx: RenderContext) -> list[SecretSpec]:
    """The tenant's TLS Secret (its CA and its databases' certificates, components/tls.py), when it has any."""
    spec = tls.secret_spec(ctx)
    return [spec] if spec else []
