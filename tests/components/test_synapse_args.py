"""Synapse's command line by version: ``--no-secrets-in-config`` only for a Synapse that knows it (v1.126.0 and
later, element-hq/synapse#18092). Release 2024.01's Synapse v1.99.0 exits on it ("unrecognized arguments"), found on
the real node (tests/cluster/test_real_node_release_upgrade.py)."""

from __future__ import annotations

import pytest

from sovereign_suite.components import matrix
from sovereign_suite.components.base import build_contexts
from sovereign_suite.components.matrix import NO_SECRETS_FLAG, PATHS, refuses_inline_secrets, synapse_args, worker_args

from ..helpers import load_example, suite_with


@pytest.mark.parametrize("image, flag", [
    ("ghcr.io/element-hq/synapse:v1.163.2", True),
    ("ghcr.io/element-hq/synapse:v1.126.0", True),
    ("ghcr.io/element-hq/synapse:v1.125.9", False),
    ("ghcr.io/element-hq/synapse:v1.99.0", False),
    ("registry.fr.local/element-hq/synapse:v1.99.0", False),
    ("ghcr.io/element-hq/synapse:1.99.0", False),  # a tag without the v
    ("ghcr.io/element-hq/synapse:v2.0.0", True),
    ("ghcr.io/element-hq/synapse:v1.99.0@sha256:" + "a" * 64, False),  # the tag read, the digest kept aside
    ("ghcr.io/element-hq/synapse@sha256:" + "a" * 64, True),  # no version to read: the safe side
    ("mirror.example/synapse:prod", True),
    (None, True),
])
def test_the_flag_follows_the_version_in_the_tag(image, flag):
    assert refuses_inline_secrets(image) is flag
    assert (NO_SECRETS_FLAG in synapse_args(image=image)) is flag
    assert (NO_SECRETS_FLAG in worker_args(image=image)) is flag
    assert worker_args(image=image)[:6] == ["--config-path", PATHS.homeserver, "--config-path", PATHS.database,
                                            "--config-path", PATHS.worker]


def _commands(release: str) -> dict[str, list[str]]:
    suite = suite_with("two-countries", {"release": release, "components": {"matrix": {"workers": {"size": "small"}}}})
    _, clouds = load_example("two-countries")
    objs = matrix.render(build_contexts(suite, clouds)[0])
    out = {}
    for o in objs:
        if o["kind"] in ("Deployment", "StatefulSet"):
            for c in o["spec"]["template"]["spec"]["containers"]:
                if c["image"].split("/")[-1].startswith("synapse:"):
                    out[f"{o['kind']}/{o['metadata']['name']}"] = c["command"]
    return out


@pytest.mark.parametrize("release, flag", [("2024.01", False), ("2026.12", True)])
def test_each_release_renders_the_command_its_synapse_takes(release, flag):
    commands = _commands(release)
    assert "Deployment/synapse" in commands and len(commands) > 1, sorted(commands)  # main and its workers
    for name, command in commands.items():
        assert (NO_SECRETS_FLAG in command) is flag, (name, command)
