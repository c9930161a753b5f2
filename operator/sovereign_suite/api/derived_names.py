"""Names the renderers derive from user input (tenant namespaces, public hosts, TLS Secret names, label values),
checked against Kubernetes' limits at validation time.

A 246-character ``spec.domain`` is a valid DNS name, but ``matrix.fr.<domain>-tls`` is then a 258-character
Secret name that the API server rejects at apply time, on an object the user never wrote. Each derived name
here carries the field that makes it, so the error names what to shorten.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .kubenames import dns1123_label_problem, dns1123_subdomain_problem, label_value_problem
from .models import SovereignSuite, Tenant

# The public hosts of a tenant: <prefix>.<tenant domain> (RenderContext.host refuses any other prefix, so a new
# host must be added here and is checked with the others). The tenant domain itself serves the Matrix
# well-known files.
TENANT_HOST_PREFIXES = ("matrix", "chat", "meet", "docs", "llm")
TLS_SECRET_SUFFIX = "-tls"  # the Ingresses' TLS Secret: <host>-tls


def tenant_domain(suite: SovereignSuite, tenant: Tenant) -> str:
    return tenant.domain or f"{tenant.country.lower()}.{suite.spec.domain}"


def namespace_of(suite: SovereignSuite, tenant: Tenant) -> str:
    return f"{suite.name}-{tenant.country.lower()}"


def tls_secret_name(host: str) -> str:
    return f"{host}{TLS_SECRET_SUFFIX}"


@dataclass(frozen=True)
class DerivedName:
    what: str  # e.g. "TLS Secret name"
    value: str
    problem_of: Callable[[str], str | None]  # the Kubernetes rule the value must follow
    field: str  # the field path that makes the value (what the user must change)


def tenant_hosts(suite: SovereignSuite, tenant: Tenant) -> list[str]:
    domain = tenant_domain(suite, tenant)
    return [f"{prefix}.{domain}" for prefix in TENANT_HOST_PREFIXES] + [domain]


def derived_names(suite: SovereignSuite, index: int, tenant: Tenant) -> list[DerivedName]:
    """Every name derived for one tenant, longest first within a kind (the first problem is the worst)."""
    domain_field = f"spec.tenants[{index}].domain" if tenant.domain else "spec.domain"
    namespace = namespace_of(suite, tenant)
    names = [
        DerivedName("tenant namespace", namespace, dns1123_label_problem, "metadata.name"),
        DerivedName("app.kubernetes.io/instance label", namespace, label_value_problem, "metadata.name"),
    ]
    hosts = sorted(tenant_hosts(suite, tenant), key=len, reverse=True)
    names += [DerivedName("TLS Secret name", tls_secret_name(h), dns1123_subdomain_problem, domain_field) for h in hosts]
    names += [DerivedName("Ingress host", h, dns1123_subdomain_problem, domain_field) for h in hosts]
    return names


def _shown(value: str) -> str:
    return value if len(value) <= 60 else f"{value[:24]}...{value[-24:]}"


def derived_name_problems(suite: SovereignSuite) -> list[tuple[str, str]]:
    """(field path, message) for each field that makes an invalid name; one message per field (its worst)."""
    out: dict[str, str] = {}
    for index, tenant in enumerate(suite.spec.tenants):
        for name in derived_names(suite, index, tenant):
            if name.field in out:
                continue
            problem = name.problem_of(name.value)
            if problem:
                out[name.field] = (f"too long or invalid: it gives the {name.what} {_shown(name.value)!r}, which "
                                   f"Kubernetes rejects: {problem}")
    return list(out.items())
