"""The rotation annotation (``sovereignsuite.io/secrets-hash``, reconcile/secrets.py) is keyed with the operator's
rotation key (reconcile/rotation_key.py), so that whoever reads a Deployment learns only that a referenced Secret
changed (issue 22, item 6). The key's Secret is checked here; tests/cluster/test_reconcile_core.py reads the key
from the cluster and checks the annotation of a real Deployment, and that a rotation still rolls."""

from __future__ import annotations

import hashlib
import hmac
import json

from sovereign_suite.reconcile.problems import Problem
from sovereign_suite.reconcile.rotation_key import key_manifest, key_of
from sovereign_suite.reconcile.secrets import roll_on_rotation

from .test_converge import DEPLOY, KEY, annotation, copy


def test_the_rotation_annotation_is_keyed_not_a_hash_of_the_data():
    """Readers of the Deployment (tenant admins) must not be able to test guesses of a Secret's value against the
    annotation: it is an HMAC under the operator's key, not SHA-256 of the data (what it was before issue 22)."""
    copies = [copy("oidc-client", "djE="), copy("docs-s3", "eA==")]
    got = annotation(roll_on_rotation([DEPLOY], copies, KEY)[0])
    data = [["docs-s3", {"k": "eA=="}], ["oidc-client", {"k": "djE="}]]
    plain = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    assert got != plain[:16] and got not in plain
    assert got == hmac.new(KEY, json.dumps(data, sort_keys=True).encode(), hashlib.sha256).hexdigest()[:16]
    assert got != annotation(roll_on_rotation([DEPLOY], copies, bytes(32))[0])  # another key, another value


def test_the_rotation_key_secret_is_the_operators_and_long_enough():
    made = key_manifest("suites", KEY)
    assert key_of(made, "suites") == KEY
    assert made["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "sovereign-suite-operator"
    foreign = {**made, "metadata": {**made["metadata"], "labels": {}}}
    problem = key_of(foreign, "suites")
    assert isinstance(problem, Problem) and problem.reason == "Conflict" and "does not adopt" in problem.message
    assert str(problem).startswith("Secret/suites/sovereign-suite-rotation-key: ")
    short = key_manifest("suites", b"0123456789")
    assert isinstance(key_of(short, "suites"), Problem)
    garbled = {**made, "data": {"key": "not base64!"}}
    assert isinstance(key_of(garbled, "suites"), Problem)
