"""From FineTunes to served adapters, and back (docs/llm-finetuning.md, "From FineTune to served adapter").

- The suite pass serves, in each tenant, the adapters of the FineTunes that passed the promotion gate: the
  FineTune names the suite and the tenant's country, is not being deleted, has consumers (an adapter nobody may
  call is not served: components/llm/adapters.py refuses it), and its status, for its current generation, says the
  Job completed and the gate passed (Ready condition reason ``Promoting`` or ``Served``) with the adapter's URI.
- The FineTune pass calls it served once the tenant's adapters ConfigMap (``vllm-<model>-adapters``, what the
  loader sidecar loads into vLLM) lists it with that URI: then the FineTune is Ready. The loader loads it within
  its interval (30 s) of the kubelet updating the mounted ConfigMap; vLLM's own answer is not read here.
- The served name (the model name clients ask the gateway for) is ``<namespace>-<name>`` of the FineTune, or,
  when that is longer than a DNS label, ``<name>-<8 hex of the namespace>``: two administrations may both have a
  FineTune ``summaries``, and their adapters must not be one model name.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Mapping

from pydantic import ValidationError

from ..api.finetune_models import FineTune
from ..api.models import LLMModel, NationalCloud, SovereignSuite
from ..api.validation import effective_components
from ..components.base import short_hash
from ..components.llm.adapters import ServedAdapter, loader_config_name
from .finetune_store import suite_of_body
from .problems import SuiteKey

PROMOTED_REASONS = ("Promoting", "Served")  # finetune_status: the gate passed (loading, or loaded)


def served_name(namespace: str, name: str) -> str:
    full = f"{namespace}-{name}"
    return full if len(full) <= 63 else f"{name}-{short_hash(namespace, length=8)}"


def promoted(body: dict[str, Any]) -> bool:
    """Whether a FineTune's status, for its current generation, says its adapter passed the promotion gate."""
    meta, status = body.get("metadata") or {}, body.get("status") or {}
    if meta.get("deletionTimestamp") or not status.get("adapterUri"):
        return False
    if status.get("observedGeneration") != meta.get("generation"):
        return False
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    return ready.get("reason") in PROMOTED_REASONS


def training_countries(suite: SuiteKey, bodies: Iterable[dict[str, Any]]) -> set[str]:
    """The countries whose tenant of ``suite`` has a FineTune (any phase, being deleted too: its Job may still run):
    their tenant namespace gets a copy of the cloud's objectStorage credentials Secret, which the training pod
    mounts, whether the suite's backups are on or off (api/secret_refs.py)."""
    return {str(country) for body in bodies if suite_of_body(body) == suite
            and isinstance(country := (body.get("spec") or {}).get("country"), str)}


def finetunes_of(suite: SuiteKey, bodies: Iterable[dict[str, Any]]) -> list[str]:
    """``namespace/name`` of the FineTunes that name ``suite`` (being deleted too), sorted: a suite deleted with
    deletionPolicy Delete waits for them (reconcile/cleanup.py)."""
    return sorted(f"{(b.get('metadata') or {}).get('namespace')}/{(b.get('metadata') or {}).get('name')}"
                  for b in bodies if suite_of_body(b) == suite)


def served_adapters(suite: SovereignSuite, clouds: Mapping[str, NationalCloud],
                    bodies: Iterable[dict[str, Any]]) -> dict[str, list[ServedAdapter]]:
    """country -> the adapters its tenant serves, from the FineTunes (as last seen, with the operator's own last
    status) that name this suite; sorted by name, so the render does not depend on the order they were seen. What
    the adapters' render would refuse (components/llm/adapters.py adapter_problems) is left out here, so that a
    FineTune never makes its suite's render fail."""
    key = SuiteKey(suite.metadata.namespace or "", suite.name)
    tenants = {t.country: t for t in suite.spec.tenants}
    out: dict[str, list[ServedAdapter]] = {}
    for body in bodies:
        if suite_of_body(body) != key or not promoted(body):
            continue
        try:
            ft = FineTune.model_validate({k: body[k] for k in ("apiVersion", "kind", "metadata", "spec")})
        except (ValidationError, KeyError):
            continue
        tenant = tenants.get(ft.spec.country)
        if tenant is None or not ft.spec.consumers:
            continue
        llm = effective_components(suite, tenant).llm
        name = served_name(ft.namespace, ft.name)
        cloud = clouds.get(tenant.cloud)
        storage = cloud.spec.object_storage if cloud is not None else None
        uri = body["status"]["adapterUri"]
        if not llm.enabled or name in {m.served for m in llm.models} \
                or ft.spec.base_model not in {m.name for m in llm.models} \
                or storage is None or not uri.startswith(f"s3://{storage.bucket}/"):
            continue  # never a problem of the suite's render: the FineTune stays unserved (Evaluating)
        out.setdefault(ft.spec.country, []).append(ServedAdapter(
            name, ft.spec.base_model, uri, ft.spec.lora.rank,
            tuple(c.name for c in ft.spec.consumers)))
    return {country: sorted(adapters, key=lambda a: a.name) for country, adapters in sorted(out.items())}


def is_served(get: Callable[[str, str, str, str], dict[str, Any] | None], namespace: str, model: LLMModel,
              name: str, uri: str) -> bool:
    """Whether the tenant's adapters ConfigMap of the base model lists the adapter with this URI. ``get``: the
    tenant cluster's client's get (one request, made only for a FineTune whose adapter passed the gate)."""
    cm = get("v1", "ConfigMap", loader_config_name(model), namespace)
    try:
        config = json.loads(((cm or {}).get("data") or {}).get("config.json") or "{}")
    except ValueError:
        return False
    return any(a.get("name") == name and a.get("uri") == uri for a in config.get("adapters") or []
               if isinstance(a, dict))
