"""The NationalCloud API: a country's cloud, owned by the platform team (regions, GPUs, what it allows)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from .fieldtypes import LabelKey, LabelValue, NamespaceGlob, NamespaceName, SubdomainName
from .common import (
    API_VERSION,
    EXTENDED_RESOURCE_PATTERN,
    MAX_CERTIFICATIONS,
    MAX_GPU_PRODUCTS_PER_CLOUD,
    MAX_NODE_SELECTOR,
    MAX_REGIONS,
    MAX_SUITE_NAMESPACES,
    MAX_TOLERATIONS,
    Country,
    Model,
    ObjectName,
    Toleration,
)
from ..imageref import REGISTRY_PATTERN, registry_problem
from .models import Tenant
from .network import CloudNetwork
from .backups import ObjectStorage


# --------------------------------------------------------------------------------------------------
# NationalCloud


class GPU(Model):
    resource_name: str = Field(
        "nvidia.com/gpu",
        pattern=EXTENDED_RESOURCE_PATTERN,
        description="Extended resource of the GPUs (MIG names such as nvidia.com/mig-1g.10gb are accepted).",
    )
    product_label: LabelKey = Field("nvidia.com/gpu.product", description="Node label holding the GPU product.")
    memory_label: LabelKey = Field(
        "nvidia.com/gpu.memory", description="Node label holding the memory of one GPU in MiB (GPU feature discovery)."
    )
    product_memory_mib: dict[LabelValue, int] = Field(
        default_factory=dict, alias="productMemoryMiB", max_length=MAX_GPU_PRODUCTS_PER_CLOUD,
        description="Memory of one GPU (MiB) per product, for nodes without the memory label and for the offline "
        "check that a model fits at least one product.",
    )
    node_selector: dict[LabelKey, LabelValue] = Field(
        default_factory=dict, max_length=MAX_NODE_SELECTOR, description="Extra labels GPU nodes carry."
    )
    tolerations: list[Toleration] = Field(
        default_factory=lambda: [Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")],
        max_length=MAX_TOLERATIONS,
    )


class CloudNativePGOperator(Model):
    """Where the CloudNativePG operator runs, for the NetworkPolicy that lets it reach the instance pods (it
    connects to them on 8000 and 5432). Defaults: the namespace and pod label of CloudNativePG's own manifests
    and Helm chart (cloudnative-pg docs/src/networking.md, docs/src/samples/networkpolicy-example.yaml)."""

    namespace: NamespaceName = Field("cnpg-system", description="Namespace of the CloudNativePG operator.")
    pod_labels: dict[LabelKey, LabelValue] = Field(
        default_factory=lambda: {"app.kubernetes.io/name": "cloudnative-pg"},
        min_length=1,
        max_length=MAX_NODE_SELECTOR,
        description="Labels of the CloudNativePG operator's pods (a label selector of a NetworkPolicy).",
    )


class IssuerRef(Model):
    """A cert-manager issuer, written on every Ingress for cert-manager's ingress-shim (components/ingress.py)."""

    name: ObjectName = Field(description="Name of the issuer.")
    kind: Literal["ClusterIssuer", "Issuer"] = Field(
        "ClusterIssuer",
        description="ClusterIssuer (one for the whole cluster) or Issuer (namespaced: it must then exist in every "
        "tenant namespace, which the operator does not create).",
    )
    group: SubdomainName | None = Field(
        None, description="API group of an external issuer (e.g. awspca.cert-manager.io); absent: cert-manager.io."
    )


class CertManager(Model):
    issuer_ref: IssuerRef = Field(description="The issuer of the certificates of every Ingress of the suites.")


class HostPortRange(Model):
    """The host ports a cloud lets suites use (JVB media with jitsi.jvb.type HostPort)."""

    model_config = ConfigDict(
        json_schema_extra={"x-kubernetes-validations": [{"rule": "self.min <= self.max", "message": "min is above max"}]}
    )

    min: int = Field(ge=1024, le=65535, description="Lowest allowed host port.")
    max: int = Field(ge=1024, le=65535, description="Highest allowed host port.")

    @model_validator(mode="after")
    def _ordered(self) -> "HostPortRange":
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class KubeconfigSecretRef(Model):
    name: ObjectName
    namespace: ObjectName
    key: str = "kubeconfig"


class NationalCloudSpec(Model):
    country: Country
    provider: str = Field(min_length=1, description="Cloud provider (e.g. OUTSCALE, STACKIT).")
    certifications: list[str] = Field(
        default_factory=list, max_length=MAX_CERTIFICATIONS, description="e.g. SecNumCloud, C5."
    )
    regions: list[LabelValue] = Field(
        min_length=1, max_length=MAX_REGIONS,
        description="Allowed values of topology.kubernetes.io/region (data residency).",
    )
    storage_class: SubdomainName | None = Field(
        None, description="StorageClass for PVCs; default: the cluster's default."
    )
    ingress_class: SubdomainName = "nginx"
    ingress_controller: Literal["ingress-nginx", "other"] = Field(
        "ingress-nginx",
        description="The controller behind ingressClass, for the annotations the operator writes for request "
        "body sizes and timeouts (the Ingress API has no field for them); other: none (set the limits in the "
        "controller).",
    )
    cert_manager: CertManager | None = Field(
        None,
        description="Certificates of the Ingresses from cert-manager (annotations for its ingress-shim, which "
        "fills each <host>-tls Secret). Absent: the <host>-tls Secrets must exist before the suite.",
    )
    gpu: GPU = Field(default_factory=GPU)
    cloud_native_pg: CloudNativePGOperator = Field(
        default_factory=CloudNativePGOperator,
        alias="cloudNativePG",
        description="The CloudNativePG operator of the cluster (used when a database has mode cloudnative-pg).",
    )
    host_ports: HostPortRange | None = Field(
        None,
        description="Host ports suites on this cloud may use (jitsi.jvb.type HostPort, whose namespace must then "
        "enforce the Pod Security level privileged). Absent: no suite may use host ports.",
    )
    network: CloudNetwork = Field(
        default_factory=CloudNetwork,
        description="Endpoints outside the cluster that tenant pods may reach (egress is denied otherwise), and "
        "the cluster's own pod and Service networks, which those endpoints may not overlap.",
    )
    image_registry: str | None = Field(
        None, max_length=255, json_schema_extra={"pattern": REGISTRY_PATTERN},
        description="The country's own registry, host[:port][/path] (e.g. registry.example.fr/mirror): every "
        "container image of the suites' tenants on this cloud is pulled from it, with the same repository path, "
        "tag and digest (docker.io/library/postgres:17.6 -> <imageRegistry>/library/postgres:17.6). Absent: "
        "the images' own registries.",
    )
    cluster: Literal["local", "member"] = Field(
        "local",
        description="Where the tenants on this cloud live: local, the operator's own cluster; member, a member "
        "cluster of its own reached with kubeconfigSecretRef (push mode, docs/multi-cluster.md). Never implied by "
        "the reference: member without kubeconfigSecretRef, or local with one, is refused. Ignored by an operator "
        "started with `--local-cloud` (pull mode).",
    )
    kubeconfig_secret_ref: KubeconfigSecretRef | None = Field(
        None, description="With cluster: member, the kubeconfig of the member cluster (written by `sovereign-suite "
        "cloud join`): the tenants on this cloud are applied there, nothing of them in the operator's cluster. The "
        "Secret must be in the operator's member-secrets namespace and labelled "
        "sovereignsuite.io/member-credentials: \"true\"; its kubeconfig may hold only the server, its CA and an "
        "inline token or client certificate (docs/security.md)."
    )
    object_storage: ObjectStorage | None = Field(
        None, description="The country's S3-compatible object storage in this cloud, declared once for every use "
        "(backups of the suites' tenants: spec.backups). Its addresses must also be declared in "
        "spec.network.egress.objectStorage for the pods that use it to reach it.",
    )
    suite_namespaces: list[NamespaceGlob] | None = Field(
        None, max_length=MAX_SUITE_NAMESPACES,
        description="The namespaces whose SovereignSuites may place tenants on this cloud: names or globs ('*' any "
        "characters, '?' one), like the sourceNamespaces of an Argo CD AppProject. Absent: only the operator's own "
        "namespace. [\"*\"]: every namespace.",
    )

    @field_validator("country")
    @classmethod
    def _known_country(cls, v: str) -> str:
        return Tenant._known_country(v)

    @model_validator(mode="after")
    def _cluster_is_explicit(self) -> "NationalCloudSpec":
        # no member reference silently means "the hub": the cluster is said, and the reference must agree
        if self.cluster == "member" and self.kubeconfig_secret_ref is None:
            raise ValueError("kubeconfigSecretRef: required when cluster is member (a member cloud never falls "
                             "back to the operator's own cluster; set cluster: local to move it there)")
        if self.cluster == "local" and self.kubeconfig_secret_ref is not None:
            raise ValueError("kubeconfigSecretRef: not allowed when cluster is local (the default): set cluster: "
                             "member to use the member cluster")
        return self

    @field_validator("image_registry")
    @classmethod
    def _registry(cls, v: str | None) -> str | None:
        problem = registry_problem(v) if v is not None else None
        if problem:
            raise ValueError(problem)
        return v


class ClusterMeta(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)


class NationalCloud(Model):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)

    api_version: Literal["sovereignsuite.io/v1alpha1"] = Field(API_VERSION, validation_alias=AliasChoices("apiVersion"))
    kind: Literal["NationalCloud"] = "NationalCloud"
    metadata: ClusterMeta
    spec: NationalCloudSpec
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name
