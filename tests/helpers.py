"""Shared test helpers (no cluster)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from sovereign_suite.api.loader import load_files
from sovereign_suite.api.models import NationalCloud, SovereignSuite
from sovereign_suite.api.validation import parse_suite
from sovereign_suite.render import RenderResult, render_suite

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "manifests" / "examples"
CLOUDS = EXAMPLES / "clouds.yaml"
EXAMPLE_FILES = {"two-countries": EXAMPLES / "two-countries.yaml", "four-countries": EXAMPLES / "four-countries.yaml"}
K8S_SCHEMA_VERSION = "1.37.0"  # the schema kubernetes-validate ships for our Kubernetes minor (we run 1.37.2)


def load_example(name: str) -> tuple[SovereignSuite, dict[str, NationalCloud]]:
    suites, clouds = load_files([EXAMPLE_FILES[name], CLOUDS])
    return suites[0], clouds


def example_dict(name: str) -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE_FILES[name].read_text())


def suite_with(name: str, patch: dict[str, Any]) -> SovereignSuite:
    """The example suite with ``patch`` deep-merged into its spec."""
    doc = example_dict(name)

    def merge(a: dict, b: dict) -> dict:
        out = copy.deepcopy(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
        return out

    doc["spec"] = merge(doc["spec"], patch)
    return parse_suite(doc)


def render_example(name: str) -> RenderResult:
    suite, clouds = load_example(name)
    return render_suite(suite, clouds)


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod specs inside a workload object (Deployment, StatefulSet, Job, ...), if any."""
    spec = obj.get("spec", {})
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return [spec["template"]["spec"]]
    if obj["kind"] == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    if obj["kind"] == "Pod":
        return [spec]
    return []


def with_host_ports(clouds: dict[str, NationalCloud], low: int = 10000, high: int = 10100) -> dict[str, NationalCloud]:
    """The clouds, each allowing host ports low..high (what the platform team opts into for JVB HostPort)."""
    from sovereign_suite.api.models import HostPortRange

    out = {}
    for name, cloud in clouds.items():
        spec = cloud.spec.model_copy(update={"host_ports": HostPortRange(min=low, max=high)})
        out[name] = cloud.model_copy(update={"spec": spec})
    return out


def built_tools(tools: tuple[str, ...], group: str) -> Path:
    """The folder holding ``tools`` built by hack/build-tools.sh (``SOVEREIGN_SUITE_BIN`` overrides it). Fails under
    CI=true when one is missing, skips otherwise: building them needs Go and the module proxy."""
    import os
    import subprocess

    import pytest

    override = os.environ.get("SOVEREIGN_SUITE_BIN")
    if override:
        path = Path(override)
    else:
        script = ROOT / "hack" / "build-tools.sh"
        path = Path(subprocess.run([str(script), "--print"], check=True, capture_output=True, text=True).stdout.strip())
    missing = [t for t in tools if not (path / t).exists()]
    if missing:
        msg = f"missing in {path}: {', '.join(missing)} (run `make tools` or `hack/build-tools.sh {group}`)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return path
