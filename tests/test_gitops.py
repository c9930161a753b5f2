"""GitOps health of a SovereignSuite, checked with the real code of the tools that read it.

Argo CD: manifests/argocd/health.lua runs through Argo CD's own util/lua and settings code (hack/tools/luahealth),
from the argocd-cm patch we ship. Flux: kstatus from sigs.k8s.io/cli-utils (hack/tools/kstatus), what
kustomize-controller's `wait`/healthChecks use. The inputs in manifests/argocd/testdata/ were written by the
operator itself; tests/cluster/test_gitops_live.py does the same on a live suite.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .helpers import ROOT, built_tools

ARGOCD = ROOT / "manifests" / "argocd"
TESTDATA = ARGOCD / "testdata"
CM_PATCH = ARGOCD / "argocd-cm-patch.yaml"
HEALTH_KEY = "resource.customizations.health.sovereignsuite.io_SovereignSuite"
TOOLS = ("luahealth", "kstatus")


def gitops_bin() -> Path:
    """The folder holding luahealth and kstatus (built by hack/build-tools.sh; tests/helpers.py)."""
    return built_tools(TOOLS, "gitops")


def run(cmd: list, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def argo_health(bin_dir: Path, *objects: Path, cm: Path = CM_PATCH) -> list[dict]:
    """Argo CD health ({object, status, message}) of each object, the way the application controller computes it."""
    return json_lines(run([bin_dir / "luahealth", "eval", "-argocd-cm", cm, *objects]).stdout)


def kstatus(bin_dir: Path, *objects: Path) -> list[dict]:
    return json_lines(run([bin_dir / "kstatus", *objects]).stdout)


@pytest.fixture(scope="module")
def tools() -> Path:
    return gitops_bin()


def data(name: str) -> Path:
    return TESTDATA / f"{name}.yaml"


# ---- Argo CD ---------------------------------------------------------------------------------------------


def test_argocd_cm_patch_carries_health_lua_byte_for_byte():
    patch = yaml.safe_load(CM_PATCH.read_text())
    assert (patch["kind"], patch["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    assert patch["data"][HEALTH_KEY] == (ARGOCD / "health.lua").read_text(), (
        f"{CM_PATCH} is out of date: paste manifests/argocd/health.lua under {HEALTH_KEY}")


def test_health_tests_cover_every_testdata_file_and_every_status():
    cases = yaml.safe_load((ARGOCD / "health_test.yaml").read_text())["tests"]
    inputs = {c["inputPath"] for c in cases}
    assert inputs == {f"testdata/{p.name}" for p in TESTDATA.glob("*.yaml")}
    assert {c["healthStatus"]["status"] for c in cases} == {"Healthy", "Progressing", "Degraded", "Suspended"}


def test_health_test_yaml_passes_in_argo_cd(tools):
    proc = run([tools / "luahealth", "test", "-argocd-cm", CM_PATCH, "-script", ARGOCD / "health.lua",
                ARGOCD / "health_test.yaml"])
    cases = yaml.safe_load((ARGOCD / "health_test.yaml").read_text())["tests"]
    assert proc.stdout.count("\nok ") + proc.stdout.startswith("ok ") == len(cases), proc.stdout


def test_a_wrong_expectation_fails(tools, tmp_path):
    shutil.copytree(TESTDATA, tmp_path / "testdata")
    cases = yaml.safe_load((ARGOCD / "health_test.yaml").read_text())
    ready = next(c for c in cases["tests"] if c["inputPath"] == "testdata/ready.yaml")
    ready["healthStatus"]["status"] = "Progressing"
    (tmp_path / "health_test.yaml").write_text(yaml.safe_dump(cases))
    proc = run([tools / "luahealth", "test", "-argocd-cm", CM_PATCH, tmp_path / "health_test.yaml"], check=False)
    assert proc.returncode == 1
    assert "FAIL testdata/ready.yaml" in proc.stdout and "got  Healthy" in proc.stdout
    assert "1 health test(s) failed" in proc.stderr


def test_a_stale_argocd_cm_patch_is_reported(tools, tmp_path):
    script = tmp_path / "health.lua"
    script.write_text((ARGOCD / "health.lua").read_text() + "-- edited\n")
    proc = run([tools / "luahealth", "test", "-argocd-cm", CM_PATCH, "-script", script, ARGOCD / "health_test.yaml"],
               check=False)
    assert proc.returncode == 1 and "differs from the health script for sovereignsuite.io/SovereignSuite" in proc.stderr


def test_bad_health_test_file_names_the_field(tools, tmp_path):
    bad = tmp_path / "health_test.yaml"
    bad.write_text("tests:\n- healthStatus: {status: Healthy}\n")
    proc = run([tools / "luahealth", "test", "-argocd-cm", CM_PATCH, bad], check=False)
    assert proc.returncode == 1 and "tests[0]: inputPath and healthStatus.status are required" in proc.stderr


def _cm(tmp_path: Path, script: str, open_libs: bool) -> Path:
    data = {HEALTH_KEY: script}
    if open_libs:
        data["resource.customizations.useOpenLibs.sovereignsuite.io_SovereignSuite"] = "true"
    path = tmp_path / f"argocd-cm-{open_libs}.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm"},
                                    "data": data}))
    return path


def test_argo_cd_sandbox_is_the_real_one(tools, tmp_path):
    """A script from argocd-cm runs without Lua's string library unless useOpenLibs is set: our health.lua
    must (and does) work without it. This is Argo CD's behaviour, not ours, so it proves which code runs."""
    script = 'return {status = "Healthy", message = string.format("%d", obj.metadata.generation)}\n'
    sandboxed = run([tools / "luahealth", "eval", "-argocd-cm", _cm(tmp_path, script, False), data("ready")],
                    check=False)
    assert sandboxed.returncode == 1 and "string" in sandboxed.stderr
    opened = argo_health(tools, data("ready"), cm=_cm(tmp_path, script, True))
    assert opened[0]["status"] == "Healthy" and opened[0]["message"] == "1"


def test_patch_applies_with_kustomize_and_argo_cd_reads_it(tools, tmp_path):
    """The patch merges into the argocd-cm of an Argo CD install (namespace set by the kustomization), and the
    merged ConfigMap gives the same health."""
    kubectl = tools / "kubectl"
    if not kubectl.exists():
        pytest.skip(f"kubectl not built in {tools}")
    (tmp_path / "argocd-cm.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "argocd-cm", "labels": {"app.kubernetes.io/part-of": "argocd"}}}))
    shutil.copy(CM_PATCH, tmp_path / CM_PATCH.name)
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": "argocd",
        "resources": ["argocd-cm.yaml"], "patches": [{"path": CM_PATCH.name}]}))
    built = run([kubectl, "kustomize", tmp_path]).stdout
    merged = yaml.safe_load(built)
    assert merged["metadata"]["namespace"] == "argocd"
    assert merged["data"][HEALTH_KEY] == (ARGOCD / "health.lua").read_text()
    (tmp_path / "built.yaml").write_text(built)
    assert argo_health(tools, data("ready"), cm=tmp_path / "built.yaml")[0]["status"] == "Healthy"


# ---- Flux / kstatus --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, status", [
    ("ready", "Current"),
    ("progressing", "InProgress"),
    ("stalled", "Failed"),
    ("stale-generation", "InProgress"),
    ("degraded", "InProgress"),  # Reconciling=True wins in kstatus; Argo CD shows Degraded
    ("paused", "Current"),  # Ready=True and nothing reconciling
    ("terminating", "Terminating"),
    ("no-status", "Current"),  # kstatus caveat: no observedGeneration and no conditions reads as Current
])
def test_kstatus_of_what_the_operator_writes(tools, name, status):
    [result] = kstatus(tools, data(name))
    assert result["status"] == status, result


def test_kstatus_messages_come_from_the_conditions(tools):
    stalled, stale = kstatus(tools, data("stalled"), data("stale-generation"))
    cond = next(c for c in yaml.safe_load(data("stalled").read_text())["status"]["conditions"] if c["type"] == "Stalled")
    assert stalled["message"] == cond["message"]
    assert stale["message"] == "SovereignSuite generation is 2, but latest observed generation is 1"


def test_kstatus_reads_several_documents_and_rejects_bad_input(tools, tmp_path):
    both = tmp_path / "both.yaml"
    both.write_text(data("ready").read_text() + "\n---\n" + data("stalled").read_text())
    assert [r["status"] for r in kstatus(tools, both)] == ["Current", "Failed"]
    for text, error in (("metadata: {name: x}\n", "Object 'Kind' is missing"),
                        ("kind: SovereignSuite\nmetadata: {name: x}\n", "apiVersion and kind are required")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        proc = run([tools / "kstatus", bad], check=False)
        assert proc.returncode == 1 and f"{bad}: document 0:" in proc.stderr and error in proc.stderr


def test_argo_cd_and_kstatus_agree_where_both_have_a_word_for_it(tools):
    """Healthy <-> Current and Degraded-by-Stalled <-> Failed on the same objects; the differences (no status,
    Degraded while reconciling, paused) are the documented ones in docs/gitops.md."""
    names = ["ready", "progressing", "stalled", "stale-generation"]
    argo = [r["status"] for r in argo_health(tools, *map(data, names))]
    flux = [r["status"] for r in kstatus(tools, *map(data, names))]
    assert list(zip(argo, flux)) == [("Healthy", "Current"), ("Progressing", "InProgress"), ("Degraded", "Failed"),
                                     ("Progressing", "InProgress")]


def docs_kustomization(tmp_path: Path) -> Path:
    """The Flux Kustomization example of docs/gitops.md, so the documented expressions are the tested ones."""
    text = (ROOT / "docs" / "gitops.md").read_text()
    blocks = [b.split("\n", 1)[1].split("```")[0] for b in text.split("```yaml")[1:]]
    [ks] = [b for b in blocks if "kind: Kustomization" in b and "healthCheckExprs" in b]
    path = tmp_path / "ks.yaml"
    path.write_text(ks)
    return path


@pytest.mark.parametrize("name, status", [
    ("ready", "Current"),
    ("progressing", "InProgress"),
    ("stalled", "Failed"),
    ("stale-generation", "InProgress"),
    ("degraded", "Failed"),  # unlike plain kstatus: Unschedulable needs a person
    ("paused", "Current"),
    ("no-status", "Unknown"),  # not Current: Flux keeps waiting for the operator's first status
])
def test_flux_health_check_exprs_from_the_docs(tools, tmp_path, name, status):
    [result] = json_lines(run([tools / "kstatus", "-kustomization", docs_kustomization(tmp_path), data(name)]).stdout)
    assert result["status"] == status, result
    if status == "Unknown":
        assert "no such attribute" in result["message"]


def test_bad_health_check_exprs_are_reported(tools, tmp_path):
    ks = tmp_path / "ks.yaml"
    ks.write_text(yaml.safe_dump({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                                  "spec": {"healthCheckExprs": [{"apiVersion": "sovereignsuite.io/v1alpha1",
                                                                 "kind": "SovereignSuite", "failed": "true"}]}}))
    proc = run([tools / "kstatus", "-kustomization", ks, data("ready")], check=False)
    assert proc.returncode == 1 and "expression Current not specified" in proc.stderr
