"""The release catalogue (api/releases.py) and what an upgrade may not do (api/upgrade_rules.py): pure, no cluster."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from sovereign_suite.api import releases
from sovereign_suite.api.image_pins import OLDER_PINS, PINS
from sovereign_suite.api.releases import Catalogue, catalogue, parse
from sovereign_suite.api.upgrade_rules import image_major, upgrade_problems
from sovereign_suite.api.validation import InputError, effective_components, parse_suite

from .helpers import example_dict

CURRENT, PREVIOUS = "2026.12", "2024.01"


def _suite(spec_changes: dict | None = None, tenant_changes: dict | None = None) -> object:
    doc = copy.deepcopy(example_dict("two-countries"))
    doc["spec"].update(spec_changes or {})
    doc["spec"]["tenants"][0].update(tenant_changes or {})
    return parse_suite(doc)


def _rec(name: str, schema: int, compat: int, pg: dict | None = None) -> dict:
    return {"name": name, "synapseSchemaVersion": schema, "synapseCompatVersion": compat,
            "postgresMajor": pg or {"matrix": 17, "docs": 17}}


def test_catalogue_is_oldest_first_and_current_is_todays_pins():
    cat = catalogue()
    assert cat.names == [PREVIOUS, CURRENT]
    assert cat.current.images == {k: p.ref for k, p in PINS.items()}  # the current release is image_pins.PINS
    assert cat.release(PREVIOUS).images["synapse"] == "ghcr.io/element-hq/synapse:v1.99.0"
    # only the pins OLDER_PINS declares differ
    assert {k for k, v in cat.release(PREVIOUS).images.items() if v != cat.current.images[k]} == \
        set(OLDER_PINS[PREVIOUS])
    # the schema facts (element-hq/synapse synapse/storage/schema/__init__.py at v1.99.0 and v1.163.2)
    assert (cat.release(PREVIOUS).synapse.schema_version, cat.release(PREVIOUS).synapse.compat_version) == (83, 83)
    assert (cat.current.synapse.schema_version, cat.current.synapse.compat_version) == (94, 84)
    assert cat.by_synapse_image(PINS["synapse"].ref) is cat.current
    assert cat.by_synapse_image("ghcr.io/element-hq/synapse:v1.50.0") is None


@pytest.mark.parametrize("mutate, error", [
    (lambda d: d["releases"].reverse(), "oldest first"),
    (lambda d: d["releases"][0].update(name="24.1"), "expected YYYY.MM"),
    (lambda d: d["releases"][1]["synapse"].update(schemaVersion=80, compatVersion=80), "older than"),
    (lambda d: d["releases"][0]["synapse"].update(compatVersion=90), "compatVersion above"),
    (lambda d: d.update(releases=[]), "no release"),
])
def test_a_malformed_catalogue_is_refused(mutate, error):
    doc = yaml.safe_load(releases.DATA.read_text())
    mutate(doc)
    with pytest.raises(ValueError, match=error):
        parse(doc)


def test_release_sets_the_images_the_user_did_not_set():
    suite = _suite({"release": PREVIOUS})
    comps = effective_components(suite, suite.spec.tenants[0])
    assert comps.matrix.image == "ghcr.io/element-hq/synapse:v1.99.0"
    assert comps.matrix.element_image == PINS["element-web"].ref
    # a component's image set by the user wins over the release (suite-wide, then per tenant)
    suite = _suite({"release": PREVIOUS, "components": {"matrix": {"image": "registry.example/synapse:v1.100.0"}}})
    assert effective_components(suite, suite.spec.tenants[0]).matrix.image == "registry.example/synapse:v1.100.0"
    suite = _suite({"release": PREVIOUS},
                   {"components": {"matrix": {"image": "registry.example/synapse:v1.101.0"}}})
    assert effective_components(suite, suite.spec.tenants[0]).matrix.image == "registry.example/synapse:v1.101.0"
    assert effective_components(suite, suite.spec.tenants[1]).matrix.image == "ghcr.io/element-hq/synapse:v1.99.0"


def test_a_tenant_release_overrides_the_suites():
    suite = _suite({"release": PREVIOUS}, {"release": CURRENT})
    assert effective_components(suite, suite.spec.tenants[0]).matrix.image == PINS["synapse"].ref
    assert effective_components(suite, suite.spec.tenants[1]).matrix.image == "ghcr.io/element-hq/synapse:v1.99.0"


def test_an_unknown_release_is_refused_with_its_field():
    with pytest.raises(InputError) as err:
        _suite({"release": "2099.01"})
    assert "spec.release" in str(err.value) and "unknown release '2099.01'" in str(err.value)
    with pytest.raises(InputError) as err:
        _suite({}, {"release": "next"})
    assert "spec.tenants[0].release" in str(err.value)


def test_no_record_no_refusal_and_the_same_release_passes():
    suite = _suite({"release": PREVIOUS})
    assert upgrade_problems(suite, {}) == []
    ns = f"{suite.name}-{suite.spec.tenants[0].country.lower()}"
    assert upgrade_problems(suite, {ns: _rec(PREVIOUS, 83, 83)}) == []
    assert upgrade_problems(_suite(), {ns: _rec(PREVIOUS, 83, 83)}) == []  # an upgrade is allowed


def test_a_downgrade_below_the_databases_schema_is_refused_naming_the_field():
    suite = _suite({"release": PREVIOUS})
    ns = f"{suite.name}-{suite.spec.tenants[0].country.lower()}"
    problems = upgrade_problems(suite, {ns: _rec(CURRENT, 94, 84)})
    assert len(problems) == 1
    assert problems[0].path == "spec.release"
    assert "v1.99.0 (schema 83)" in problems[0].message and "schema 94" in problems[0].message
    assert "below schema 84" in problems[0].message
    # the same by an explicit image: the field named is the image
    suite = _suite({}, {"components": {"matrix": {"image": "ghcr.io/element-hq/synapse:v1.99.0"}}})
    problems = upgrade_problems(suite, {ns: _rec(CURRENT, 94, 84)})
    assert [p.path for p in problems] == ["spec.tenants[0].components.matrix.image"]


def test_a_downgrade_within_the_compat_version_is_allowed():
    """Synapse runs on a database whose compat version is at most its SCHEMA_VERSION: no refusal then."""
    suite = _suite({"release": PREVIOUS})
    ns = f"{suite.name}-{suite.spec.tenants[0].country.lower()}"
    assert upgrade_problems(suite, {ns: _rec(CURRENT, 94, 83)}) == []


def test_skipping_a_release_that_must_be_stepped_through_is_refused():
    cat = parse({"releases": [
        {"name": "2024.01", "synapse": {"schemaVersion": 83, "compatVersion": 83}, "postgresMajor": 17},
        {"name": "2025.06", "synapse": {"schemaVersion": 90, "compatVersion": 84}, "postgresMajor": 17,
         "requiresSteppingThrough": True},
        {"name": "2026.12", "synapse": {"schemaVersion": 94, "compatVersion": 84}, "postgresMajor": 17},
    ]})
    suite = _suite()
    ns = f"{suite.name}-{suite.spec.tenants[0].country.lower()}"
    problems = upgrade_problems(suite, {ns: _rec("2024.01", 83, 83)}, cat)
    assert [p.path for p in problems] == ["spec.release"]
    assert "skips release 2025.06" in problems[0].message and "from 2024.01" in problems[0].message
    assert upgrade_problems(suite, {ns: _rec("2025.06", 90, 84)}, cat) == []
    # without the stop, the same jump passes
    free = Catalogue(tuple(r if r.name != "2025.06" else releases.Release(r.name, r.synapse, 17, False, r.images)
                           for r in cat.releases))
    assert upgrade_problems(suite, {ns: _rec("2024.01", 83, 83)}, free) == []


def test_an_embedded_postgres_major_change_is_refused_but_a_minor_one_is_not():
    ns_suite = _suite()
    ns = f"{ns_suite.name}-{ns_suite.spec.tenants[0].country.lower()}"
    suite = _suite({"components": {"matrix": {"postgres": {"image": "docker.io/library/postgres:18.1-bookworm"}}}})
    problems = upgrade_problems(suite, {ns: _rec(CURRENT, 94, 84)})
    assert [p.path for p in problems] == ["spec.components.matrix.postgres.image"]
    assert "PostgreSQL 17 -> 18" in problems[0].message and "dump/restore" in problems[0].message
    suite = _suite({"components": {"matrix": {"postgres": {"image": "docker.io/library/postgres:17.7-bookworm"}}}})
    assert upgrade_problems(suite, {ns: _rec(CURRENT, 94, 84)}) == []
    # cloudnative-pg has its own major upgrades: not refused here
    suite = _suite({"components": {"matrix": {"postgres": {"mode": "cloudnative-pg",
                                                           "image": "ghcr.io/cloudnative-pg/postgresql:18.1"}}}})
    assert upgrade_problems(suite, {ns: _rec(CURRENT, 94, 84)}) == []


@pytest.mark.parametrize("image, major", [
    ("docker.io/library/postgres:17.6-bookworm", 17), ("postgres:16", 16), ("ghcr.io/x/pg:v15.2@sha256:" + "a" * 64, 15),
    ("registry:5000/postgres:18.0", 18), ("postgres:latest", None),
])
def test_image_major(image, major):
    assert image_major(image) == major


def test_the_data_file_ships_with_the_package():
    assert releases.DATA.exists() and Path(releases.__file__).parent == releases.DATA.parent
