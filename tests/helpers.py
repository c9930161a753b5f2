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


def mounted_secret(pod: dict[str, Any], container: dict[str, Any], path: str) -> tuple[str, str]:
    """The (Secret, key) whose file is ``path`` in ``container``: through a ``secret`` or a ``projected`` volume
    mounted read-only, mode 0440 (owner and the pod's fsGroup only)."""
    for mount in container.get("volumeMounts", []):
        prefix = mount["mountPath"].rstrip("/") + "/"
        if not path.startswith(prefix):
            continue
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        if "secret" in volume:
            secret = volume["secret"]
            sources = [({"name": secret["secretName"]}, secret.get("items", []))]
            mode = secret["defaultMode"]
        else:
            assert mount.get("readOnly") is True, mount
            sources = [(s["secret"], s["secret"]["items"]) for s in volume["projected"]["sources"]]
            mode = volume["projected"]["defaultMode"]
        assert mode == 0o440, (mount, mode)
        for source, items in sources:
            for item in items:
                if item["path"] == path[len(prefix):]:
                    return source["name"], item["key"]
        raise AssertionError(f"{path}: no such file in volume {mount['name']}")
    raise AssertionError(f"{path} is not in a volume mounted in {container['name']}")


def file_secret(pod: dict[str, Any], container: dict[str, Any], variable: str) -> tuple[str, str]:
    """The (Secret, key) of the file the environment variable ``variable`` (a ``*_FILE``) names."""
    env = {e["name"]: e for e in container.get("env", [])}
    assert "valueFrom" not in env[variable], variable
    return mounted_secret(pod, container, env[variable]["value"])


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
