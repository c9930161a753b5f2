"""The renderers parse their templates with yaml-rs (fast) when installed, else PyYAML: both must agree."""

from __future__ import annotations

import pytest
import yaml

from sovereign_suite.components import base

from .helpers import ROOT, load_example
from sovereign_suite.components.base import build_contexts
from sovereign_suite.components.matrix import homeserver_config

pytestmark = pytest.mark.skipif(base._yaml_rs is None, reason="yaml-rs not installed")


@pytest.mark.parametrize("name", ["four-countries", "two-countries"])
def test_yaml_rs_parses_like_pyyaml(name):
    text = (ROOT / "tests" / "golden" / f"{name}.yaml").read_text()
    expected = [d for d in yaml.load_all(text, Loader=yaml.CSafeLoader) if d]
    assert base.parse_documents(text) == expected
    assert len(expected) > 100


def test_dumped_config_reads_back_with_pyyaml():
    suite, clouds = load_example("four-countries")
    for ctx in build_contexts(suite, clouds):
        config = homeserver_config(ctx)
        text = base.dump_yaml(config)
        assert yaml.safe_load(text) == config
        assert text == base.dump_yaml(config)  # deterministic
