"""Issue 15, property, server side: specs generated from the CRD's own OpenAPI schema (the strategies of
tests/test_input_property.py), checked against the real API server.

For every generated spec, exactly one of:
- the validator accepts it: every rendered object is accepted by a server-side apply with ``dryRun=All`` and
  ``fieldValidation=Strict`` (as tests/cluster/test_render_dryrun.py sends them), in tenant Namespaces applied
  for real with the labels the renderer gives them, which enforce Pod Security ``restricted`` (``privileged``
  only when a cloud allows host ports and Jitsi asks for them: checked below); no warning either;
- it is rejected: the operator's real reconcile pass (``reconcile/pipeline.py`` ``Pass``, in this process, on
  the real API server) ends Stalled and sends no write request at all (every request is recorded).

Bounded: a fixed seed (``derandomize``) and few examples, so that it runs in well under a minute.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from kubernetes import config

from sovereign_suite.api.validation import InputError, parse_suite
from sovereign_suite.reconcile.context import OperatorContext, Settings
from sovereign_suite.reconcile.kube import ApiError, Kube, ref
from sovereign_suite.reconcile.pipeline import Pass
from sovereign_suite.render import render_suite, with_secrets
from sovereign_suite.secretgen import missing_keys

from ..test_input_property import clouds, patched_examples, whole_specs
from .test_render_dryrun import dry_run_apply

# No shrinking: each example costs ~100 API requests, and a failure is reported with its (unshrunk) spec at once.
BOUNDED = settings(max_examples=8, deadline=None, derandomize=True, database=None,
                   phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
SUITE = f"p{uuid.uuid4().hex[:5]}"  # short: derived names grow from it; unique per session
SUITE_NS = "sovereign-suite"


class Recorder:
    """The ApiClient's transport, keeping every request (method, path) and the server's ``Warning`` headers."""

    def __init__(self, rest_client: Any):
        self.rest_client = rest_client
        self.requests: list[tuple[str, str]] = []
        self.warnings: list[str] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        self.requests.append((method, url))
        resp = self.rest_client.request(method, url, *args, **kwargs)
        for header in resp.headers.getlist("Warning"):
            text = header.partition(" ")[2].partition(" ")[2].strip()
            self.warnings.append(text.removeprefix('"').removesuffix('"').replace('\\"', '"'))
        return resp


@pytest.fixture(scope="module")
def server(cluster):
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    recorder = Recorder(api.rest_client)
    api.rest_client = recorder
    kube = Kube(api)
    ctx = OperatorContext(kube, Settings())  # its cache is never started: a rejected pass must not need it
    for name, cloud in clouds().items():
        ctx.clouds.set(name, cloud)
    applied: dict[str, dict[str, Any]] = {}
    outcomes: list[str] = []
    yield kube, recorder, ctx, applied, outcomes
    ctx.local.pools.stop()
    ctx.render_pool.shutdown()
    for ns in applied.values():
        kube.delete(ns)


def suite_doc(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "sovereignsuite.io/v1alpha1", "kind": "SovereignSuite",
            "metadata": {"name": SUITE, "namespace": SUITE_NS, "uid": str(uuid.uuid4()), "generation": 1},
            "spec": spec}


def check_on_server(server, spec: dict[str, Any]) -> None:
    kube, recorder, ctx, applied, outcomes = server
    doc = suite_doc(spec)
    try:
        result = render_suite(parse_suite({k: doc[k] for k in ("apiVersion", "kind", "metadata", "spec")}), clouds())
    except InputError:
        outcomes.append("rejected")
        recorder.requests.clear()
        verdict = Pass(ctx, doc).run()
        stalled = [c for c in verdict.status["conditions"] if c["type"] == "Stalled"]
        assert stalled and stalled[0]["status"] == "True", verdict.status["conditions"]
        writes = [r for r in recorder.requests if r[0] not in ("GET", "HEAD")]
        assert writes == [], f"a rejected spec made write requests: {writes}"
        return
    outcomes.append("accepted")
    objs = with_secrets(result, {(s.namespace, s.name): missing_keys(s, None) for s in result.secrets})
    restricted = set()
    for ns in (o for o in objs if o["kind"] == "Namespace"):
        level = ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        jvb = ((spec.get("components") or {}).get("jitsi") or {}).get("jvb") or {}
        assert level == "restricted" or (level == "privileged" and jvb.get("type") == "HostPort"), \
            (ns["metadata"]["name"], level)
        if level == "restricted":
            restricted.add(ns["metadata"]["name"])
        kube.apply(ns, "sovereign-suite-property-test")  # for real: a dry-run needs its namespace
        applied[ns["metadata"]["name"]] = ns
    rejected, warned = [], []
    for obj in objs:
        if obj["kind"] == "Namespace" or kube.kind(obj["apiVersion"], obj["kind"]) is None:
            continue  # CRD-backed kinds this cluster does not serve (test_render_dryrun.py covers the skip)
        recorder.warnings.clear()
        try:
            dry_run_apply(kube, obj)
        except ApiError as err:
            rejected.append(str(err)[:400])
        if obj["metadata"].get("namespace") in restricted:
            warned += [f"{ref(obj)}: {w}" for w in recorder.warnings]
    assert not rejected, "accepted spec, objects the API server refuses:\n  " + "\n  ".join(rejected[:10])
    assert not warned, "accepted spec, warnings:\n  " + "\n  ".join(warned[:10])


@BOUNDED
@given(spec=patched_examples())
def test_example_with_one_subtree_on_the_api_server(server, spec):
    check_on_server(server, spec)


@BOUNDED
@given(spec=whole_specs())
def test_whole_specs_on_the_api_server(server, spec):
    check_on_server(server, spec)


def test_both_outcomes_were_reached(server):
    """Runs after the two above (file order): the property did not hold vacuously."""
    outcomes = server[4]
    print(f"\nserver-side property: {outcomes.count('accepted')} accepted, {outcomes.count('rejected')} rejected")
    assert {"accepted", "rejected"} <= set(outcomes), outcomes
