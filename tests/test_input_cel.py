"""Issue 15: the CEL transition rule that keeps a tenant's domain (Synapse's server_name) from ever changing.

The rule runs on a real API server in tests/cluster; here the generated CRD text is checked, and the rule's
boolean structure is evaluated on every transition by translating its few CEL operators to Python."""

from __future__ import annotations

import re

import pytest
import yaml

from sovereign_suite.api import crdgen

from .helpers import ROOT


def tenant_rules(crd: dict) -> dict[str, str]:
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return {v["rule"]: v["message"] for v in spec["properties"]["tenants"]["items"]["x-kubernetes-validations"]}


def test_the_committed_crd_holds_the_two_way_domain_rule():
    committed = yaml.safe_load((ROOT / "crds" / "sovereignsuites.yaml").read_text())
    rules = tenant_rules(committed)
    assert crdgen.TENANT_DOMAIN_RULE in rules
    assert "may not be added, removed or changed" in rules[crdgen.TENANT_DOMAIN_RULE]
    assert not [r for r in rules if r.startswith("!has(oldSelf.domain)")], "the one-way rule is back"


def _evaluate(rule: str, old: dict, new: dict) -> bool:
    """The rule with CEL's has(), &&, ||, ! and == spelled in Python (the rule uses nothing else)."""
    assert set(re.findall(r"[A-Za-z_]+\(", rule)) <= {"has("}, rule
    expr = re.sub(r"has\((self|oldSelf)\.(\w+)\)", r"('\2' in \1)", rule)
    expr = re.sub(r"(self|oldSelf)\.(\w+)", r"\1['\2']", expr)
    expr = expr.replace("&&", " and ").replace("||", " or ").replace("!(", " not (").replace("!=", "__NE__")
    expr = expr.replace("__NE__", "!=")
    return bool(eval(expr, {}, {"self": new, "oldSelf": old}))  # noqa: S307 - our own constant rule


NONE: dict = {"country": "FR", "cloud": "fr"}
CHAT = {**NONE, "domain": "chat.example.eu"}
OTHER = {**NONE, "domain": "other.example.eu"}


@pytest.mark.parametrize("old, new, allowed", [
    (NONE, NONE, True),
    (CHAT, CHAT, True),
    (NONE, CHAT, False),  # issue 15: adding a domain changed server_name from fr.<spec.domain>
    (CHAT, NONE, False),
    (CHAT, OTHER, False),
])
def test_domain_transitions(old, new, allowed):
    assert _evaluate(crdgen.TENANT_DOMAIN_RULE, old, new) is allowed
