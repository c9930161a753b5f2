"""The SovereignSuite API (group sovereignsuite.io, version v1alpha1).

These pydantic models are the single source of truth: the CRDs in ``crds/`` are generated from them
(``sovereign_suite.api.crdgen``) and the operator parses every object it reads through them.

Conventions:
- field names are camelCase on the wire (``alias_generator``), snake_case in Python;
- unknown fields are rejected (``extra="forbid"``), as the API server does for a structural schema;
- defaults live here, not in the CRD: the API server stores what the user wrote and the operator applies
  the defaults when it parses, so a GitOps tool never sees a diff it did not cause, and per-tenant
  overrides only carry the fields the user set.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from .image_pins import pinned
from .releases import catalogue
from .fieldtypes import (
    AdminGroup,
    HttpsUrl,
    ImageRef,
    NamespaceGlob,
    NamespaceName,
    Scope,
)

from .ingress_annotations import IngressAnnotations, ingress_annotations_field
from .matrix_workers import MatrixWorkers
from .llm_models import LLM, LLMGateway, LLMModel  # noqa: F401 - re-exported: the API's one import point
from .network import Network
from .backups import Backups
from .postgres_model import Postgres
from .jitsi_models import Jitsi, JvbExposure  # noqa: F401 - re-exported: the API's one import point
from .docs_models import Docs, DocsAdmin, S3  # noqa: F401 - re-exported: the API's one import point
from .common import (  # noqa: F401 - re-exported: the API's one import point
    API_VERSION,
    COUNTRIES,
    Country,
    DNS_LABEL_RE,
    DNS_NAME_RE,
    DnsName,
    EXTENDED_RESOURCE_PATTERN,
    GROUP,
    HOST_PORT_PATTERN,
    MAX_CERTIFICATIONS,
    MAX_EXTRA_ARGS,
    MAX_EXTRA_DOMAINS,
    MAX_EXTRA_ENV,
    MAX_GPU_PRODUCTS,
    MAX_GPU_PRODUCTS_PER_CLOUD,
    MAX_STUN_SERVERS,
    MAX_MODELS,
    MAX_NODE_SELECTOR,
    MAX_REGIONS,
    MAX_SCOPES,
    MAX_SUITE_NAMESPACES,
    MAX_TOLERATIONS,
    Model,
    ObjectName,
    OptionalLabelValue,
    QUANTITY_PATTERN,
    Quantity,
    Resources,
    SecretKeyRef,
    Toleration,
    VERSION,
    resources,
)


def _known_release(name: str) -> str:
    known = catalogue().names
    if name not in known:
        raise ValueError(f"unknown release {name!r} (known: {', '.join(known)})")
    return name


# A release of api/releases.yaml (YYYY.MM).
ReleaseName = Annotated[str, Field(pattern=r"^[0-9]{4}\.[0-9]{2}$", max_length=7), AfterValidator(_known_release)]


# --------------------------------------------------------------------------------------------------
# Identity, monitoring


class OIDC(Model):
    """An OpenID Connect provider shared by the components (Docs, Synapse, the LLM gateway)."""

    issuer: HttpsUrl = Field(
        description="Issuer URL: https://<host>[:<port>][/<path>], no credentials, query or fragment."
    )
    client_id: str = Field(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")
    client_secret_ref: SecretKeyRef = Field(description="Secret and key holding the client secret.")
    scopes: list[Scope] = Field(default_factory=lambda: ["openid", "email", "profile"], max_length=MAX_SCOPES)

    def endpoint(self, suffix: str) -> str:
        return self.issuer.rstrip("/") + suffix


class Identity(Model):
    oidc: OIDC | None = None


class Monitoring(Model):
    """Switches for the monitoring objects the operator renders (they need the Prometheus Operator CRDs)."""

    service_monitors: bool = Field(False, description="Render ServiceMonitors/PodMonitors for the components.")
    prometheus_rules: bool = Field(
        False,
        description="Reserved: the alerts cover every suite from the operator's own PrometheusRule "
        "(manifests/monitoring/prometheusrule.yaml, installed with the operator); this switch renders nothing yet.",
    )


# --------------------------------------------------------------------------------------------------
# Components


class Federation(Model):
    enabled: bool = Field(True, description="Federate with the suite's other tenants (and extraDomains).")
    extra_domains: list[DnsName] = Field(
        default_factory=list, max_length=MAX_EXTRA_DOMAINS, description="Further Matrix domains to federate with."
    )


class Matrix(Model):
    """Synapse homeserver and Element Web."""

    enabled: bool = True
    image: ImageRef = pinned("synapse")
    element_image: ImageRef = pinned("element-web")
    replicas: int = Field(1, ge=0, le=1, description="Synapse's main process (0 or 1); see workers for the others.")
    element_replicas: int = Field(2, ge=0, le=20)
    media_storage: Quantity = "20Gi"
    max_upload_size: str = Field("100M", pattern=r"^[0-9]+[KMG]?$")
    federation: Federation = Field(default_factory=Federation)
    encryption_by_default: Literal["invite", "all", "off"] = Field(
        "invite", description="Which new rooms Synapse makes end-to-end encrypted at creation "
        "(encryption_enabled_by_default_for_room_type): invite, the private and invite-only ones (private_chat and "
        "trusted_private_chat presets); all, public ones too; off, none (the room's creator chooses).",
    )
    ingress_annotations: IngressAnnotations = ingress_annotations_field()  # Synapse, Element Web, .well-known
    postgres: Postgres = Field(default_factory=Postgres)
    resources: Resources = Field(
        default_factory=lambda: resources({"cpu": "500m", "memory": "1Gi"}, {"cpu": "2", "memory": "4Gi"})
    )
    workers: MatrixWorkers = Field(default_factory=MatrixWorkers)
    redis_image: ImageRef = Field(
        pinned("synapse-redis"), description="Redis for the workers' replication (size not monolith)."
    )
    router_image: ImageRef = Field(
        pinned("synapse-router"),
        description="nginx routing each path to its worker type (workers only).",
    )
    router_replicas: int = Field(2, ge=1, le=20, description="The router's replicas (workers only).")
    extra_config: dict[str, Any] = Field(
        default_factory=dict,
        description="Merged into homeserver.yaml; may not set a key the operator owns.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class Components(Model):
    matrix: Matrix = Field(default_factory=Matrix)
    jitsi: Jitsi = Field(default_factory=Jitsi)
    docs: Docs = Field(default_factory=Docs)
    llm: LLM = Field(default_factory=LLM)


COMPONENTS = ("matrix", "jitsi", "docs", "llm")


# --------------------------------------------------------------------------------------------------
# Tenants


class FineTuningQuota(Model):
    """The share of the FineTunes' training pods (ResourceQuota tenant-fine-tuning, scoped to the PriorityClass
    sovereign-suite-fine-tuning), on top of the tenant's other pods' share: training never spends serving's."""

    gpus: int = Field(2, ge=0, description="requests.<gpu resource> of the training pods (each run asks 1)")
    cpu: Quantity = Field("16", description="requests.cpu of the training pods (each run asks 4)")
    memory: Quantity = Field("256Gi", description="requests.memory of the training pods (each run asks the base "
                             "model's weights and 8Gi)")
    pods: int = Field(4, ge=0, description="training pods at once (one per running FineTune)")


class Quota(Model):
    """The tenant namespace's ResourceQuotas: its pods' compute but training's (tenant-serving, scoped to every
    PriorityClass but sovereign-suite-fine-tuning, class-less pods included), its storage (tenant-quota, unscoped)
    and training's share (tenant-fine-tuning)."""

    cpu: Quantity = Field("64", description="requests.cpu of the tenant's pods but training's")
    memory: Quantity = Field("256Gi", description="requests.memory of the tenant's pods but training's")
    storage: Quantity = Field("2Ti", description="requests.storage")
    gpus: int = Field(8, ge=0, description="requests.<gpu resource> (the cloud's GPU resource name) of the "
                      "tenant's pods but training's: serving's GPUs")
    pods: int = Field(200, ge=1, description="the tenant's pods but training's")
    fine_tuning: FineTuningQuota = Field(
        default_factory=FineTuningQuota,
        description="The FineTunes' training pods' own share, counted apart from the fields above (a running "
        "training never holds quota a serving replica needs, nor serving the training's).")


class Tenant(Model):
    country: Country
    cloud: ObjectName = Field(description="Name of a NationalCloud of the same country.")
    domain: DnsName | None = Field(
        None,
        description="The tenant's domain; default: <country>.<suite domain>. Immutable: it can be neither changed, "
        "nor added or removed after creation (Synapse's server_name).",
    )
    admin_group: AdminGroup | None = Field(
        None, description="Group given the ClusterRole sovereign-suite-tenant-admin in the tenant namespace; default "
        "<suite>-<cc>-admins. Not a system: group."
    )
    quota: Quota = Field(default_factory=Quota)
    fine_tune_namespaces: list[NamespaceGlob] | None = Field(
        None, max_length=MAX_SUITE_NAMESPACES,
        description="The namespaces whose FineTunes may train adapters of this tenant's models, on its cloud: names "
        "or globs ('*' any characters, '?' one), as a NationalCloud's suiteNamespaces. Absent: only the suite's "
        "own namespace. Each administration writes FineTunes in its own namespace, with no right on the suite.",
    )
    release: ReleaseName | None = Field(
        None, description="The tenant's release, overriding spec.release (e.g. to upgrade one country first).")
    components: dict[str, Any] = Field(
        default_factory=dict,
        description="Per-tenant overrides of spec.components (same shape; only the fields set are merged).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )

    backups: dict[str, Any] = Field(
        default_factory=dict,
        description="Per-tenant overrides of spec.backups (same shape; only the fields set are merged), e.g. its "
        "own cloud, schedule or encryption recipient.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )

    @field_validator("country")
    @classmethod
    def _known_country(cls, v: str) -> str:
        if v not in COUNTRIES:
            raise ValueError(f"{v!r} is not an ISO 3166-1 alpha-2 code of a supported country ({', '.join(COUNTRIES)})")
        return v

    @field_validator("components")
    @classmethod
    def _override_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(v) - set(COMPONENTS))
        if unknown:
            raise ValueError(f"unknown component(s) {', '.join(unknown)}; expected {', '.join(COMPONENTS)}")
        for name, val in v.items():
            if not isinstance(val, dict):
                raise ValueError(f"{name}: must be an object")
        return v


class SovereignSuiteSpec(Model):
    domain: DnsName = Field(description="The suite's base domain; tenants get <country>.<domain>. Immutable.")
    tenants: list[Tenant] = Field(min_length=1, max_length=32, description="One tenant per country.")
    release: ReleaseName | None = Field(
        None, description="The suite's release (api/releases.yaml): the tested image of every component; default the "
        "operator's current release. An image field set under components overrides it for that component only. "
        "Moving to another release is an ordered upgrade (docs/operations.md, Upgrades); what would lose data is "
        "refused.")
    components: Components = Field(default_factory=Components)
    identity: Identity = Field(default_factory=Identity)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    deletion_policy: Literal["Retain", "Delete"] = Field(
        "Retain", description="Retain keeps PVCs and generated Secrets (and their namespaces) on deletion."
    )
    paused: bool = Field(False, description="Stop all writes to the suite's children.")
    ingress_namespace: NamespaceName = Field(
        "ingress-nginx", description="Namespace of the ingress controller allowed through the NetworkPolicies."
    )
    network: Network = Field(
        default_factory=Network,
        description="Endpoints outside the cluster that tenant pods may reach, added to the NationalCloud's.",
    )
    backups: Backups = Field(
        default_factory=Backups,
        description="Backups of every tenant (off by default) to its country's object storage; a tenant's "
        "backups field overrides it.",
    )

    @field_validator("tenants")
    @classmethod
    def _unique_countries(cls, v: list[Tenant]) -> list[Tenant]:
        seen: dict[str, int] = {}
        for i, t in enumerate(v):
            if t.country in seen:
                raise ValueError(f"country {t.country} appears twice (tenants[{seen[t.country]}] and tenants[{i}])")
            seen[t.country] = i
        return v


class ObjectMeta(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(pattern=DNS_LABEL_RE.pattern, max_length=40)
    namespace: NamespaceName | None = None


class SovereignSuite(Model):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)

    api_version: Literal["sovereignsuite.io/v1alpha1"] = Field(API_VERSION, validation_alias=AliasChoices("apiVersion"))
    kind: Literal["SovereignSuite"] = "SovereignSuite"
    metadata: ObjectMeta
    spec: SovereignSuiteSpec
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name


# The status and the NationalCloud models live in their own modules (one concern each); they are re-exported
# here, the API's one import point. Imported last: they build on the models above.
from .cloud_models import (  # noqa: E402,F401
    GPU,
    CloudNativePGOperator,
    ClusterMeta,
    HostPortRange,
    KubeconfigSecretRef,
    NationalCloud,
    NationalCloudSpec,
)
from .status_models import (  # noqa: E402,F401
    ComponentStatus,
    Condition,
    ModelStatus,
    SovereignSuiteStatus,
    TenantStatus,
)
