"""The stand-in image recipes (devcluster/realnode/standins.py): the previous release's Synapse is built under the
name its pin renders, on its own Debian release, its pip install bound by that Synapse's lock (the constraints)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sovereign_suite.api.image_pins import OLDER_PINS, PINS
from sovereign_suite.devcluster.realnode import build, standins


def test_the_previous_release_synapse_is_built_under_its_pin():
    assert standins.RECIPES["synapse-previous"].name == OLDER_PINS["2024.01"]["synapse"].image
    assert standins.RECIPES["synapse"].name == PINS["synapse"].image
    prev = standins.SYNAPSE_PREVIOUS
    assert prev.suite == "bookworm" and standins.SYNAPSE.suite == standins.SUITE == "trixie"
    assert prev.pip == ("matrix-synapse==1.99.0",)
    assert "prometheus-client==0.19.0" in prev.constraints_text().splitlines()


def test_the_constraints_content_is_part_of_the_key(tmp_path: Path, monkeypatch):
    prev = standins.SYNAPSE_PREVIOUS
    (tmp_path / prev.constraints).parent.mkdir(parents=True)
    (tmp_path / prev.constraints).write_text(prev.constraints_text())
    monkeypatch.setattr(standins, "REPO", tmp_path)
    same = prev.key()
    (tmp_path / prev.constraints).write_text(prev.constraints_text() + "six==1.16.0\n")
    assert prev.key() != same
    assert dataclasses.replace(prev, suite="trixie").key() != prev.key()


def test_only_a_recipe_with_constraints_installs_under_them(tmp_path: Path):
    stage = tmp_path / "stage"
    with_c = " ".join(build._hooks(standins.SYNAPSE_PREVIOUS, stage))
    without = " ".join(build._hooks(standins.SYNAPSE, stage))
    assert f"cp {tmp_path}/constraints.txt \"$1/tmp/pip-constraints.txt\"" in with_c
    assert "--prefer-binary -c /tmp/pip-constraints.txt matrix-synapse==1.99.0" in with_c
    assert "pip-constraints" in without and " -c " not in without  # removed (rm -f) but never copied nor used


def test_a_real_node_imports_the_previous_synapse_only_when_asked(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(build, "images_dir", lambda: tmp_path)
    for recipe in standins.RECIPES.values():
        build.archive_path(recipe).write_bytes(b"")
    names = {p.name for p in build.built()}
    assert build.archive_path(standins.SYNAPSE).name in names
    assert build.archive_path(standins.SYNAPSE_PREVIOUS).name not in names
    assert len(names) == len(standins.RECIPES) - 1
