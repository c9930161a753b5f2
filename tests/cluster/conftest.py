"""Fixtures for tests on the real local control plane (see docs/development.md).

One cluster per test session, started once and deleted at the end; when a test failed, the control plane's
logs are copied to $SOVEREIGN_SUITE_CACHE/test-logs/<cluster>/ first. Each test gets a fresh namespace.
When the binaries cannot be built, cluster tests fail with the reason under CI=true and are skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from kubernetes import client, config, dynamic

from sovereign_suite.devcluster.cluster import Cluster, ClusterError, bin_dir, cache_dir

_failed = False


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    global _failed
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and "cluster" in item.keywords:
        _failed = True


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if Path(item.fspath).is_relative_to(here):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def cluster():
    try:
        bin_dir(build=True)
    except (ClusterError, OSError, Exception) as err:  # noqa: BLE001 - any build failure is reported the same way
        msg = f"local control plane binaries unavailable: {err}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    c = Cluster(f"pytest-{os.getpid()}")
    try:
        c.up(progress=lambda m: print(f"[cluster] {m}"))
    except Exception:
        _keep_logs(c)
        c.down()
        raise
    yield c
    if _failed:
        _keep_logs(c)
    c.down()


def _keep_logs(c: Cluster) -> None:
    dest = cache_dir() / "test-logs" / c.name
    shutil.rmtree(dest, ignore_errors=True)
    if c.logs_dir.exists():
        shutil.copytree(c.logs_dir, dest, dirs_exist_ok=True)
        print(f"\n[cluster] control plane logs of {c.name} kept in {dest}")


@pytest.fixture(scope="session")
def api(cluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(cluster.kubeconfig))


@pytest.fixture(scope="session")
def dyn(api) -> dynamic.DynamicClient:
    return dynamic.DynamicClient(api)


@pytest.fixture(scope="session")
def core(api) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture(scope="module")
def kube(api):
    """Our raw-JSON client, with a user agent of its own (the audit-log counts tell it from the operator)."""
    from sovereign_suite.reconcile.kube import Kube

    return Kube(api, user_agent="sovereign-suite-tests")


@pytest.fixture(scope="module")
def operator(cluster):
    """The operator as a real process (`sovereign-suite run`) for the module's tests, drift pass every 3 s."""
    from .operator_fixture import OperatorProcess

    op = OperatorProcess(cluster, drift_interval=3.0)
    op.start()
    yield op
    op.stop()


@pytest.fixture()
def namespace(core, request):
    name = f"t-{request.node.name[:40].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:5]}"
    name = "".join(ch for ch in name if ch.isalnum() or ch == "-")
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def wait_for(predicate, timeout: float = 60, interval: float = 0.3, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def crd_names(path) -> list[str]:
    """The CustomResourceDefinitions in a YAML file or a folder of them."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(list(p.glob("*.yaml")) + list(p.glob("*.yml")))
    return [d["metadata"]["name"] for f in files for d in yaml.safe_load_all(f.read_text())
            if d and d.get("kind") == "CustomResourceDefinition"]


def wait_crds(kube, path, established: bool = True, timeout: float = 180) -> None:
    """Until every CRD of ``path`` is Established (``established``), or is gone or not being deleted (before
    installing it again: applying a CRD that is still being deleted makes it come back in a broken state).
    Polled here: `kubectl wait --for=condition=Established` fails at once, instead of waiting, while a fresh CRD
    has no conditions yet (seen with kubectl 1.37.2 on a loaded machine)."""
    crd = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    names = crd_names(path)
    assert names, f"no CustomResourceDefinition in {path}"

    def ready(name: str) -> bool:
        obj = kube.get(*crd, name)
        if not established:
            return obj is None or not obj["metadata"].get("deletionTimestamp")
        conds = ((obj or {}).get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Established" and c.get("status") == "True" for c in conds)

    wait_for(lambda: all(ready(n) for n in names), timeout=timeout,
             what=f"CRDs of {Path(path).name} {'established' if established else 'not being deleted'}")


@contextmanager
def serving_test_crds(cluster, kube, sets: tuple[str, ...] = ("cnpg",)) -> Iterator[Path]:
    """The CRDs hack/fetch-test-crds.sh fetches (CloudNativePG's Cluster; ``sets`` may add e.g. ``cnpg-backup``)
    applied and Established; deleted on exit, so that the next module starts without them (test_render_dryrun
    counts on CloudNativePG not being served). Yields the first set's folder."""
    script = str(Path(__file__).resolve().parents[2] / "hack" / "fetch-test-crds.sh")
    subprocess.run([script], check=True)
    folders = [Path(line) for name in sets for line in subprocess.run(
        [script, "--print", name], check=True, capture_output=True, text=True).stdout.split()]

    def kubectl(*args: str) -> None:
        proc = subprocess.run([str(bin_dir() / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), *args],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr.strip()[-2000:]}"

    for crds in folders:
        wait_crds(kube, crds, established=False)
    try:
        for crds in folders:
            kubectl("apply", "--server-side", "-f", str(crds))
        for crds in folders:
            wait_crds(kube, crds)
        yield folders[0]
    finally:
        for crds in folders:
            kubectl("delete", "--ignore-not-found", "--timeout=180s", "-f", str(crds))
