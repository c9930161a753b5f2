"""``sovereign-suite`` as a user runs it: a subprocess, its exit code, stdout and stderr.

tests/data/invalid/<case>.yaml is validated with the example clouds (plus <case>.clouds.yaml when present); the
CLI must exit 1 and print exactly the lines of <case>.expected on stderr, one per problem, never a traceback.
"""

from __future__ import annotations

import json

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sovereign_suite.api import crdgen

from .helpers import CLOUDS, EXAMPLE_FILES, ROOT, load_example

INVALID = ROOT / "tests" / "data" / "invalid"
CASES = sorted(p.name[: -len(".yaml")] for p in INVALID.glob("*.yaml") if not p.name.endswith(".clouds.yaml"))
# Known bugs: the .expected file holds the intended message; strict, so the marker must go once it is fixed.
TENANCY_POLICIES = {"default-deny-ingress", "default-deny-egress", "allow-egress-dns", "allow-egress-same-namespace",
                    "allow-egress-public-hosts", "allow-to-synapse"}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Paths are relative to the repository root, as a user in a checkout types them (and as .expected holds)."""
    return subprocess.run([sys.executable, "-m", "sovereign_suite.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def assert_clean_failure(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert proc.returncode == 1, f"exit {proc.returncode}; stderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines and all(line.startswith("error: ") for line in lines), proc.stderr
    return lines


def test_every_invalid_case_has_an_expected_file():
    assert len(CASES) >= 10
    missing = [c for c in CASES if not (INVALID / f"{c}.expected").exists()]
    assert not missing, f"no .expected for {missing}"
    orphans = [p.name for p in INVALID.glob("*.expected") if p.stem not in CASES]
    assert not orphans, f".expected without input: {orphans}"


@pytest.mark.parametrize("case", CASES)
def test_validate_reports_each_problem_on_one_line(case):
    args = ["validate", "-f", rel(INVALID / f"{case}.yaml"), "--clouds", rel(CLOUDS)]
    if (INVALID / f"{case}.clouds.yaml").exists():
        args += ["--clouds", rel(INVALID / f"{case}.clouds.yaml")]
    proc = run_cli(*args)
    lines = assert_clean_failure(proc)
    expected = (INVALID / f"{case}.expected").read_text(encoding="utf-8").splitlines()
    assert lines == expected
    assert proc.stdout == ""


def test_validate_accepts_the_examples():
    for name, path in EXAMPLE_FILES.items():
        proc = run_cli("validate", "-f", rel(path), "--clouds", rel(CLOUDS))
        suite, _ = load_example(name)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"{suite.name}: valid ({len(suite.spec.tenants)} tenants, "), proc.stdout
        assert proc.stderr == "", proc.stderr  # they declare the egress their components use: no warning


def test_validate_warns_about_undeclared_egress_and_still_exits_0(tmp_path):
    """A suite whose Docs and LLMs have no declared egress is valid, with one warning line per purpose naming the
    field to set, on stderr (issue 22, item 15)."""
    doc = yaml.safe_load(EXAMPLE_FILES["four-countries"].read_text())
    doc["spec"].pop("network")
    clouds = [d for d in yaml.safe_load_all(CLOUDS.read_text()) if d]
    for cloud in clouds:
        cloud["spec"]["network"]["egress"] = {}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(doc))
    (tmp_path / "clouds.yaml").write_text(yaml.safe_dump_all(clouds))
    proc = run_cli("validate", "-f", str(tmp_path / "suite.yaml"), "--clouds", str(tmp_path / "clouds.yaml"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("eu-workplace: valid (4 tenants, "), proc.stdout
    lines = proc.stderr.splitlines()
    assert all(line.startswith("warning: eu-workplace: spec.network.egress.") for line in lines), proc.stderr
    fields = [line.split(": ")[2] for line in lines]
    assert fields == ["spec.network.egress.matrixFederation", "spec.network.egress.modelHub",
                      "spec.network.egress.oidc", "spec.network.egress.s3"]
    assert "docs needs it to reach https://id.workplace.example.eu/realms/suite" in lines[2]
    assert "FR (NationalCloud fr-secnumcloud), DE (NationalCloud de-c5), LU (NationalCloud lu-govcloud), " \
        "SE (NationalCloud se-sovereign)" in lines[2]


@pytest.fixture(scope="module")
def four_countries() -> list[dict]:
    proc = run_cli("render", "-f", rel(EXAMPLE_FILES["four-countries"]), "--clouds", rel(CLOUDS))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def test_render_emits_the_tenant_baseline(four_countries):
    suite, clouds = load_example("four-countries")
    namespaces = {f"{suite.name}-{t.country.lower()}": t for t in suite.spec.tenants}
    assert len(namespaces) == 4
    rendered = {o["metadata"]["name"]: o for o in four_countries if o["kind"] == "Namespace"}
    assert set(rendered) == set(namespaces)

    def objs(kind: str, ns: str) -> dict[str, dict]:
        return {o["metadata"]["name"]: o for o in four_countries
                if o["kind"] == kind and o["metadata"].get("namespace") == ns}

    for ns, tenant in namespaces.items():
        assert rendered[ns]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        quotas = objs("ResourceQuota", ns)  # storage, serving's and training's shares (tests/test_tenancy_quota.py)
        assert set(quotas) == {"tenant-quota", "tenant-serving", "tenant-fine-tuning"}
        gpu = clouds[tenant.cloud].spec.gpu.resource_name
        assert quotas["tenant-serving"]["spec"]["hard"][f"requests.{gpu}"] == str(tenant.quota.gpus)
        assert quotas["tenant-serving"]["spec"]["hard"]["requests.cpu"] == str(tenant.quota.cpu)
        assert len(objs("LimitRange", ns)) == 1

        policies = objs("NetworkPolicy", ns)
        assert TENANCY_POLICIES <= set(policies), sorted(policies)
        assert policies["default-deny-ingress"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
        assert policies["default-deny-egress"]["spec"] == {"podSelector": {}, "policyTypes": ["Egress"]}
        # no policy names another tenant's namespace: federation goes through the ingress controller
        # (tests/test_network_matrix.py proves the resulting matrix with a policy engine)
        assert not [n for n in namespaces if n != ns and n in json.dumps(list(policies.values()))]

        assert not objs("Role", ns)  # the tenant-admin rights are the chart's ClusterRole (docs/install.md)
        (binding,) = objs("RoleBinding", ns).values()
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                      "name": "sovereign-suite-tenant-admin"}
        assert binding["subjects"][0]["name"] == f"{suite.name}-{tenant.country.lower()}-admins"


def test_crds_prints_every_crd(tmp_path):
    proc = run_cli("crds")
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert {d["kind"] for d in docs} == {"CustomResourceDefinition"}
    assert sorted(d["metadata"]["name"] for d in docs) == [
        "finetunes.sovereignsuite.io", "nationalclouds.sovereignsuite.io", "sovereignsuites.sovereignsuite.io"]

    proc = run_cli("crds", "-o", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.yaml" for n in crdgen.CRDS)
    for name in crdgen.CRDS:  # the files are the committed crds/
        assert (tmp_path / f"{name}.yaml").read_text() == (ROOT / "crds" / f"{name}.yaml").read_text()


def test_render_output_dir_writes_one_file_per_suite(tmp_path):
    out = tmp_path / "rendered"
    proc = run_cli("render", "-f", rel(EXAMPLE_FILES["two-countries"]), "--clouds", rel(CLOUDS), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert [p.name for p in out.iterdir()] == ["eu-workplace.yaml"]
    text = (out / "eu-workplace.yaml").read_text()
    assert text == (ROOT / "tests" / "golden" / "two-countries.yaml").read_text()
    count = sum(1 for d in yaml.safe_load_all(text) if d)
    assert proc.stderr.strip() == f"wrote {out / 'eu-workplace.yaml'} ({count} objects)"


def test_missing_file_is_one_error_line():
    proc = run_cli("validate", "-f", "does/not/exist.yaml", "--clouds", rel(CLOUDS))
    assert assert_clean_failure(proc) == ["error: does/not/exist.yaml: cannot read: No such file or directory"]


def test_render_with_a_missing_clouds_file_errors_cleanly():
    proc = run_cli("render", "-f", rel(EXAMPLE_FILES["four-countries"]), "--clouds", "no-such-clouds.yaml")
    assert assert_clean_failure(proc) == ["error: no-such-clouds.yaml: cannot read: No such file or directory"]
    assert proc.stdout == ""  # nothing half-rendered


def test_render_without_clouds_names_the_missing_clouds():
    proc = run_cli("render", "-f", rel(EXAMPLE_FILES["two-countries"]))
    lines = assert_clean_failure(proc)
    assert lines == [
        "error: spec.tenants[0].cloud: NationalCloud 'fr-secnumcloud' not found (known: none)",
        "error: spec.tenants[1].cloud: NationalCloud 'de-c5' not found (known: none)",
    ]
    assert proc.stdout == ""
