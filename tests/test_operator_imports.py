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
