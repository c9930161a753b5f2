"""The kinds of the suite's children: what the caches watch (context.py), what a member's role grants
(members/rbac.py), what the pipeline prunes."""

from __future__ import annotations

from typing import Any

# Every kind a renderer may produce: watched by label to find drift and orphans. Kinds the cluster does not
# serve (CloudNativePG, Prometheus Operator) are watched from the moment their CRD appears.
CHILD_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "Namespace"),
    ("v1", "ResourceQuota"),
    ("v1", "LimitRange"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "Service"),
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("barmancloud.cnpg.io/v1", "ObjectStore"),
    ("postgresql.cnpg.io/v1", "ScheduledBackup"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),  # Synapse workers (components/matrix/workloads.py)
    ("networking.k8s.io/v1", "Ingress"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
)
CAPABILITY_KINDS = {"monitoring.coreos.com/v1": ("ServiceMonitor",), "postgresql.cnpg.io/v1": ("Cluster",),
                    "barmancloud.cnpg.io/v1": ("ObjectStore",)}


def wanted_apis(spec: dict[str, Any]) -> frozenset[str]:
    """The optional APIs (CAPABILITY_KINDS) a suite's spec asks for: the Prometheus Operator's with
    monitoring.serviceMonitors, CloudNativePG's and its Barman plugin's with any database of mode cloudnative-pg
    (in the suite's components or a tenant's). A pass asks discovery for these when its member's watch has not
    found them served (reconcile/unserved.py: that watch's own look backs off to minutes)."""
    wanted = set()
    if (spec.get("monitoring") or {}).get("serviceMonitors"):
        wanted.add("monitoring.coreos.com/v1")

    def cnpg(value: Any) -> bool:
        if isinstance(value, dict):
            return value.get("mode") == "cloudnative-pg" or any(cnpg(v) for v in value.values())
        return isinstance(value, list) and any(cnpg(v) for v in value)
    if cnpg(spec.get("components")) or cnpg(spec.get("tenants")):
        wanted |= {"postgresql.cnpg.io/v1", "barmancloud.cnpg.io/v1"}
    return frozenset(wanted)
