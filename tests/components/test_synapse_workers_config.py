"""The shared homeserver.yaml and every worker type's file of a worker topology are accepted by Synapse's own
loader (the pinned version, in its own venv: see test_synapse_config.py), and each process takes the duties the
operator assigned to it. Facts: element-hq/synapse v1.163.2 docs/workers.md and config_documentation.md
("Coordinating workers"); the attributes read below are synapse/config/workers.py's at that tag."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from sovereign_suite.components import matrix
from sovereign_suite.components.matrix import workers as synapse_workers

from ..helpers import suite_with
from .test_synapse_config import _fr_context, _paths, _write_files, synapse_python  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow

# Loads the files as `python -m synapse.app.generic_worker ARGS` (or the homeserver) would, then checks the
# worker app is one generic_worker starts (synapse/app/generic_worker.py, create_homeserver's assertion).
LOADER = r"""
import json, sys
from synapse.config.homeserver import HomeServerConfig

config = HomeServerConfig.load_config("sovereign-suite worker check", sys.argv[1:])
w = config.worker
print(json.dumps({
    "worker_app": w.worker_app,
    "instance_name": w.instance_name,
    "instance_map": sorted(w.instance_map),
    "events_writers": list(w.writers.events),
    "send_federation": w.send_federation,
    "federation_senders": w.federation_shard_config.instances,
    "start_pushers": w.start_pushers,
    "pushers": w.pusher_shard_config.instances,
    "run_background_tasks": w.run_background_tasks,
    "update_user_directory": w.should_update_user_directory,
    "outbound_federation_restricted_to": w.outbound_federation_restricted_to.instances,
    "media_repo": config.media.can_load_media_repo,
    # read only where the media repository loads (synapse/config/repository.py returns before it otherwise)
    "media_background": getattr(config.media, "media_instance_running_background_jobs", None),
    "redis": [config.redis.redis_enabled, config.redis.redis_host, config.redis.redis_port,
              config.redis.redis_password],
    "replication_secret": w.worker_replication_secret,
    "destination_min_retry_ms": config.federation.destination_min_retry_interval_ms,
    "listeners": [[l.port, l.type, sorted(n for r in (l.http_options.resources if l.http_options else [])
                                          for n in r.names)] for l in w.worker_listeners or config.server.listeners],
}))
"""

TOPOLOGY = {"size": "small", "sync": 2, "eventPersister": 2, "federationSender": 2, "initialSync": 1}


def _ctx():
    return _fr_context(suite_with("four-countries", {"components": {"matrix": {"workers": TOPOLOGY}}}))


def _load(python: Path, args: list[str], cwd: Path) -> dict:
    result = subprocess.run([str(python), "-c", LOADER, *args], capture_output=True, text=True, cwd=cwd)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def files(synapse_python, tmp_path):  # noqa: F811 - the fixture
    """The shared files as in the main pod, the workers' Secret keys, and the worker types' files."""
    ctx = _ctx()
    paths = _paths(tmp_path)
    _write_files(synapse_python, ctx, paths)
    for key in ("worker_replication_secret", "redis_password"):
        Path(paths.keys, key).write_text(key[0] * 64)
    for name, text in matrix.worker_files(ctx).items():
        Path(paths.config, name).write_text(text)
    return ctx, paths


def test_main_process_takes_no_delegated_duty(synapse_python, files, tmp_path):  # noqa: F811
    ctx, paths = files
    main = _load(synapse_python, matrix.synapse_args(paths), tmp_path)
    assert main["worker_app"] is None and main["instance_name"] == "master"
    persisters = ["synapse-event-persister-0", "synapse-event-persister-1"]
    senders = ["synapse-federation-sender-0", "synapse-federation-sender-1"]
    assert main["events_writers"] == persisters
    assert main["instance_map"] == sorted(["main", *persisters, *senders])
    assert main["send_federation"] is False and main["federation_senders"] == senders
    assert main["outbound_federation_restricted_to"] == senders
    assert main["start_pushers"] is False and main["pushers"] == ["synapse-pusher-0"]
    assert main["run_background_tasks"] is False and main["update_user_directory"] is False
    assert main["media_repo"] is False
    assert main["redis"] == [True, f"synapse-redis.{ctx.namespace}.svc.cluster.local", 6379, "r" * 64]
    assert main["replication_secret"] == "w" * 64
    assert [9093, "http", ["replication"]] in main["listeners"]
    # the first backoff of a destination whose request failed (workers.DESTINATION_MIN_RETRY_INTERVAL), as
    # Synapse parses it (synapse/config/federation.py at v1.163.2; its default is 10 minutes)
    assert main["destination_min_retry_ms"] == 30_000


EXPECTED = {  # worker type -> (instance 0's duties: persists events, sends federation, pushes, background,
    #                              user directory, media repository), public listener resources
    "sync": ((False, False, False, False, False, False), ["client"]),
    "initial-sync": ((False, False, False, False, False, False), ["client"]),
    "client-reader": ((False, False, False, False, False, False), ["client"]),
    "federation-inbound": ((False, False, False, False, False, False), ["federation"]),
    "federation-sender": ((False, True, False, False, False, False), ["health"]),
    "event-persister": ((True, False, False, False, False, False), ["health"]),
    "media-repository": ((False, False, False, False, False, True), ["media"]),
    "background": ((False, False, False, True, False, False), ["health"]),
    "pusher": ((False, False, True, False, False, False), ["health"]),
    "user-directory": ((False, False, False, False, True, False), ["client"]),
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_each_worker_type_is_accepted_with_its_duties(synapse_python, files, tmp_path, kind):  # noqa: F811
    ctx, paths = files
    name = f"synapse-{kind}-0"
    # the init container, as the pod runs it: its pod name comes from the downward API
    subprocess.run([str(synapse_python), paths.worker_script, paths.worker_type_file(kind), paths.worker,
                    f"synapse-{kind}"], check=True, env={**os.environ, "POD_NAME": name})
    loaded = _load(synapse_python, matrix.worker_args(paths), tmp_path)
    app = "synapse.app.media_repository" if kind == "media-repository" else "synapse.app.generic_worker"
    assert loaded["worker_app"] == app and loaded["instance_name"] == name
    duties, resources = EXPECTED[kind]
    assert (name in loaded["events_writers"], loaded["send_federation"], loaded["start_pushers"],
            loaded["run_background_tasks"], loaded["update_user_directory"], loaded["media_repo"]) == duties
    assert loaded["listeners"][0] == [8008, "http", resources]
    if kind == "media-repository":  # the one instance that runs the media background jobs
        assert loaded["media_background"] == name
    assert [9001, "metrics", []] in loaded["listeners"]
    replication = synapse_workers.BY_KEY[kind.replace("-", "_")].replication
    assert ([9093, "http", ["replication"]] in loaded["listeners"]) is replication
    assert replication is (name in loaded["instance_map"])


def test_worker_script_refuses_a_pod_of_another_statefulset(synapse_python, files):  # noqa: F811
    _, paths = files
    result = subprocess.run([str(synapse_python), paths.worker_script, paths.worker_type_file("sync"), paths.worker,
                             "synapse-sync"], capture_output=True, text=True,
                            env={**os.environ, "POD_NAME": "synapse-event-persister-0"})
    assert result.returncode != 0 and "is not a pod of the StatefulSet 'synapse-sync'" in result.stderr
    assert not Path(paths.worker).exists()


def test_monolith_renders_no_worker_setting():
    config = matrix.homeserver_config(_fr_context())
    assert not {"redis", "instance_map", "stream_writers", "send_federation"} & set(config)
    assert [listener["port"] for listener in config["listeners"]] == [8008, 9001]
    assert matrix.worker_files(_fr_context()) == {}
