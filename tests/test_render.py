"""The whole suite's render: golden files, determinism, and invariants that must hold for EVERY object of
EVERY variant (data residency, Pod Security "restricted", resources, labels, PDBs, no secret outside Secrets,
schema validity). Component tests check what each renderer means; these check what none may forget.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import io
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import kubernetes_validate
import pytest
import yaml

from sovereign_suite import cli
from sovereign_suite.api.models import NationalCloud, SovereignSuite
from sovereign_suite.api.validation import namespace_of
from sovereign_suite.components.base import CNPG_API, LABEL_COUNTRY, LABEL_SUITE, MONITORING_API, REGION_LABEL
from sovereign_suite.render import render_suite, with_secrets
from sovereign_suite.secretgen import PLACEHOLDER

from . import golden_refresh
from .helpers import (
    CLOUDS,
    EXAMPLE_FILES,
    K8S_SCHEMA_VERSION,
    ROOT,
    load_example,
    pod_specs,
    suite_with,
    with_host_ports,
)

# --------------------------------------------------------------------------------------------------
# Golden files and determinism


@pytest.mark.parametrize("name", sorted(EXAMPLE_FILES))
def test_render_matches_golden_file(name):
    path = golden_refresh.golden_path(name)
    assert path.exists(), f"{path.relative_to(ROOT)} is missing: run `make golden`"
    expected = path.read_text(encoding="utf-8")
    actual = golden_refresh.render_text(name)
    if actual != expected:
        diff = list(difflib.unified_diff(expected.splitlines(), actual.splitlines(), f"golden/{name}.yaml",
                                         "render", lineterm="", n=2))
        shown = "\n".join(diff[:60]) + (f"\n... ({len(diff) - 60} more diff lines)" if len(diff) > 60 else "")
        pytest.fail(f"render of {name} differs from tests/golden/{name}.yaml:\n{shown}\n"
                    "If the change is intended, run `make golden` and review the diff.", pytrace=False)


def _render_subprocess(args: list[str], hash_seed: str) -> bytes:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    proc = subprocess.run([sys.executable, "-m", "sovereign_suite.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def test_render_is_byte_identical_across_processes():
    """Two processes with different hash seeds (set and dict-of-set ordering would show up here)."""
    args = golden_refresh.cli_args("four-countries")
    first, second = _render_subprocess(args, "1"), _render_subprocess(args, "4242")
    assert first and first == second, "two processes rendered different bytes"
    golden = golden_refresh.golden_path("four-countries").read_text(encoding="utf-8")
    assert first.decode() == golden, "the CLI's stdout differs from the golden file (see the golden-file test)"


def _cli_stdout(args: list[str]) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(args)
    assert code == 0, err.getvalue()
    return out.getvalue()


def test_order_of_clouds_does_not_matter(tmp_path):
    """Clouds are looked up by name: reversing clouds.yaml, or putting the clouds before the suite in one
    file, must give the same bytes. (The order of spec.tenants is meaningful and is not shuffled.)"""
    clouds = [d for d in yaml.safe_load_all(CLOUDS.read_text()) if d]
    assert len(clouds) > 1
    reversed_file = tmp_path / "clouds-reversed.yaml"
    reversed_file.write_text(yaml.safe_dump_all(list(reversed(clouds))))
    combined = tmp_path / "combined.yaml"
    suite_doc = yaml.safe_load(EXAMPLE_FILES["four-countries"].read_text())
    combined.write_text(yaml.safe_dump_all(list(reversed(clouds)) + [suite_doc]))

    golden = golden_refresh.golden_path("four-countries").read_text(encoding="utf-8")
    assert _cli_stdout(["render", "-f", str(EXAMPLE_FILES["four-countries"]), "--clouds", str(reversed_file)]) == golden
    assert _cli_stdout(["render", "-f", str(combined)]) == golden


# --------------------------------------------------------------------------------------------------
# Variants: every invariant below runs over each of them


@dataclass(frozen=True)
class Variant:
    suite: SovereignSuite
    clouds: dict[str, NationalCloud]
    capabilities: frozenset[str]
    host_port: bool = False  # JVB media on a hostPort (the only pod allowed one)


def _four_with(patch: dict[str, Any], capabilities: frozenset[str] = frozenset(), **kw: Any) -> Variant:
    _, clouds = load_example("four-countries")
    if kw.get("host_port"):
        clouds = with_host_ports(clouds)  # the platform team's opt-in (NationalCloud spec.hostPorts)
    return Variant(suite_with("four-countries", patch), clouds, capabilities, **kw)


VARIANTS: dict[str, Callable[[], Variant]] = {
    "two-countries": lambda: Variant(*load_example("two-countries"), frozenset()),
    "four-countries": lambda: Variant(*load_example("four-countries"), frozenset()),
    "monitoring-cnpg-external": lambda: _four_with(
        {
            "monitoring": {"serviceMonitors": True, "prometheusRules": True},
            "components": {
                "matrix": {"postgres": {"mode": "cloudnative-pg", "instances": 2}},
                "docs": {"postgres": {"mode": "external", "host": "pg.workplace.example.eu", "sslMode": "require",
                                      "passwordSecretRef": {"name": "docs-db", "key": "password"}}},
            },
        },
        frozenset({MONITORING_API, CNPG_API}),
    ),
    "jvb-hostport": lambda: _four_with({"components": {"jitsi": {"jvb": {"type": "HostPort"}}}}, host_port=True),
}


@functools.lru_cache(maxsize=None)
def variant(name: str) -> Variant:
    return VARIANTS[name]()


@functools.lru_cache(maxsize=None)
def rendered(name: str) -> tuple[dict[str, Any], ...]:
    """Every object of a variant, with the placeholder Secrets (as `sovereign-suite render` prints them)."""
    v = variant(name)
    return tuple(with_secrets(render_suite(v.suite, v.clouds, v.capabilities)))


def tenant_namespace(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return meta.get("namespace") or meta["name"]  # a Namespace belongs to the tenant it is


def tenants_by_namespace(name: str) -> dict[str, tuple[str, list[str]]]:
    """namespace -> (lower-case country, the regions of the tenant's cloud)."""
    v = variant(name)
    return {namespace_of(v.suite, t): (t.country.lower(), v.clouds[t.cloud].spec.regions) for t in v.suite.spec.tenants}


def workloads(name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    out = [(o, ps) for o in rendered(name) for ps in pod_specs(o)]
    assert len(out) > 10, f"{name}: only {len(out)} pod templates rendered"
    return out


def containers(ps: dict[str, Any]) -> list[dict[str, Any]]:
    return ps["containers"] + ps.get("initContainers", []) + ps.get("ephemeralContainers", [])


def where(obj: dict[str, Any], c: dict[str, Any] | None = None) -> str:
    text = f"{obj['kind']}/{obj['metadata'].get('namespace')}/{obj['metadata']['name']}"
    return f"{text} container {c['name']}" if c else text


def report(problems: list[str]) -> None:
    assert not problems, f"{len(problems)} problem(s):\n  " + "\n  ".join(problems[:40])


VARIANT_NAMES = sorted(VARIANTS)


# --------------------------------------------------------------------------------------------------
# Data residency


def _region_problems(owner: str, node_affinity: dict[str, Any] | None, regions: list[str]) -> list[str]:
    terms = ((node_affinity or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get(
        "nodeSelectorTerms") or []
    if not terms:
        return [f"{owner}: no required node affinity"]
    problems = []
    for i, term in enumerate(terms):  # terms are ORed: each one alone must keep the pod in the country
        exprs = [e for e in term.get("matchExpressions", []) if e["key"] == REGION_LABEL]
        if not any(e["operator"] == "In" and e["values"] and set(e["values"]) <= set(regions) for e in exprs):
            problems.append(f"{owner}: nodeSelectorTerms[{i}] does not pin {REGION_LABEL} In {regions}: {term}")
    return problems


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_every_pod_is_pinned_to_its_tenants_regions(name):
    tenants = tenants_by_namespace(name)
    problems = []
    for obj, ps in workloads(name):
        regions = tenants[obj["metadata"]["namespace"]][1]
        problems += _region_problems(where(obj), ps.get("affinity", {}).get("nodeAffinity"), regions)
        selector_region = ps.get("nodeSelector", {}).get(REGION_LABEL)
        if selector_region is not None and selector_region not in regions:
            problems.append(f"{where(obj)}: nodeSelector region {selector_region} outside {regions}")
    # CloudNativePG creates the pods itself from the Cluster's affinity
    for obj in rendered(name):
        if obj["kind"] == "Cluster":
            regions = tenants[obj["metadata"]["namespace"]][1]
            problems += _region_problems(where(obj), obj["spec"].get("affinity", {}).get("nodeAffinity"), regions)
    report(problems)


# --------------------------------------------------------------------------------------------------
# Pod Security "restricted"

# The volume types the "restricted" profile allows
# (https://kubernetes.io/docs/concepts/security/pod-security-standards/)
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}


def _container_problems(obj: dict[str, Any], ps: dict[str, Any], c: dict[str, Any], host_port_ok: bool) -> list[str]:
    psc, sc = ps.get("securityContext", {}), c.get("securityContext", {})
    w = where(obj, c)
    out = []
    if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
        out.append(f"{w}: runAsNonRoot is not true (pod or container)")
    if sc.get("runAsUser", psc.get("runAsUser")) == 0:
        out.append(f"{w}: runAsUser 0")
    if sc.get("allowPrivilegeEscalation") is not False:
        out.append(f"{w}: allowPrivilegeEscalation is not false")
    caps = sc.get("capabilities", {})
    if "ALL" not in caps.get("drop", []):
        out.append(f"{w}: capabilities do not drop ALL")
    if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
        out.append(f"{w}: adds capabilities {caps['add']}")
    if sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type") != "RuntimeDefault":
        out.append(f"{w}: seccompProfile is not RuntimeDefault (pod or container)")
    if sc.get("privileged"):
        out.append(f"{w}: privileged")
    host_ports = [p for p in c.get("ports", []) if p.get("hostPort")]
    if host_ports and not (host_port_ok and obj["metadata"]["name"] == "jitsi-jvb"):
        out.append(f"{w}: hostPort {host_ports}")
    return out


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_every_container_is_restricted(name):
    v = variant(name)
    problems, host_ports = [], 0
    for obj, ps in workloads(name):
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if ps.get(key):
                problems.append(f"{where(obj)}: {key}")
        for vol in ps.get("volumes", []):
            kinds = set(vol) - {"name"}
            if not kinds <= RESTRICTED_VOLUMES:
                problems.append(f"{where(obj)}: volume {vol['name']} of type {sorted(kinds)}")
        for c in containers(ps):
            problems += _container_problems(obj, ps, c, v.host_port)
            host_ports += sum(1 for p in c.get("ports", []) if p.get("hostPort"))
    report(problems)
    # the HostPort variant really renders one (else the hostPort rule above was never exercised)
    assert (host_ports > 0) == v.host_port, f"{name}: {host_ports} hostPorts"


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_every_container_has_requests_and_limits(name):
    problems = []
    for obj, ps in workloads(name):
        for c in containers(ps):
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                missing = {"cpu", "memory"} - set(res.get(kind, {}))
                if missing:
                    problems.append(f"{where(obj, c)}: no {kind}.{'/'.join(sorted(missing))}")
    report(problems)


# --------------------------------------------------------------------------------------------------
# Labels and disruption budgets

REQUIRED_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
                   "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by", LABEL_SUITE, LABEL_COUNTRY)


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_every_object_carries_the_suite_labels(name):
    v = variant(name)
    tenants = tenants_by_namespace(name)
    problems = []
    for obj in rendered(name):
        country = tenants[tenant_namespace(obj)][0]
        sets = [("metadata", obj["metadata"].get("labels", {}))]
        sets += [("pod template", tpl_labels) for tpl_labels in _template_labels(obj)]
        for what, labels in sets:
            missing = [k for k in REQUIRED_LABELS if not labels.get(k)]
            if missing:
                problems.append(f"{where(obj)}: {what} lacks {missing}")
            elif labels[LABEL_SUITE] != v.suite.name or labels[LABEL_COUNTRY] != country:
                problems.append(f"{where(obj)}: {what} suite/country labels "
                                f"{labels.get(LABEL_SUITE)}/{labels.get(LABEL_COUNTRY)}, want {v.suite.name}/{country}")
    report(problems)


def _template_labels(obj: dict[str, Any]) -> list[dict[str, str]]:
    spec = obj.get("spec", {})
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return [spec["template"].get("metadata", {}).get("labels", {})]
    return []


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    match = selector.get("matchLabels", {})
    return bool(match) and all(labels.get(k) == v for k, v in match.items()) and not selector.get("matchExpressions")


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_replicated_workloads_have_a_pdb(name):
    objs = rendered(name)
    pdbs = [o for o in objs if o["kind"] == "PodDisruptionBudget"]
    problems, checked = [], 0
    for obj in objs:
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        labels = obj["spec"]["template"]["metadata"]["labels"]
        assert _selects(obj["spec"]["selector"], labels), f"{where(obj)}: selector does not match its pods"
        mine = [p for p in pdbs if p["metadata"]["namespace"] == obj["metadata"]["namespace"]
                and _selects(p["spec"]["selector"], labels)]
        if len(mine) > 1:
            problems.append(f"{where(obj)}: {len(mine)} PDBs select its pods")
        if obj["spec"].get("replicas", 1) > 1:
            checked += 1
            if not mine:
                problems.append(f"{where(obj)}: {obj['spec']['replicas']} replicas and no PodDisruptionBudget")
    report(problems)
    assert checked > 0, f"{name}: no replicated workload"


# --------------------------------------------------------------------------------------------------
# Secrets stay in Secrets

SECRET_NAME = re.compile(r"(?i)(password|passwd|secret|token|credentials?|"
                         r"(api|master|private|signing|secret|access)[_-]?key)$")
# `name: value` or `name = value` where the name looks secret; the value is checked separately
SECRET_ASSIGNMENT = re.compile(r"(?i)\b([\w.-]*(?:password|passwd|secret|token|api_key|master_key|private_key)"
                               r"[\w.-]*)\s*[:=]\s*['\"]?([^\s'\",;]*)")
# values that are references to a secret, not the secret: a file path, an env reference, nothing
REFERENCE = re.compile(r"^(/|os\.environ/|\$\{|\$\(|\{\{|null$|none$|~$|$)", re.I)


def _generated_render(tmp_path: Path) -> list[dict[str, Any]]:
    out = tmp_path / "out"
    with contextlib.redirect_stderr(io.StringIO()):
        code = cli.main([*golden_refresh.cli_args("four-countries"), "--generate-secrets", "-o", str(out)])
    assert code == 0
    suite, _ = load_example("four-countries")
    return [d for d in yaml.safe_load_all((out / f"{suite.name}.yaml").read_text()) if d]


def test_no_secret_value_outside_secrets(tmp_path):
    objs = _generated_render(tmp_path)
    values: set[str] = set()
    for o in objs:
        if o["kind"] == "Secret":
            for v in o["stringData"].values():
                assert v != PLACEHOLDER, f"{where(o)}: --generate-secrets left a placeholder"
                values.add(v.strip())
                values.update(part for part in v.split() if len(part) >= 16)  # e.g. the signing key's seed
    assert len(values) >= 20
    values.add(PLACEHOLDER)  # a known value: the placeholder must never be copied out of a Secret either
    problems = []
    for o in objs:
        if o["kind"] == "Secret":
            continue
        text = json.dumps(o, sort_keys=True)  # data, env values, annotations, args: everything
        problems += [f"{where(o)} holds the value of a Secret key" for v in values if v in text]
    report(problems)


def test_placeholder_render_keeps_placeholders_in_secrets():
    for name in VARIANT_NAMES:
        leaks = [where(o) for o in rendered(name) if o["kind"] != "Secret" and PLACEHOLDER in json.dumps(o)]
        assert not leaks, f"{name}: {leaks}"


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_configmaps_and_env_hold_no_secrets(name):
    problems = []
    for o in rendered(name):
        if o["kind"] != "ConfigMap":
            continue
        for key, text in {**o.get("data", {}), **o.get("binaryData", {})}.items():
            if SECRET_NAME.search(key):
                problems.append(f"{where(o)}: key {key} looks like a secret")
            for m in SECRET_ASSIGNMENT.finditer(text):
                if not REFERENCE.match(m.group(2)):
                    problems.append(f"{where(o)}: {key}: {m.group(1)} set to a literal ({m.group(0)[:60]!r})")
    for obj, ps in workloads(name):
        for c in containers(ps):
            from_secret = {e["name"] for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
            for e in c.get("env", []):
                if "value" not in e or not SECRET_NAME.search(e["name"]):
                    continue
                refs = set(re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", e["value"]))
                if not refs or not refs <= from_secret:  # only `$(VAR)` of a Secret-backed variable is allowed
                    problems.append(f"{where(obj, c)}: env {e['name']} has a literal value")
    report(problems)


# --------------------------------------------------------------------------------------------------
# Schema validity

# Kinds served by CRDs: kubernetes-validate ships only the built-in OpenAPI schemas, so these cannot be
# checked here (they are checked by their renderers' tests, and by the API server in
# tests/cluster/test_render_dryrun.py when the CRDs are installed).
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "Prometheus Operator CRD",
    ("monitoring.coreos.com/v1", "PodMonitor"): "Prometheus Operator CRD",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "Prometheus Operator CRD",
    ("postgresql.cnpg.io/v1", "Cluster"): "CloudNativePG CRD",
}


@functools.lru_cache(maxsize=None)
def _schema_error(canonical: str) -> str | None:
    """Validation of one object (cached: most objects are the same in several variants)."""
    try:
        kubernetes_validate.validate(json.loads(canonical), K8S_SCHEMA_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        return f"{'.'.join(str(p) for p in err.absolute_path) or '(object)'}: {err.message}"
    return None


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_every_builtin_object_validates(name):
    problems, skipped = [], {}
    for o in rendered(name):
        key = (o["apiVersion"], o["kind"])
        if key in CRD_KINDS:
            skipped[o["kind"]] = skipped.get(o["kind"], 0) + 1
            continue
        error = _schema_error(json.dumps(o, sort_keys=True))
        if error:
            problems.append(f"{where(o)}: {error}")
    report(problems)
    if name == "monitoring-cnpg-external":  # the CRD kinds are really rendered there, and only those skipped
        assert skipped.get("ServiceMonitor") and skipped.get("Cluster"), skipped
    print(f"{name}: {len(rendered(name)) - sum(skipped.values())} objects validated, skipped (CRDs) {skipped}")
