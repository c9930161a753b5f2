"""The operator's alerts (manifests/monitoring/): checked and unit-tested with Prometheus' own promtool.

``promtool test rules`` runs tests/data/alerts/*.test.yaml: synthetic series in, the alerts that fire (with
their labels and rendered annotations) out. The plain rules file is the PrometheusRule's spec;
``python -m tests.test_alerts`` rewrites it after an edit of prometheusrule.yaml.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "manifests" / "monitoring"
PROMETHEUS_RULE = MONITORING / "prometheusrule.yaml"
DASHBOARD = MONITORING / "dashboard.json"
RULES = MONITORING / "rules.yaml"
ALERT_TESTS = sorted((ROOT / "tests" / "data" / "alerts").glob("*.test.yaml"))
RUNBOOKS = ROOT / "docs" / "runbooks"
RULES_HEADER = ("# Generated from prometheusrule.yaml (its spec) by `python -m tests.test_alerts`: do not edit.\n"
                "# For a Prometheus without the Prometheus Operator: list this file under rule_files.\n")


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the longer expressions) as literal blocks, as they are written in the PrometheusRule."""


_Dumper.add_representer(str, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s
                                                              else None))


def rules_text() -> str:
    spec = yaml.safe_load(PROMETHEUS_RULE.read_text())["spec"]
    return RULES_HEADER + yaml.dump(spec, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        msg = "promtool not found: run hack/install-prometheus.sh (Debian's prometheus package)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return path


def alert_rules() -> list[dict]:
    spec = yaml.safe_load(PROMETHEUS_RULE.read_text())["spec"]
    return [r for g in spec["groups"] for r in g["rules"] if "alert" in r]


def test_plain_rules_file_is_the_prometheusrule_spec():
    assert RULES.read_text() == rules_text(), "rules.yaml is stale: run `python -m tests.test_alerts`"


def test_promtool_check_rules():
    out = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in out.stdout + out.stderr


@pytest.mark.parametrize("test_file", ALERT_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests(test_file):
    out = subprocess.run([promtool(), "test", "rules", test_file.name], cwd=test_file.parent,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout + out.stderr


def test_every_alert_is_unit_tested_firing_and_silent():
    """Each alert name appears in a promtool test where it fires and in one where it stays silent."""
    fired, silent = set(), set()
    for path in ALERT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for a in case.get("alert_rule_test", []):
                (fired if a.get("exp_alerts") else silent).add(a["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert names - fired == set(), "alerts never shown firing"
    assert names - silent == set(), "alerts never shown silent"


def test_every_alert_has_severity_summary_and_an_existing_runbook():
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("https://") and url.endswith(f"/docs/runbooks/{name}.md"), (name, url)
        runbook = RUNBOOKS / f"{name}.md"
        assert runbook.is_file(), f"{name}: {runbook} missing"
        assert runbook.read_text().startswith(f"# {name}\n"), runbook


def exported_metrics() -> set[str]:
    """Every series name the operator process can export (its metrics modules register them at import)."""
    from prometheus_client import REGISTRY

    import sovereign_suite.metrics  # noqa: F401 - registers the operator's metrics
    import sovereign_suite.reconcile.gpu  # noqa: F401 - the GPU gauges

    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "info": ["_info"], "gauge": [""]}
    return {m.name + suffix for m in REGISTRY.collect() for suffix in suffixes.get(m.type, [""])}


def trainer_metrics() -> set[str]:
    """Every series name the trainer serves while it runs (finetune/progress.py, its own registry)."""
    from sovereign_suite.finetune.progress import Progress

    return {m.name for m in Progress().registry.collect()}


def test_alerts_use_only_metrics_the_operator_exports():
    exported, trainer = exported_metrics(), trainer_metrics()
    for rule in alert_rules():
        for name in re.findall(r"\bsovereign_suite_[a-z_]+", rule["expr"]):
            assert name in exported, f"{rule['alert']}: {name} is not a metric of the operator"
        for name in re.findall(r"\bsovereign_finetune_[a-z_]+", rule["expr"]):
            assert name in trainer, f"{rule['alert']}: {name} is not a metric of the trainer"


def test_dashboard_is_well_formed_and_queries_known_metrics():
    """Quick checks without Prometheus; tests/cluster/test_prometheus.py runs every query on a real one."""
    dash = json.loads(DASHBOARD.read_text())
    panels = dash["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "suite", "country"} <= variables
    exported, trainer = exported_metrics(), trainer_metrics()
    queries = 0
    names: set[str] = set()
    for p in panels:
        assert 0 <= p["gridPos"]["x"] and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"] and p.get("description"), p["title"]
        for t in p["targets"]:
            queries += 1
            assert set(re.findall(r"\$\{?(\w+)", t["expr"])) <= variables, t["expr"]
            for name in re.findall(r"\bsovereign_suite_[a-z_]+", t["expr"]):
                assert name in exported, f"panel {p['title']!r}: {name} is not a metric of the operator"
                names.add(name)
            for name in re.findall(r"\bsovereign_finetune_[a-z_]+", t["expr"]):
                assert name in trainer, f"panel {p['title']!r}: {name} is not a metric of the trainer"
                names.add(name)
    assert queries >= 15
    # the fine-tuning panels (issue 25): the FineTunes' phases and results from the operator, loss and
    # throughput live from the trainer
    assert {"sovereign_suite_finetune_phase", "sovereign_suite_finetune_eval_loss",
            "sovereign_finetune_loss", "sovereign_finetune_tokens_per_second", "sovereign_finetune_step"} <= names


if __name__ == "__main__":  # python -m tests.test_alerts: rewrite rules.yaml from prometheusrule.yaml
    RULES.write_text(rules_text())
    print(f"wrote {RULES.relative_to(ROOT)}", file=sys.stderr)
