"""What a crashing container's last words mean, when they are a known refusal: a Synapse that will not run on its
database says why in its log, and the operator says so in the status instead of a bare CrashLoopBackOff.

Pure: reads the termination message (the tail of the log for containers rendered with terminationMessagePolicy
FallbackToLogsOnError, as Synapse's are: components/matrix/templates/synapse.yaml.j2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Cause:
    reason: str  # a condition reason
    message: str  # what it means and what to do


# element-hq/synapse synapse/storage/prepare_database.py (v1.99.0 and v1.163.2), _upgrade_existing_database: a
# database whose schema_compat_version is above this Synapse's SCHEMA_VERSION (a newer Synapse ran on it).
_TOO_NEW = re.compile(r"Cannot use this database as it is too\s+new for the server to understand")
# the same file, OUTDATED_SCHEMA_ON_WORKER_ERROR: a worker started before the main process migrated the database
_WORKER_FIRST = re.compile(r"Expected database schema version (\d+) but got (\d+): run the main synapse process")


def classify(text: str | None) -> Cause | None:
    """The known cause in ``text`` (a termination message or log tail), or None."""
    if not text:
        return None
    if _TOO_NEW.search(text):
        return Cause("DatabaseSchemaTooNew",
                     "this Synapse is older than the schema its database reached (a newer Synapse migrated it): it "
                     "refuses to start. Go back to the release the database reached (status.tenants[].release), or "
                     "restore a backup taken before the upgrade into a new tenant")
    m = _WORKER_FIRST.search(text)
    if m:
        return Cause("DatabaseNotMigrated",
                     f"a Synapse worker expects schema {m.group(1)} but the database is at {m.group(2)}: the main "
                     "process migrates it first (workers roll after it)")
    return None
