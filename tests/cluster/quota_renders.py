"""The tenants' ResourceQuotas as an operator's sources render them, and as they are in the cluster
(tests/cluster/test_real_node_upgrade.py: the quotas through a helm upgrade from the operator older than the quota
split, and through the rollback to it).

The expected quotas are not written by hand: each side's own renderer (``sovereign-suite render``) is run on the
documents the test applied, the current one from this tree, the previous one from the previous commit's sources
(devcluster/realnode/previous_image.py, ``sources()``), in a subprocess whose PYTHONPATH puts those sources first.
The previous commit renders one quota per tenant, ``tenant-quota``, with everything (cpu, memory, GPUs, pods,
storage); the current one splits it (components/tenancy/__init__.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from kubernetes.utils import parse_quantity

from sovereign_suite.devcluster.realnode import operator_image

Quotas = dict[str, dict[str, dict]]  # namespace -> quota name -> spec


def rendered_quotas(root: Path, suite: dict, clouds: list[dict], tmp: Path) -> Quotas:
    """The ResourceQuotas ``root``'s renderer makes of ``suite`` with ``clouds``, by namespace and name."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "suite.yaml").write_text(yaml.safe_dump(suite))
    (tmp / "clouds.yaml").write_text(yaml.safe_dump_all(clouds))
    proc = subprocess.run([sys.executable, "-m", "sovereign_suite.cli", "render", "-f", str(tmp / "suite.yaml"),
                           "--clouds", str(tmp / "clouds.yaml")],
                          env={**os.environ, "PYTHONPATH": str(root / "operator")}, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, f"render with {root}: {proc.stderr[-2000:]}"
    out: Quotas = {}
    for obj in yaml.safe_load_all(proc.stdout):
        if obj and obj["kind"] == "ResourceQuota":
            out.setdefault(obj["metadata"]["namespace"], {})[obj["metadata"]["name"]] = obj["spec"]
    assert out, f"render with {root}: no ResourceQuota"
    return out


def current_root() -> Path:
    return operator_image.ROOT


def live_quotas(r, namespaces: list[str]) -> Quotas:
    out: Quotas = {}
    for ns in namespaces:
        items = json.loads(r.kubectl("-n", ns, "get", "resourcequotas", "-o", "json"))["items"]
        out[ns] = {q["metadata"]["name"]: q["spec"] for q in items if not q["metadata"].get("deletionTimestamp")}
    return out


def quantities(hard: dict[str, str]) -> dict[str, object]:
    """``hard`` with its values parsed (the API server may print a quantity in another canonical form)."""
    return {k: parse_quantity(v) for k, v in hard.items()}


def mismatches(live: Quotas, wanted: Quotas) -> list[str]:
    """Where the live quotas differ from ``wanted``: a quota missing or extra, another ``hard`` or scope."""
    out = []
    for ns in sorted(wanted.keys() | live.keys()):
        have, want = live.get(ns, {}), wanted.get(ns, {})
        for name in sorted(have.keys() | want.keys()):
            if name not in have:
                out.append(f"{ns}/{name}: missing")
            elif name not in want:
                out.append(f"{ns}/{name}: present, not rendered ({have[name].get('hard')})")
            elif quantities(have[name].get("hard") or {}) != quantities(want[name].get("hard") or {}):
                out.append(f"{ns}/{name}: hard {have[name].get('hard')}, rendered {want[name].get('hard')}")
            elif have[name].get("scopeSelector") != want[name].get("scopeSelector"):
                out.append(f"{ns}/{name}: scopeSelector {have[name].get('scopeSelector')}, rendered "
                           f"{want[name].get('scopeSelector')}")
    return out
