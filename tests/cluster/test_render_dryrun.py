"""The real API server accepts every object the renderers produce.

kubernetes-validate (tests/test_render.py) knows the OpenAPI schemas only; the API server also runs its
validation code (names, selectors, immutable combinations, quantities, ...), the admission plugins (Pod Security
on the tenant namespace's enforced level) and strict field validation. Each object is sent the way the operator
sends it, a server-side apply, with ``dryRun=All`` (nothing is stored) and ``fieldValidation=Strict`` (an unknown or
duplicate field is an error, not a warning). The tenant Namespaces are created for real first: a dry-run cannot
create an object inside a namespace that does not exist. Warnings the server sends back (e.g. "would violate
PodSecurity") count as failures too.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import config

from sovereign_suite.components.base import CNPG_API, MONITORING_API
from sovereign_suite.reconcile.kube import ApiError, Kube, ref
from sovereign_suite.render import render_suite, with_secrets
from sovereign_suite.secretgen import missing_keys

from ..helpers import load_example, suite_with

FIELD_MANAGER = "sovereign-suite-dryrun-test"


class WarningRecorder:
    """The ApiClient's transport, keeping the API server's ``Warning`` headers (Kube.request returns bodies only)."""

    def __init__(self, rest_client: Any):
        self.rest_client = rest_client
        self.warnings: list[str] = []

    def request(self, *args: Any, **kwargs: Any) -> Any:
        resp = self.rest_client.request(*args, **kwargs)
        for header in resp.headers.getlist("Warning"):  # RFC 7234: 299 - "text with \"escaped\" quotes"
            text = header.partition(" ")[2].partition(" ")[2].strip()
            self.warnings.append(text.removeprefix('"').removesuffix('"').replace('\\"', '"'))
        return resp


@pytest.fixture(scope="module")
def kube(cluster) -> tuple[Kube, WarningRecorder]:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))  # its own: the transport is wrapped
    recorder = WarningRecorder(api.rest_client)
    api.rest_client = recorder
    return Kube(api), recorder


def objects(variant: str) -> list[dict[str, Any]]:
    """The suite's manifests plus its generated Secrets with real random values (as the operator applies them)."""
    suite, clouds = load_example("four-countries")
    capabilities: frozenset[str] = frozenset()
    if variant == "monitoring-cnpg":  # renders the CRD-backed kinds this cluster does not serve
        suite = suite_with("four-countries", {
            "monitoring": {"serviceMonitors": True},
            "components": {"matrix": {"postgres": {"mode": "cloudnative-pg"}}},
        })
        capabilities = frozenset({MONITORING_API, CNPG_API})
    result = render_suite(suite, clouds, capabilities)
    values = {(s.namespace, s.name): missing_keys(s, None) for s in result.secrets}
    return with_secrets(result, values)


@pytest.fixture(scope="module")
def applied_namespaces(kube):
    """Namespaces applied for real by the tests, deleted once at the end (a Terminating namespace admits nothing,
    so they are not deleted between variants)."""
    applied: dict[str, dict[str, Any]] = {}
    yield applied
    for ns in applied.values():
        kube[0].delete(ns)


def dry_run_apply(kube: Kube, obj: dict[str, Any]) -> None:
    k = kube.require(obj["apiVersion"], obj["kind"])
    meta = obj["metadata"]
    kube.request("PATCH", k.path(meta.get("namespace"), meta["name"]), body=obj,
                 query={"fieldManager": FIELD_MANAGER, "force": "true", "dryRun": "All", "fieldValidation": "Strict"},
                 content_type="application/apply-patch+yaml", what=ref(obj))


@pytest.mark.parametrize("variant", ["four-countries", "monitoring-cnpg"])
def test_api_server_accepts_every_rendered_object(kube, applied_namespaces, variant):
    client, recorder = kube
    objs = objects(variant)
    namespaces = [o for o in objs if o["kind"] == "Namespace"]
    assert len(namespaces) == 4
    for ns in namespaces:  # for real, with the Pod Security labels the workloads are then admitted under
        client.apply(ns, FIELD_MANAGER)
        applied_namespaces[ns["metadata"]["name"]] = ns
    rejected, warned, skipped, checked = [], [], {}, 0
    for obj in objs:
        if obj["kind"] == "Namespace":
            continue
        if client.kind(obj["apiVersion"], obj["kind"]) is None:
            key = f"{obj['kind']}.{obj['apiVersion']}"
            skipped[key] = skipped.get(key, 0) + 1
            continue
        recorder.warnings.clear()
        try:
            dry_run_apply(client, obj)
        except ApiError as err:
            rejected.append(str(err))
        warned += [f"{ref(obj)}: {w}" for w in recorder.warnings]
        checked += 1
    checked += len(namespaces)
    print(f"\n{variant}: {checked} objects checked by the API server ({len(namespaces)} Namespaces applied for "
          f"real, the rest dry-run): {len(rejected)} rejected, {len(warned)} warnings; "
          f"skipped (kind not served): {skipped or 'none'}")
    assert not rejected, f"{len(rejected)} of {checked} objects rejected:\n  " + "\n  ".join(rejected)
    assert not warned, f"{len(warned)} warnings:\n  " + "\n  ".join(warned)
    assert checked > 250
    if variant == "monitoring-cnpg":  # the skip path is exercised, and only kinds of the two CRD groups are skipped
        assert {key.split(".", 1)[1] for key in skipped} == {MONITORING_API, CNPG_API}, skipped
    else:
        assert not skipped, skipped
