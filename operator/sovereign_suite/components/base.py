"""What every component renderer shares: the render context, labels, placement, security context, templates,
and the declaration of generated Secrets.

A renderer is a pure function ``render(ctx) -> list[dict]`` (and optionally ``secrets(ctx) -> list[SecretSpec]``):
no I/O, no clock, no randomness, so the same input always gives byte-identical output.
"""

from __future__ import annotations

import functools
import hashlib
import json
from json.encoder import encode_basestring_ascii as _encode_str  # what json.dumps uses for a str
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence

import jinja2
import yaml

from ..api.derived_names import TENANT_HOST_PREFIXES
from ..api.kubenames import CONTROL_RE, label_value_from
from ..api.models import Components, NationalCloud, SovereignSuite, Tenant
from ..api.backups import Backups, ObjectStorage
from ..api.validation import (
    InputError,
    Problem,
    effective_backups,
    effective_components,
    namespace_of,
    tenant_domain,
)

if TYPE_CHECKING:
    from .llm.adapters import ServedAdapter

MANAGED_BY = "sovereign-suite-operator"
LABEL_SUITE = "sovereignsuite.io/suite"
LABEL_SUITE_NS = "sovereignsuite.io/suite-namespace"
LABEL_COUNTRY = "sovereignsuite.io/country"
LABEL_COMPONENT = "sovereignsuite.io/component"
LABEL_RETAINED = "sovereignsuite.io/retained"
REGION_LABEL = "topology.kubernetes.io/region"
MONITORING_API = "monitoring.coreos.com/v1"
CNPG_API = "postgresql.cnpg.io/v1"
# The Barman Cloud plugin of CloudNativePG (cloudnative-pg/plugin-barman-cloud): backups of cloudnative-pg databases
BARMAN_API = "barmancloud.cnpg.io/v1"
OPTIONAL_APIS = (MONITORING_API, CNPG_API, BARMAN_API)
ZONE_LABEL = "topology.kubernetes.io/zone"

try:  # the C loader is ~10x faster; fall back when PyYAML was built without libyaml
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader

try:
    # Parsing the rendered YAML is most of the render time with PyYAML (its constructor is Python code);
    # yaml-rs (Rust, Unlicense) is ~15x faster. tests/test_render.py checks both give the same objects.
    import yaml_rs as _yaml_rs
except ImportError:  # pragma: no cover - PyYAML alone still works
    _yaml_rs = None


def parse_documents(text: str) -> list[Any]:
    """The non-empty YAML documents of ``text`` (each rendered document is a mapping)."""
    if _yaml_rs is not None:
        docs = _yaml_rs.loads(text, parse_datetime=False)
        docs = [docs] if isinstance(docs, dict) else (docs or [])
    else:
        docs = list(yaml.load_all(text, Loader=_Loader))
    return [d for d in docs if d]


@dataclass(frozen=True)
class Peer:
    country: str
    domain: str
    namespace: str


@dataclass(frozen=True)
class RenderContext:
    """Everything a renderer may read: the suite, one tenant, its cloud, and the suite's other tenants."""

    suite: SovereignSuite
    tenant: Tenant
    cloud: NationalCloud
    components: Components  # the suite's components with the tenant's overrides merged
    peers: tuple[Peer, ...] = field(default=())  # the suite's other tenants
    # API groups/versions the target cluster serves beyond the built-in ones (e.g. "monitoring.coreos.com/v1");
    # the operator discovers them, offline render takes them from --api-versions (like `helm template -a`).
    capabilities: frozenset[str] = field(default=frozenset())
    # model name -> the GPU product capacity-aware placement chose (reconcile/gpu.py); empty offline, where a
    # model may land on any product it accepts
    placements: Mapping[str, str] = field(default_factory=dict)
    # the tenant's effective backups, and the NationalCloud whose objectStorage receives them (validated: same
    # country, declared) when they are enabled
    backups: Backups = field(default_factory=Backups)
    backup_cloud: NationalCloud | None = None
    # the LoRA adapters the tenant serves (components/llm/adapters.py); the FineTune controller gives them, none
    # otherwise
    adapters: tuple["ServedAdapter", ...] = field(default=())

    @property
    def object_storage(self) -> ObjectStorage | None:
        return self.backup_cloud.spec.object_storage if self.backup_cloud is not None else None

    def serves(self, api_version: str) -> bool:
        return api_version in self.capabilities

    @property
    def service_monitors(self) -> bool:
        """Render ServiceMonitors/PodMonitors: asked for in spec.monitoring and the Prometheus Operator is there."""
        return self.suite.spec.monitoring.service_monitors and self.serves(MONITORING_API)

    @property
    def namespace(self) -> str:
        return namespace_of(self.suite, self.tenant)

    @property
    def domain(self) -> str:
        return tenant_domain(self.suite, self.tenant)

    @property
    def country(self) -> str:
        return self.tenant.country.lower()

    @property
    def suite_name(self) -> str:
        return self.suite.name

    def host(self, sub: str) -> str:
        """Public host name of a service of this tenant, e.g. host('matrix') -> matrix.fr.suite.example.eu.
        Only the prefixes validation checks the length of (api/derived_names.py) exist."""
        if sub not in TENANT_HOST_PREFIXES:
            raise AssertionError(f"host prefix {sub!r} is not in TENANT_HOST_PREFIXES: its length is never checked")
        return f"{sub}.{self.domain}"

    # ---- labels ------------------------------------------------------------------------------
    def labels(self, component: str, part: str | None = None, version: str | None = None) -> dict[str, str]:
        labels = {
            "app.kubernetes.io/name": part or component,
            "app.kubernetes.io/instance": f"{self.suite_name}-{self.country}",
            "app.kubernetes.io/component": part or component,
            "app.kubernetes.io/part-of": "sovereign-suite",
            "app.kubernetes.io/managed-by": MANAGED_BY,
            LABEL_SUITE: self.suite_name,
            LABEL_COUNTRY: self.country,
            LABEL_COMPONENT: component,
        }
        if self.suite.metadata.namespace:
            labels[LABEL_SUITE_NS] = self.suite.metadata.namespace
        if version:
            labels["app.kubernetes.io/version"] = version  # a valid label value: see image_version
        return labels

    def selector(self, component: str, part: str | None = None) -> dict[str, str]:
        """The stable subset of labels used in selectors (never includes the version)."""
        return {
            "app.kubernetes.io/name": part or component,
            "app.kubernetes.io/instance": f"{self.suite_name}-{self.country}",
        }

    # ---- placement ---------------------------------------------------------------------------
    def region_affinity(self, extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Required node affinity pinning a pod to the tenant's cloud regions (data residency).

        ``extra``: further match expressions (e.g. a GPU product) that every node must also satisfy.
        """
        expressions = [{"key": REGION_LABEL, "operator": "In", "values": sorted(self.cloud.spec.regions)}]
        expressions += extra or []
        return {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": expressions}]
                }
            }
        }

    @property
    def storage_class(self) -> str | None:
        return self.cloud.spec.storage_class

    @property
    def ingress_class(self) -> str:
        return self.cloud.spec.ingress_class


def image_version(image: str) -> str | None:
    """The tag of an image reference as a valid app.kubernetes.io/version label value (None for a digest only).

    A tag may have 128 characters and end in '-' or '.', a label value may not: the value is cut at 63 and
    trimmed (``v1-`` gives ``v1``), so that any tag the registry accepts gives a label the API server accepts."""
    ref = image.split("@", 1)[0]
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:
        return None
    return label_value_from(tag)


def build_contexts(
    suite: SovereignSuite,
    clouds: dict[str, NationalCloud],
    capabilities: frozenset[str] | Mapping[str, frozenset[str]] = frozenset(),
    placements: Mapping[str, Mapping[str, str]] | None = None,
    adapters: Mapping[str, Sequence["ServedAdapter"]] | None = None,
) -> list[RenderContext]:
    """One context per tenant, in the order of spec.tenants. The suite must have passed check_suite.
    ``capabilities``: the optional APIs served, for every tenant, or per country (each tenant's own cluster).
    ``adapters``: country -> the LoRA adapters its tenant serves."""
    peers_all = [
        Peer(t.country.lower(), tenant_domain(suite, t), namespace_of(suite, t)) for t in suite.spec.tenants
    ]
    contexts = []
    for tenant, me in zip(suite.spec.tenants, peers_all):
        backups = effective_backups(suite, tenant)
        contexts.append(
            RenderContext(
                suite=suite,
                tenant=tenant,
                cloud=clouds[tenant.cloud],
                components=effective_components(suite, tenant),
                peers=tuple(p for p in peers_all if p is not me),
                capabilities=(capabilities.get(tenant.country, frozenset()) if isinstance(capabilities, Mapping)
                              else capabilities),
                placements=dict((placements or {}).get(tenant.country, {})),
                backups=backups,
                backup_cloud=clouds.get(backups.cloud or tenant.cloud) if backups.enabled else None,
                adapters=tuple((adapters or {}).get(tenant.country, ())),
            )
        )
    return contexts


# ---- security --------------------------------------------------------------------------------

def container_security(read_only_root: bool = True, user: int | None = None) -> dict[str, Any]:
    """The Pod Security "restricted" container context. ``read_only_root`` is False only for images that
    write outside their mounted volumes (named at each use)."""
    sc: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": read_only_root,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if user is not None:
        sc["runAsUser"] = user
        sc["runAsGroup"] = user
    return sc


def pod_security(user: int = 1000, fs_group: int | None = None) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": user,
        "runAsGroup": user,
        "fsGroup": fs_group if fs_group is not None else user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


# ---- owned keys in extraConfig -----------------------------------------------------------------

def merge_extra_config(owned: dict[str, Any], extra: dict[str, Any], path: str) -> dict[str, Any]:
    """Merge a user's extraConfig over the operator's config. A key the operator owns is an error."""
    clash = sorted(set(owned) & set(extra))
    if clash:
        raise InputError(
            Problem(f"{path}.{k}", "is set by the operator and cannot be overridden in extraConfig") for k in clash
        )
    merged = dict(owned)
    merged.update(extra)
    return merged


# ---- generated secrets ---------------------------------------------------------------------------

Generator = Literal["random", "synapse-signing-key", "tls-ca-cert", "tls-ca-key", "tls-cert", "tls-key"]


@dataclass(frozen=True)
class SecretKey:
    """How one key of a generated Secret is made: ``random`` (URL-safe, ``length`` characters),
    ``synapse-signing-key`` (an ed25519 key in Synapse's own signing-key file format), or a part of a tenant's
    TLS material (tlsgen.py): ``tls-ca-cert``/``tls-ca-key`` (the CA, ``subject`` its common name) and
    ``tls-cert``/``tls-key`` (a server's certificate for ``hosts``, signed by the CA of the same Secret; the pair
    shares the key name's stem, ``<server>.crt`` and ``<server>.key``); with ``client`` the certificate is a
    client's (extended key usage clientAuth, ``hosts[0]`` its common name) for a server that verifies its clients."""

    generator: Generator = "random"
    length: int = 48
    subject: str = ""
    hosts: tuple[str, ...] = ()
    client: bool = False


@dataclass(frozen=True)
class SecretSpec:
    """A Secret the operator creates once and never regenerates (keys added later are filled in)."""

    name: str
    namespace: str
    component: str
    keys: dict[str, SecretKey]
    labels: dict[str, str] = field(default_factory=dict)


# ---- templates ----------------------------------------------------------------------------------

def _to_json(value: Any) -> str:
    # the filter runs ~1,600 times per four-country render: scalars skip json.dumps' set-up
    if isinstance(value, str):
        return _encode_str(value)
    if value is True or value is False or value is None:
        return "true" if value else ("false" if value is False else "null")
    if type(value) is int:
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def nginx_quoted(value: Any) -> str:
    """``value`` as the inside of a double-quoted nginx string (the template writes the quotes): ``;``, ``{``,
    ``}`` and whitespace are then plain characters, ``"`` and ``\\`` are escaped. nginx expands ``$name``
    even inside quotes and has no escape for it, so a ``$`` (or a control character, which would end a header)
    is refused: validation must have rejected such a value already, this is the last guard."""
    text = str(value)
    if "$" in text or CONTROL_RE.search(text):
        raise ValueError(f"cannot write {text!r} into an nginx configuration")
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _to_yaml(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=True, default_flow_style=False).rstrip("\n")


@functools.lru_cache(maxsize=None)
def environment(package_dir: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(package_dir) / "templates")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        auto_reload=False,  # templates ship with the package: no stat() per render
    )
    env.filters["tojson"] = _to_json  # JSON is valid YAML: safe for any value, on one line
    env.filters["toyaml"] = _to_yaml
    env.filters["nginx"] = nginx_quoted  # inside "..." in the nginx configurations (*.conf.j2)
    env.filters["sha256"] = lambda s: hashlib.sha256(str(s).encode()).hexdigest()
    return env


def render_template(package_dir: str, name: str, **values: Any) -> list[dict[str, Any]]:
    """Render a YAML template (one or more documents) and parse it."""
    return parse_documents(environment(package_dir).get_template(name).render(**values))


def render_text(package_dir: str, name: str, **values: Any) -> str:
    return environment(package_dir).get_template(name).render(**values)


def short_hash(*parts: str, length: int = 8) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:length]


def _sorted(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _sorted(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [_sorted(v) for v in obj]
    return obj


def dump_yaml(obj: Any) -> str:
    """A configuration file (homeserver.yaml, the gateway's config) as YAML, keys sorted."""
    if _yaml_rs is not None:
        return _yaml_rs.dumps(_sorted(obj))
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False, width=120)

