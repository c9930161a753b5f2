"""Parsing and validation of user input, with one clear line per problem naming the field path.

Two layers:
- ``parse_*``: YAML and schema (types, unknown fields, patterns) through the pydantic models;
- ``check_suite``: semantic rules that need more than one object (the tenant's cloud exists and is of the
  same country, domains are unique, settings a component needs are present).
Both raise or return ``Problem`` objects; nothing here touches a cluster.
"""

from __future__ import annotations

import copy
import fnmatch
from typing import Any, Iterable

import yaml
from pydantic import ValidationError

from .common import OPERATOR_NAMESPACE, FieldProblem
from .derived_names import derived_name_problems, namespace_of, tenant_domain
from .egress_checks import overlap_problems
from .fieldtypes import PATTERN_MEANINGS
from .backups import Backups, RestoreFrom, backup_id_time, point_in_time
from .releases import Release, catalogue, explicit_images, release_images
from .models import (
    COMPONENTS,
    DNS_LABEL_RE,
    DNS_NAME_RE,
    EXTENDED_RESOURCE_PATTERN,
    QUANTITY_PATTERN,
    Components,
    NationalCloud,
    SovereignSuite,
    Tenant,
)

_PATTERNS = {
    DNS_NAME_RE.pattern: "a DNS name (lower-case labels of letters, digits and '-', joined by dots, e.g. suite.example.eu)",
    DNS_LABEL_RE.pattern: "a DNS label (lower-case letters, digits and '-', at most 63 characters)",
    QUANTITY_PATTERN: "a Kubernetes quantity (e.g. 500m, 2, 10Gi)",
    r"^[A-Z]{2}$": "an ISO 3166-1 alpha-2 country code in upper case (e.g. FR)",
    EXTENDED_RESOURCE_PATTERN: "an extended resource name such as nvidia.com/gpu or nvidia.com/mig-1g.10gb",
    **PATTERN_MEANINGS,
}


Problem = FieldProblem  # the name the CLI and the operator use


class InputError(Exception):
    """Bad input: carries every problem found, each naming its field path."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def _loc(loc: tuple[Any, ...], prefix: str) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith(("function-", "union[")):
            continue
        elif str(part) in ("str", "int", "float", "bool", "list", "dict", "constrained-str", "[key]"):
            continue  # the member of a str|int union pydantic tried: not a field
        else:
            path = f"{path}.{part}" if path else str(part)
    return path or "(document)"


def problems_from(err: ValidationError, prefix: str = "") -> list[Problem]:
    out: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for e in err.errors(include_url=False):
        loc = e["loc"]
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        elif e["type"] == "missing":
            msg = "required field is missing"
        elif e["type"] == "literal_error":
            msg = f"{msg} (got {e.get('input')!r})"
        elif e["type"] == "string_pattern_mismatch":
            what = _PATTERNS.get(e["ctx"]["pattern"], f"a value matching {e['ctx']['pattern']}")
            msg = f"{e.get('input')!r} is not {what}"
        key = (_loc(loc, prefix), msg)
        if key not in seen:
            seen.add(key)
            out.append(Problem(*key))
    return out


def load_documents(text: str, source: str) -> list[dict[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError([Problem(source, f"invalid YAML: {where}{problem}")]) from None
    for i, d in enumerate(docs):
        if not isinstance(d, dict):
            raise InputError([Problem(f"{source}[{i}]", f"expected a Kubernetes object, got {type(d).__name__}")])
    return docs


def parse_suite(doc: dict[str, Any]) -> SovereignSuite:
    try:
        suite = SovereignSuite.model_validate(doc)
    except ValidationError as err:
        raise InputError(problems_from(err)) from None
    problems = []
    for i, tenant in enumerate(suite.spec.tenants):
        for effective in (effective_components, effective_backups):
            try:
                effective(suite, tenant)
            except InputError as err:
                problems += err.problems
    if problems:
        raise InputError(problems)
    return suite


def parse_cloud(doc: dict[str, Any]) -> NationalCloud:
    try:
        return NationalCloud.model_validate(doc)
    except ValidationError as err:
        name = (doc.get("metadata") or {}).get("name", "?") if isinstance(doc, dict) else "?"
        raise InputError(problems_from(err, prefix=f"NationalCloud/{name}")) from None


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = _merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(override)


def tenant_release(suite: SovereignSuite, tenant: Tenant) -> Release:
    """The release a tenant runs: its own ``release``, the suite's, or the current one."""
    return catalogue().release(tenant.release or suite.spec.release)


def effective_components(suite: SovereignSuite, tenant: Tenant) -> Components:
    """The suite's components with the tenant's overrides deep-merged over them (lists are replaced), each image
    the user did not set taken from the tenant's release (api/releases.py)."""
    release = tenant_release(suite, tenant)
    current = release is catalogue().current  # its pins are the models' defaults
    if not tenant.components and current:
        return suite.spec.components
    base = suite.spec.components.model_dump(by_alias=True, exclude_none=True, mode="json")
    merged = _merge(base, tenant.components)
    if not current:
        merged = release_images(merged, [explicit_images(suite.spec.components), tenant.components], release)
    try:
        return Components.model_validate(merged)
    except ValidationError as err:
        index = suite.spec.tenants.index(tenant)
        raise InputError(problems_from(err, prefix=f"spec.tenants[{index}].components")) from None


def effective_backups(suite: SovereignSuite, tenant: Tenant) -> Backups:
    """The suite's backups with the tenant's overrides deep-merged over them."""
    if not tenant.backups:
        return suite.spec.backups
    base = suite.spec.backups.model_dump(by_alias=True, exclude_none=True, mode="json")
    try:
        return Backups.model_validate(_merge(base, tenant.backups))
    except ValidationError as err:
        index = suite.spec.tenants.index(tenant)
        raise InputError(problems_from(err, prefix=f"spec.tenants[{index}].backups")) from None


def backup_field(tenant: Tenant, index: int, name: str) -> str:
    """The path of a backups field as the user wrote it: the tenant's override, or the suite's."""
    return f"spec.tenants[{index}].backups.{name}" if name in tenant.backups else f"spec.backups.{name}"


# The end of the message refusing a backup target (or a restore source) outside the tenant's country: the
# operator gives it its own reason (BackupOutsideCountry), not UnknownCloud.
OUTSIDE_COUNTRY = "tenant's backups must stay in its own country"


def backup_problems(suite: SovereignSuite, clouds: dict[str, NationalCloud], index: int, tenant: Tenant,
                    namespace: str, operator_namespace: str) -> list[Problem]:
    """A tenant's backups go to an object storage of its own country, declared, and its Secrets are encrypted;
    a tenant restored from a backup reads it from there (``restoreFrom``: the same checks, backups on or not)."""
    backups = effective_backups(suite, tenant)
    if not backups.enabled and backups.restore_from is None:
        return []
    out: list[Problem] = []
    name = backups.cloud or tenant.cloud
    path = backup_field(tenant, index, "cloud") if backups.cloud else f"spec.tenants[{index}].cloud"
    target = clouds.get(name)
    if target is None:
        if backups.cloud:  # the tenant's own cloud missing is reported once, on spec.tenants[i].cloud
            out.append(Problem(path, f"NationalCloud {name!r} not found (known: {', '.join(sorted(clouds)) or 'none'})"))
    elif target.spec.country != tenant.country:
        out.append(Problem(path, f"NationalCloud {name!r} is in {target.spec.country}, not in {tenant.country}: a "
                                 f"{OUTSIDE_COUNTRY}"))
    elif backups.cloud and namespace and not cloud_admits(target, namespace, operator_namespace):
        out.append(Problem(path, f"NationalCloud {name!r} does not admit suites of namespace {namespace!r}"))
    elif target.spec.object_storage is None:
        out.append(Problem(path, f"NationalCloud {name!r} declares no spec.objectStorage: backups need the "
                                 "country's object storage"))
    restore = backups.restore_from
    if restore is not None and backups.include.secrets and restore.identity_secret_ref is None:
        out.append(Problem(backup_field(tenant, index, "restoreFrom") + ".identitySecretRef",
                           "required when include.secrets is true: the restored Secrets are decrypted with the "
                           "country's age identity (AGE-SECRET-KEY-1...)"))
    if restore is not None:
        rpath = backup_field(tenant, index, "restoreFrom")
        if not backups.enabled:
            out.append(Problem(rpath, "needs backups.enabled: the restore reads the backups' object storage and "
                                      "configuration, and a restored tenant is backed up again"))
        out += cloudnative_pg_restore_problems(rpath, restore, effective_components(suite, tenant),
                                               backups.include.databases)
    if not backups.enabled:
        return out
    if backups.include.secrets and backups.encryption_recipient_secret_ref is None:
        out.append(Problem(backup_field(tenant, index, "encryptionRecipientSecretRef"),
                           "required when include.secrets is true: the generated Secrets are never stored in "
                           "clear (an age recipient, age1...)"))
    return out


def cloudnative_pg_restore_problems(path: str, restore: RestoreFrom, comps: Any, databases: bool) -> list[Problem]:
    """``pointInTime`` and ``serverNames`` concern CloudNativePG databases only (recovered from their base backups
    and WAL archive); an embedded database is restored from a pg_dump, which has no point in time."""
    out: list[Problem] = []
    modes = {n: getattr(comps, n).postgres.mode for n in ("matrix", "docs") if getattr(comps, n).enabled}
    if restore.point_in_time is not None and not databases:
        out.append(Problem(f"{path}.pointInTime", "include.databases is false: no database is backed up nor "
                                                  "restored, so there is no point in time to recover to"))
    elif restore.point_in_time is not None:
        others = [f"{n}'s is {m}" for n, m in modes.items() if m != "cloudnative-pg"]
        if others:
            out.append(Problem(f"{path}.pointInTime", f"only a cloudnative-pg database has a point in time to "
                               f"recover to, and {', '.join(others)} (a pg_dump backup holds one instant: name its "
                               "backup id instead)"))
        elif restore.backup != "latest" and backup_id_time(restore.backup) > point_in_time(restore.point_in_time):
            out.append(Problem(f"{path}.backup", f"{restore.backup} is after pointInTime {restore.point_in_time}: "
                               "the media and Secrets would be newer than the databases (name the newest backup "
                               "at or before that instant)"))
    for name in ("matrix", "docs"):
        if restore.server_names is not None and getattr(restore.server_names, name) is not None \
                and modes.get(name) != "cloudnative-pg":
            out.append(Problem(f"{path}.serverNames.{name}", f"the {name} database is "
                               f"{modes.get(name, 'not enabled')}, not cloudnative-pg: it has no Barman server"))
    return out


def cloud_admits(cloud: NationalCloud, namespace: str, operator_namespace: str) -> bool:
    """Whether suites of ``namespace`` may place tenants on ``cloud``: its ``suiteNamespaces`` (names or globs:
    '*' any run of characters, '?' one), or, absent, the operator's own namespace only. As Argo CD decides which
    namespaces' Applications may use an AppProject (argo-cd pkg/apis/application/v1alpha1/app_project_types.go
    IsAppNamespacePermitted; util/glob), but the operator's namespace is allowed by default only, not always: a
    cloud that lists namespaces lists all of them."""
    patterns = cloud.spec.suite_namespaces
    if patterns is None:
        return namespace == operator_namespace
    return any(fnmatch.fnmatchcase(namespace, p) for p in patterns)


def check_suite(suite: SovereignSuite, clouds: dict[str, NationalCloud],
                operator_namespace: str = OPERATOR_NAMESPACE) -> list[Problem]:
    """Semantic rules across objects. Returns every problem (empty list: the suite can be rendered).
    ``operator_namespace``: the operator's own namespace, the one a cloud without ``suiteNamespaces`` admits."""
    problems: list[Problem] = []
    domains: dict[str, str] = {}
    namespace = suite.metadata.namespace or ""
    if not namespace:
        problems.append(Problem("metadata.namespace", "required: the suite's namespace decides which NationalClouds "
                                "it may use (their spec.suiteNamespaces)"))
    for i, tenant in enumerate(suite.spec.tenants):
        path = f"spec.tenants[{i}]"
        cloud = clouds.get(tenant.cloud)
        if cloud is None:
            known = ", ".join(sorted(clouds)) or "none"
            problems.append(Problem(f"{path}.cloud", f"NationalCloud {tenant.cloud!r} not found (known: {known})"))
        elif namespace and not cloud_admits(cloud, namespace, operator_namespace):
            allowed = (f"its spec.suiteNamespaces {cloud.spec.suite_namespaces}" if cloud.spec.suite_namespaces
                       is not None else f"without spec.suiteNamespaces only the operator's namespace "
                       f"{operator_namespace!r}")
            problems.append(Problem(f"{path}.cloud", f"NationalCloud {tenant.cloud!r} does not admit suites of "
                                    f"namespace {namespace!r} ({allowed})"))
        elif cloud.spec.country != tenant.country:
            problems.append(
                Problem(
                    f"{path}.cloud",
                    f"NationalCloud {tenant.cloud!r} is in {cloud.spec.country}, not in {tenant.country}: "
                    "a tenant's data must stay in its own country",
                )
            )
        domain = tenant_domain(suite, tenant)
        if domain in domains:
            problems.append(Problem(f"{path}.domain", f"domain {domain} is already used by {domains[domain]}"))
        domains[domain] = f"spec.tenants[{i}]"
        comps = effective_components(suite, tenant)
        cpath = f"{path}.components" if tenant.components else "spec.components"
        if comps.docs.enabled:
            if comps.docs.s3 is None:
                problems.append(Problem(f"{cpath}.docs.s3", "required when docs is enabled (S3 is external)"))
            if suite.spec.identity.oidc is None:
                problems.append(Problem("spec.identity.oidc", "required when docs is enabled (Docs signs users in with OIDC)"))
        if comps.llm.enabled and not comps.llm.models:
            problems.append(Problem(f"{cpath}.llm.models", "at least one model is required when llm is enabled"))
        problems += backup_problems(suite, clouds, i, tenant, namespace, operator_namespace)
    problems += [Problem(path, message) for path, message in derived_name_problems(suite)]
    problems += [Problem(f.path, f.message) for f in overlap_problems(suite, clouds)]  # egress vs the cluster
    return problems


__all__ = [
    "COMPONENTS",
    "InputError",
    "Problem",
    "check_suite",
    "cloud_admits",
    "effective_backups",
    "effective_components",
    "load_documents",
    "namespace_of",
    "parse_cloud",
    "parse_suite",
    "problems_from",
    "tenant_domain",
]
