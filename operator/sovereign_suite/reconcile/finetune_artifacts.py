"""Deleting a FineTune's artifacts in its country's object storage (``spec.deletionPolicy: Delete``;
docs/llm-finetuning.md, "The controller", Deletion).

What is deleted is what the run wrote and nothing else: every object under the FineTune's adapter prefix
``fine-tuning/<namespace>/<name>/adapter/`` (the trainer's ``--output``: the adapter files and ``result.json``).
The dataset is never deleted, even when it lies beside the adapter (``fine-tuning/<namespace>/<name>/x.jsonl``),
and neither is another FineTune's prefix: ``refusal`` guards the prefix (it must be this FineTune's own adapter
prefix, never a parent, a sibling or a path with ``.``/``..``/empty segments), and ``delete_prefix`` skips a key
that is any known FineTune's dataset or that a server could read as a path escaping the prefix.

The operator does it itself, with the bucket's credentials read from the suite's namespace, as it reads the
bucket for a restore (restore_secrets.py): the values are held for the call only, never logged. Every failure is
a value (a Problem), which the worker turns into a condition of the FineTune and a retry with backoff; the
finalizer stays until the deletion succeeded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..api.backups import ObjectStorage
from ..api.derived_names import namespace_of
from ..api.finetune_models import split_s3_uri
from ..api.validation import InputError, effective_components, parse_suite
from ..components.llm.adapters import loader_config_name
from .finetune_checks import namespace_prefix
from .finetune_serving import is_served, served_name
from .finetune_store import suite_of_body
from .kube import ApiError
from .conditions import merge_conditions
from .problems import ObjectKey, Problem, Severity, degraded, from_api_error, stalled
from .restore_secrets import secret_value
from .targets import REMOTE, Target

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter/"  # components/finetune adapter_uri: the trainer's --output under the FineTune's prefix
# Problems of the deletion, in the FineTune's conditions (Ready=False; Stalled=True for what needs a person)
FAILED = "ArtifactDeletionFailed"  # the storage refused or did not answer: retried with backoff
REFUSED = "ArtifactDeletionRefused"  # the guard refused the prefix or a key: never retried blindly
UNKNOWN = "ArtifactStorageUnknown"  # the suite, tenant, cloud or its objectStorage is gone: which bucket?
SERVED = "AdapterStillServed"  # the tenant's serving still lists the adapter: waited for, then deleted


def adapter_prefix(namespace: str, name: str) -> str:
    """The prefix a FineTune's run writes to (components/finetune adapter_uri, without the bucket)."""
    return f"{namespace_prefix(namespace)}{name}/{ADAPTER_DIR}"


def _bad_segments(path: str) -> bool:
    """A key or prefix with an empty, ``.`` or ``..`` segment: a server or proxy that normalises paths could
    read it as another object's."""
    parts = path.rstrip("/").split("/")
    return any(p in ("", ".", "..") for p in parts)


def refusal(prefix: str, namespace: str, name: str) -> str | None:
    """Why ``prefix`` may not be deleted as the artifacts of FineTune ``namespace/name``; None: it may. Only the
    FineTune's own adapter prefix passes: a parent (the namespace's, the root), a sibling (another FineTune's, one
    whose name begins with this one's), a prefix without its trailing slash (which would also match
    ``<name>x/...``) and any path with empty, ``.`` or ``..`` segments are refused."""
    own = adapter_prefix(namespace, name)
    if not prefix.endswith("/"):
        return f"prefix {prefix!r} does not end with '/': it would also match other FineTunes' keys"
    if _bad_segments(prefix):
        return f"prefix {prefix!r} has an empty, '.' or '..' segment"
    if prefix != own:
        return f"prefix {prefix!r} is not FineTune {namespace}/{name}'s own artifacts prefix {own!r}"
    return None


@dataclass
class Deleted:
    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # under the prefix but protected (a dataset) or unsafe


class Refused(Exception):
    """The guard refused the deletion (refusal): nothing was deleted."""


def delete_prefix(client: Any, prefix: str, namespace: str, name: str, protected: Iterable[str] = ()) -> Deleted:
    """Delete every object under ``prefix`` (FineTune ``namespace/name``'s own adapter prefix, else Refused) but
    the ``protected`` keys (the datasets of the FineTunes the operator knows) and keys with unsafe segments.
    ``client``: backup/s3.py Client (list, delete). The storage's errors (S3Error, OSError) are raised to the
    caller; what was deleted before one stays deleted, and a retry deletes the rest."""
    why = refusal(prefix, namespace, name)
    if why is not None:
        raise Refused(why)
    keep = set(protected)
    out = Deleted()
    for key, _ in list(client.list(prefix)):
        if not key.startswith(prefix) or key in keep or _bad_segments(key[len(prefix):]) or _bad_segments(key):
            out.kept.append(key)
            continue
        client.delete(key)
        out.deleted.append(key)
    return out


def dataset_keys(bodies: Iterable[dict[str, Any]], bucket: str) -> set[str]:
    """The dataset keys in ``bucket`` of the FineTunes the operator knows (never deleted as artifacts)."""
    out = set()
    for body in bodies:
        uri = ((body.get("spec") or {}).get("dataset") or {}).get("uri")
        if not isinstance(uri, str) or not uri.startswith("s3://"):
            continue
        b, key = split_s3_uri(uri)
        if b == bucket:
            out.add(key)
    return out


def delete_artifacts(storage: ObjectStorage, read_secret: Callable[[str, str], dict[str, Any] | None],
                     suite_ns: str, namespace: str, name: str, protected: Iterable[str],
                     connect: Any = None) -> Deleted | Problem:
    """Delete FineTune ``namespace/name``'s artifacts in ``storage``, with the credentials Secret of the suite's
    namespace (``read_secret(namespace, name)``; it must be labelled referenceable). The result, or the Problem:
    the Secret missing or not referenceable (Stalled: a person must fix it), the guard's refusal (Stalled),
    the storage's error (ArtifactDeletionFailed, Degraded: retried). ``connect``: makes the client (tests)."""

    values = [secret_value(read_secret, suite_ns, storage.credentials_secret_ref, k,
                           "objectStorage.credentialsSecretRef") for k in ("AWS_ACCESS_KEY_ID",
                                                                             "AWS_SECRET_ACCESS_KEY")]
    for v in values:
        if isinstance(v, Problem):
            return v
    # imported here, as for a restore: the operator otherwise never loads the backup program's client
    from ..backup.s3 import Client, Credentials, S3Error

    client = (connect or Client)(storage.endpoint.rstrip("/"), storage.bucket, storage.region or "us-east-1",
                                 Credentials(str(values[0]), str(values[1])))
    prefix = adapter_prefix(namespace, name)
    where = f"s3://{storage.bucket}/{prefix} at {storage.endpoint}"
    try:
        done = delete_prefix(client, prefix, namespace, name, protected)
    except Refused as err:
        return stalled(REFUSED, f"deletionPolicy Delete: {err}; nothing was deleted")
    except (S3Error, OSError) as err:
        return degraded(FAILED, f"deletionPolicy Delete: the artifacts under {where} could not be deleted: {err}")
    log.info("%s/%s: deleted %d artifact(s) under %s%s", namespace, name, len(done.deleted), where,
             f"; kept {len(done.kept)} (datasets or unsafe keys): {done.kept[:5]}" if done.kept else "")
    return done


def unknown_storage(message: str) -> Problem:
    return stalled(UNKNOWN, f"deletionPolicy Delete: {message}: the operator cannot tell which storage holds the "
                   "artifacts; restore it, or set spec.deletionPolicy to Retain to let the FineTune go (then "
                   "delete its artifacts in the country's storage by hand)")


# ---- the worker's side: which storage, and is the adapter unloaded yet ----------------------------------------

def _resolve(ctx: Any, body: dict[str, Any]) -> tuple[Any, Any, Any] | Problem:
    """(suite, tenant, cloud) of a FineTune being deleted, from what the context holds; a suite being deleted
    still answers (its FineTunes may go after it starts going)."""
    key = suite_of_body(body)
    doc = ctx.suite(key) if key is not None else None
    if doc is None:
        return unknown_storage(f"SovereignSuite {key} is gone")
    try:
        suite = parse_suite({k: doc[k] for k in ("apiVersion", "kind", "metadata", "spec")})
    except InputError as err:
        return unknown_storage(f"SovereignSuite {key} is invalid ({err.problems[0] if err.problems else err})")
    country = (body.get("spec") or {}).get("country")
    tenant = next((t for t in suite.spec.tenants if t.country == country), None)
    if tenant is None:
        return unknown_storage(f"SovereignSuite {key} has no tenant in {country}")
    cloud = ctx.clouds.snapshot()[0].get(tenant.cloud)
    if cloud is None or cloud.spec.object_storage is None:
        return unknown_storage(f"NationalCloud {tenant.cloud} is gone or declares no objectStorage")
    return suite, tenant, cloud


def still_served(ctx: Any, body: dict[str, Any], suite: Any, tenant: Any, cloud: Any) -> Problem | None:
    """A Problem while the tenant's serving still lists the FineTune's adapter (the suite's pass, enqueued by the
    worker, takes it out; the loader then unloads it): its objects are deleted only after that. None: not served
    (the tenant serves no such model, or its cloud is another operator's, pull mode)."""
    meta = body["metadata"]
    doc = ctx.suite(suite_of_body(body))
    if doc is not None and doc["metadata"].get("deletionTimestamp"):
        return None  # its serving goes with the suite, whose pass no longer runs to take the adapter out
    llm = effective_components(suite, tenant).llm
    model = next((m for m in llm.models if m.name == (body.get("spec") or {}).get("baseModel")), None)
    if not llm.enabled or model is None:
        return None
    found = ctx.target_for(cloud)
    if found == REMOTE:
        return None
    if isinstance(found, Problem):
        return found
    assert isinstance(found, Target)
    problem = found.problem()
    if problem is not None:
        return problem
    ns = namespace_of(suite, tenant)
    uri = f"s3://{cloud.spec.object_storage.bucket}/{adapter_prefix(meta['namespace'], meta['name'])}"
    try:
        if is_served(found.kube.get, ns, model, served_name(meta["namespace"], meta["name"]), uri):
            return degraded(SERVED, f"deletionPolicy Delete: the adapter is still listed by the tenant's serving "
                            f"(namespace {ns}); its artifacts are deleted once it is unloaded")
    except ApiError as err:
        return from_api_error(err, ObjectKey("", "ConfigMap", ns, loader_config_name(model)))
    return None


def credentials_problem(ctx: Any, suite_ns: str, cloud: Any) -> Problem | None:
    """Why the training pod could not mount the cloud's storage credentials, or None: the Secret must be in the
    suite's namespace, labelled referenceable (the suite's pass copies it into the tenant namespace then; a missing
    one is the FineTune's problem, never the suite's: api/secret_refs.py ``required=False``). A cache hit when it is
    there; one GET to say why when it is not."""
    storage = cloud.spec.object_storage
    name = storage.credentials_secret_ref

    try:
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            found = secret_value(ctx.read_secret, suite_ns, name, key,
                                 f"NationalCloud/{cloud.name}.spec.objectStorage.credentialsSecretRef")
            if isinstance(found, Problem):
                return found
    except ApiError as err:
        return from_api_error(err, ObjectKey("", "Secret", suite_ns, name))
    return None


def delete_for(ctx: Any, body: dict[str, Any]) -> Problem | None:
    """The worker's step for a FineTune being deleted with deletionPolicy Delete, once its Job is gone: None when
    its artifacts are deleted, else the Problem that keeps the finalizer."""
    found = _resolve(ctx, body)
    if isinstance(found, Problem):
        return found
    suite, tenant, cloud = found
    problem = still_served(ctx, body, suite, tenant, cloud)
    if problem is not None:
        return problem
    storage = cloud.spec.object_storage
    meta = body["metadata"]

    try:
        done = delete_artifacts(storage, ctx.read_secret, suite.metadata.namespace or "", meta["namespace"],
                                meta["name"], dataset_keys(ctx.finetunes.bodies() + [body], storage.bucket))
    except ApiError as err:  # reading the credentials Secret
        return from_api_error(err, ObjectKey("", "Secret", suite.metadata.namespace or "",
                                             storage.credentials_secret_ref))
    return done if isinstance(done, Problem) else None


def deletion_status(old: dict[str, Any] | None, problem: Problem, generation: int, stamp: str) -> dict[str, Any]:
    """The status of a FineTune whose deletion waits on its artifacts: what it was (phase, results), with Ready
    False and the reason; Reconciling while it is retried by itself, Stalled when a person must act (the storage
    is unknown, the credentials Secret is missing or not referenceable, the guard refused)."""
    stall = problem.severity is Severity.STALLED
    message = str(problem)[:4000]

    def cond(type_: str, status: bool) -> dict[str, Any]:
        return {"type": type_, "status": "True" if status else "False", "reason": problem.reason,
                "message": message, "observedGeneration": generation}

    conds = [cond("Ready", False), cond("Reconciling", not stall), cond("Stalled", stall)]
    out = {k: v for k, v in (old or {}).items() if k not in ("conditions", "servedName")}
    out["conditions"] = merge_conditions((old or {}).get("conditions") or [], conds, stamp)
    return out
