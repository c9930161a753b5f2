"""The CRDs' names as kubectl resolves them against the real API server (issue 22, item 13): the most natural
command, `kubectl get sovereignsuite NAME`, must find the suite. kubectl expands a category before it looks a
name up, so a category equal to a resource's name made it two resources ("you must specify only one resource")."""

from __future__ import annotations

import subprocess

from sovereign_suite.devcluster.cluster import bin_dir

from .operator_fixture import SUITES, suite_doc

CATEGORY = "sovereign-suite"  # api/crdgen.py CATEGORY (written out: the test must mean the same on any version)


def kubectl(cluster, tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    # a discovery cache of its own: another cluster on the same port earlier must not answer for this one
    return subprocess.run([str(bin_dir() / "kubectl"), "--kubeconfig", str(cluster.kubeconfig),
                           "--cache-dir", str(tmp_path / "kube-cache"), *args], capture_output=True, text=True)


def test_kubectl_gets_a_suite_by_its_singular_plural_and_short_names_and_lists_the_category(
        cluster, kube, namespace, tmp_path):
    doc = suite_doc("two-countries", namespace)
    kube.create(doc)
    name = doc["metadata"]["name"]
    want = f"sovereignsuite.sovereignsuite.io/{name}"
    for resource in ("sovereignsuite", "sovereignsuites", "suite", "sovereignsuite.sovereignsuite.io"):
        got = kubectl(cluster, tmp_path, "get", resource, name, "-n", namespace, "-o", "name")
        assert got.returncode == 0, f"kubectl get {resource} {name}: {got.stderr.strip()}"
        assert got.stdout.split() == [want], (resource, got.stdout)
    cloud = kubectl(cluster, tmp_path, "get", "nationalcloud", "fr-secnumcloud", "-o", "name")
    assert cloud.returncode == 0 and cloud.stdout.split() == ["nationalcloud.sovereignsuite.io/fr-secnumcloud"], \
        cloud.stderr

    # the category lists both kinds: the namespace's suites and the (cluster-scoped) clouds
    listed = kubectl(cluster, tmp_path, "get", CATEGORY, "-n", namespace, "-o", "name")
    assert listed.returncode == 0, listed.stderr
    names = listed.stdout.split()
    assert want in names and "nationalcloud.sovereignsuite.io/fr-secnumcloud" in names, names
    kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
