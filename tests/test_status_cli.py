"""`sovereign-suite status`: the country x component table, coloured on a terminal, plain when piped."""

from __future__ import annotations

from sovereign_suite.status import GREEN, RED, table

SUITE = {
    "metadata": {"namespace": "ops", "name": "eu"},
    "status": {
        "conditions": [{"type": "Ready", "status": "False", "reason": "ComponentsNotReady",
                        "message": "de/llm: Unschedulable 0/19 nodes are available"}],
        "tenants": [
            {"country": "FR", "components": [
                {"name": "matrix", "ready": True, "readyReplicas": 4, "desiredReplicas": 4, "reason": ""},
                {"name": "jitsi", "ready": True, "readyReplicas": 5, "desiredReplicas": 5, "reason": ""}]},
            {"country": "DE", "components": [
                {"name": "matrix", "ready": True, "readyReplicas": 4, "desiredReplicas": 4, "reason": ""},
                {"name": "llm", "ready": False, "readyReplicas": 2, "desiredReplicas": 3,
                 "reason": "Unschedulable"}]},
        ],
    },
}


def test_plain_table_when_piped():
    text = table(SUITE, colour=False)
    lines = text.splitlines()
    assert lines[0] == "ops/eu: Ready=False (ComponentsNotReady)"
    assert lines[1].split() == ["COUNTRY", "MATRIX", "JITSI", "DOCS", "LLM"]
    assert lines[2].split() == ["FR", "4/4", "5/5", "-", "-"]
    assert lines[3].split() == ["DE", "4/4", "-", "-", "2/3", "Unschedulable"]
    assert "de/llm: Unschedulable" in lines[4]
    assert "\033[" not in text


def test_colours_on_a_terminal():
    text = table(SUITE, colour=True)
    assert f"{GREEN}4/4" in text and f"{RED}2/3 Unschedulable" in text


def test_suite_not_reconciled_yet():
    assert table({"metadata": {"namespace": "ops", "name": "new"}}, colour=False).splitlines()[0] == \
        "ops/new: not reconciled yet"


def test_warnings_are_printed_under_the_table():
    """status.warnings (issue 22, item 15): one "warning:" line each, whatever Ready says."""
    suite = {"metadata": {"namespace": "ops", "name": "eu"}, "status": {
        "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "8 components ready"}],
        "tenants": [],
        "warnings": [{"reason": "EgressNotDeclared", "field": "spec.network.egress.oidc",
                      "message": "docs needs it to reach https://id.example.eu"}]}}
    lines = table(suite, colour=False).splitlines()
    assert lines[0] == "ops/eu: Ready=True (Ready)"
    assert lines[-1] == "warning: spec.network.egress.oidc: docs needs it to reach https://id.example.eu"
