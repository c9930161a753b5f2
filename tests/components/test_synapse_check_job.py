"""The rollout's config check (reconcile/rollout.py, check_job) is Synapse's own checker run for real.

The check Job runs ``python -m synapse.config`` with the homeserver's arguments, in the new image, after the same
init container. Here the pinned Synapse (its own venv) runs that command on the rendered files: it accepts the
rendered configuration and refuses a broken one, with its reason on stderr (synapse/config/__main__.py: "Config
parses OK!", exit 1 on a ConfigError), which is what the rollout reports as ConfigCheckFailed.
"""

from __future__ import annotations

import subprocess

import yaml

from sovereign_suite.components import matrix
from sovereign_suite.reconcile.rollout import check_job

from .test_synapse_config import _fr_context, _paths, _write_files, synapse_python  # noqa: F401 - the fixture


def _check_command() -> list[str]:
    ctx = _fr_context()
    synapse = next(o for o in matrix.render(ctx) if o["kind"] == "Deployment" and o["metadata"]["name"] == "synapse")
    job = check_job(synapse, "synapse-check-config-x", {})
    (container,) = [c for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == "synapse"]
    return container["command"]


def test_the_check_jobs_command_is_synapses_checker_on_the_homeservers_arguments():
    assert _check_command() == ["python3", "-m", "synapse.config", *matrix.synapse_args()]


def test_synapses_checker_accepts_the_rendered_config_and_refuses_a_broken_one(synapse_python, tmp_path):
    ctx = _fr_context()
    paths = _paths(tmp_path / "good")
    _write_files(synapse_python, ctx, paths)
    # the Job's command, with this test's paths for the container's
    command = [str(synapse_python), *_check_command()[1:3], *matrix.synapse_args(paths)]
    ok = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "Config parses OK!" in ok.stdout

    paths = _paths(tmp_path / "broken")
    broken = matrix.homeserver_config(ctx, paths)
    broken["max_upload_size"] = "lots"
    _write_files(synapse_python, ctx, paths, yaml.safe_dump(broken))
    bad = subprocess.run([str(synapse_python), *_check_command()[1:3], *matrix.synapse_args(paths)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 1
    assert "max_upload_size" in bad.stderr or "invalid literal" in bad.stderr, bad.stderr[-2000:]
