"""Secrets a suite references, and the rules that keep a reference from overwriting a Secret the operator makes.

The operator copies each referenced Secret (OIDC client secret, S3 credentials, Hugging Face token, external
database passwords) from the suite's namespace into every tenant namespace under the same name. A reference
named like a Secret the renderers produce there (``docs-secrets``, ``synapse-keys``, ``<host>-tls``, a
database's password Secret, CloudNativePG's ``<cluster>-app``) would have its copy overwrite that Secret, or
be overwritten by it: such a name is refused at validation, naming the field.

Pure functions: ``collision_problems`` runs in ``render_suite`` (the set of produced names comes from the
render); ``opt_in_problems`` needs the live Secrets and is for the reconcile pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .backups import Backups, ObjectStorage
from .models import Components, SovereignSuite, Tenant

# The label a Secret in the suite's namespace must carry to be read and copied by the operator: a suite editor
# can then only hand over Secrets their owner marked for it, not any Secret of the namespace.
OPT_IN_LABEL = "sovereignsuite.io/referenceable"
# The label a member cluster's kubeconfig Secret must carry to be used as that member's credentials (written by
# `cloud join`). Distinct from OPT_IN_LABEL: a Secret carrying it is never copied into a tenant, and a
# NationalCloud cannot borrow an unlabelled kubeconfig (e.g. Cluster API's <cluster>-kubeconfig).
MEMBER_CREDENTIALS_LABEL = "sovereignsuite.io/member-credentials"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
OPERATOR = "sovereign-suite-operator"


@dataclass(frozen=True)
class SecretReference:
    name: str
    path: str  # the field the user wrote, e.g. spec.tenants[1].components.docs.s3.credentialsSecretRef
    component: str
    # False: copied when its owner made it referenceable, never a problem of the suite when not (the FineTunes'
    # storage credentials: an administration's FineTune must not stop its suite; the FineTune says why instead)
    required: bool = True


def written_path(tenant: Tenant, index: int, component: str, *fields: str) -> str:
    """``spec.components.<component>.<fields>``, or the tenant's override path when the tenant sets the field."""
    node: Any = tenant.components.get(component) or {}
    for field in fields:
        if not isinstance(node, dict) or field not in node:
            return f"spec.components.{component}." + ".".join(fields)
        node = node[field]
    return f"spec.tenants[{index}].components.{component}." + ".".join(fields)


def secret_references(suite: SovereignSuite, index: int, tenant: Tenant, comps: Components,
                      backups: Backups | None = None, storage: ObjectStorage | None = None,
                      fine_tuning: ObjectStorage | None = None) -> list[SecretReference]:
    """The Secrets the tenant's enabled components (and its backups, with the object storage they go to) read
    from the suite's namespace, with the fields naming them. ``fine_tuning``: the tenant cloud's object storage
    when the tenant trains or serves LoRA adapters (its FineTunes' training pods and vLLM's adapter loader mount
    its credentials Secret, backups on or off); None: it does neither."""
    refs: list[SecretReference] = []
    if backups is not None and backups.enabled:
        if storage is not None:
            cloud = backups.cloud or tenant.cloud
            refs.append(SecretReference(storage.credentials_secret_ref,
                                        f"NationalCloud/{cloud}.spec.objectStorage.credentialsSecretRef", "backup"))
        recipient = backups.encryption_recipient_secret_ref
        if recipient is not None and backups.include.secrets:
            path = (f"spec.tenants[{index}].backups" if "encryptionRecipientSecretRef" in tenant.backups
                    else "spec.backups")
            refs.append(SecretReference(recipient.name, f"{path}.encryptionRecipientSecretRef.name", "backup"))
    if fine_tuning is not None and fine_tuning.credentials_secret_ref not in {r.name for r in refs}:
        refs.append(SecretReference(fine_tuning.credentials_secret_ref,
                                    f"NationalCloud/{tenant.cloud}.spec.objectStorage.credentialsSecretRef",
                                    "finetune", required=False))
    oidc = suite.spec.identity.oidc
    if oidc and comps.docs.enabled:
        refs.append(SecretReference(oidc.client_secret_ref.name, "spec.identity.oidc.clientSecretRef.name", "docs"))
    if comps.docs.enabled and comps.docs.s3:
        refs.append(SecretReference(comps.docs.s3.credentials_secret_ref,
                                    written_path(tenant, index, "docs", "s3", "credentialsSecretRef"), "docs"))
    if comps.llm.enabled and comps.llm.hugging_face_token_secret_ref:
        path = written_path(tenant, index, "llm", "huggingFaceTokenSecretRef", "name")
        refs.append(SecretReference(comps.llm.hugging_face_token_secret_ref.name, path, "llm"))
    for name in ("matrix", "docs"):
        comp = getattr(comps, name)
        if comp.enabled and comp.postgres.mode == "external" and comp.postgres.password_secret_ref:
            path = written_path(tenant, index, name, "postgres", "passwordSecretRef", "name")
            refs.append(SecretReference(comp.postgres.password_secret_ref.name, path, name))
    return refs


def collision_problems(refs: list[SecretReference], produced: Mapping[str, str]) -> list[tuple[str, str]]:
    """(field path, message) for each reference named like a Secret the renderers produce in the tenant
    namespace; ``produced``: Secret name -> what makes it (e.g. "generated by the operator for matrix")."""
    return [
        (ref.path, f"{ref.name!r} is the name of a Secret {produced[ref.name]} in the tenant namespace: the copy of "
                   "the referenced Secret would replace it (or be replaced by it); rename the referenced Secret")
        for ref in refs if ref.name in produced
    ]


def opt_in_problems(
    refs: list[SecretReference], live_labels: Mapping[str, Mapping[str, str] | None], namespace: str
) -> list[tuple[str, str]]:
    """For the reconcile pipeline, once it has read the referenced Secrets from the suite's namespace
    (``live_labels``: name -> the Secret's labels, None when it does not exist): a referenced Secret must carry
    ``sovereignsuite.io/referenceable: "true"`` and must not be one the operator manages itself."""
    out: list[tuple[str, str]] = []
    for ref in refs:
        labels = live_labels.get(ref.name)
        if labels is None:
            continue  # a missing Secret is reported by the pipeline (MissingSecret)
        if labels.get(MANAGED_BY_LABEL) == OPERATOR:
            out.append((ref.path, f"Secret {namespace}/{ref.name} is managed by the operator and cannot be referenced"))
        elif labels.get(MEMBER_CREDENTIALS_LABEL) == "true":
            out.append((ref.path, f"Secret {namespace}/{ref.name} holds a member cluster's credentials "
                                  f"({MEMBER_CREDENTIALS_LABEL}) and cannot be referenced"))
        elif labels.get(OPT_IN_LABEL) != "true":
            out.append((ref.path, f"Secret {namespace}/{ref.name} is not labelled {OPT_IN_LABEL}=\"true\": label it "
                                  "to let the operator copy it into the tenant namespaces"))
    return out
