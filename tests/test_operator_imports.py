"""What the running operator imports: the code its passes use, not the programs it only renders Jobs for. The
backup program's S3 client and archive reader load only when a pass restores a backup (reconcile/restore_secrets.py):
each replica held about 1 MiB more from its start when they were imported with the handlers (bench/memory_breakdown.py,
docs/performance.md "Where the memory goes")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

OPERATOR = Path(__file__).resolve().parent.parent / "operator"

LOADED = """
import json, sys
import sovereign_suite.cli, sovereign_suite.reconcile.runner
from sovereign_suite.reconcile import handlers  # what `sovereign-suite run` imports before Kopf starts
print(json.dumps(sorted(m for m in sys.modules if m.startswith("sovereign_suite.backup"))))
"""


def test_the_operator_does_not_import_the_backup_program_until_a_restore():
    out = subprocess.run([sys.executable, "-c", LOADED], capture_output=True, text=True, check=True,
                         cwd=str(OPERATOR))
    loaded = json.loads(out.stdout)
    for module in ("program", "s3", "restore", "sealed"):
        assert f"sovereign_suite.backup.{module}" not in loaded, loaded


def test_a_restore_still_reaches_the_backup_reader():
    """The imports moved into fetch() resolve: a restore whose bucket cannot be read is the Problem it was."""
    from sovereign_suite.api.backups import Backups, ObjectStorage
    from sovereign_suite.reconcile.restore_secrets import fetch

    secret = {"metadata": {"labels": {"sovereignsuite.io/referenceable": "true"}},
              "data": {"AWS_ACCESS_KEY_ID": "YQ==", "AWS_SECRET_ACCESS_KEY": "Yg=="}}
    storage = ObjectStorage.model_validate({"endpoint": "http://127.0.0.1:9", "bucket": "backups",
                                            "credentialsSecretRef": "s3"})
    backups = Backups()  # no restoreFrom identity: the bucket is read first
    problem = fetch(lambda ns, name: secret, "suites", backups, storage, "eu/fr", "latest")
    assert problem.reason == "RestoreSourceMissing", problem
    assert "cannot be read" in problem.message


RUN_PATH = """
import sys
import sovereign_suite.cli, sovereign_suite.reconcile.runner
from sovereign_suite.reconcile.kopf_import import kopf  # runner.main's first import
import prometheus_client
from sovereign_suite.reconcile import handlers
from sovereign_suite.leader import elector
from sovereign_suite.reconcile.context import OperatorContext, Settings
from sovereign_suite.reconcile.kube import Kube
from sovereign_suite.reconcile.credentials import hub_client
from sovereign_suite.members import kubeconfig
from sovereign_suite.reconcile import targets, watchloop, watchstream, gpu, storage_hold, finetune_quota
from kopf._core.intents import registries
api = hub_client()  # the kubeconfig of the environment below
ctx = OperatorContext(Kube(api), Settings())
assert type(registries.get_default_registry()) is kopf.OperatorRegistry, "Kopf's smart registry imports kubernetes"
assert "kubernetes" not in sys.modules, sorted(m for m in sys.modules if m.startswith("kubernetes"))
print(type(api).__module__)
"""


def test_the_operator_never_imports_the_kubernetes_package(tmp_path):
    """``sovereign-suite run`` with a kubeconfig of client-certificate files (kwokctl's, the devcluster's): its
    imports, its hub client and Kopf's registry load no part of the ``kubernetes`` package (27.5 MiB of RSS:
    reconcile/apiclient.py), though it is installed (the CLI commands use it)."""
    (tmp_path / "config").write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:9', certificate-authority: ca.crt}}]\n"
        "users: [{name: u, user: {client-certificate: a.crt, client-key: a.key}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n")
    env = {"PATH": "/usr/bin:/bin", "KUBECONFIG": str(tmp_path / "config"), "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", RUN_PATH], capture_output=True, text=True, cwd=str(OPERATOR),
                         env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "sovereign_suite.reconcile.apiclient"


def test_a_kubeconfig_that_needs_an_exec_plugin_gets_the_official_client(tmp_path):
    """The fallback (credentials.py): the official loader, imported only then, with the same transport settings."""
    (tmp_path / "config").write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: 'true'}}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n")
    code = ("import sys\nfrom sovereign_suite.reconcile.credentials import hub_client\napi = hub_client(9)\n"
            "c = api.configuration\nprint(type(api).__module__, c.retries, c.connection_pool_maxsize, "
            "bool(c.socket_options))")
    env = {"PATH": "/usr/bin:/bin", "KUBECONFIG": str(tmp_path / "config"), "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(OPERATOR), env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["kubernetes.client.api_client", "False", "9", "True"]
