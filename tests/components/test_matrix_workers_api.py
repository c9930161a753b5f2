"""The Synapse workers API: presets, explicit counts, single-instance types, suite default and tenant override."""

from __future__ import annotations

import pytest

from sovereign_suite.api.matrix_workers import PRESETS, SINGLE_INSTANCE, WORKER_FIELDS, MatrixWorkers
from sovereign_suite.api.validation import InputError, effective_components

from ..helpers import suite_with


def test_default_is_the_monolith():
    workers = MatrixWorkers()
    assert workers.size == "monolith" and not workers.enabled()
    assert set(workers.topology().values()) == {0}


@pytest.mark.parametrize("size", ["small", "large", "national"])
def test_presets_cover_every_type_and_single_instance_types_stay_single(size):
    topology = MatrixWorkers(size=size).topology()
    assert set(topology) == set(WORKER_FIELDS)
    assert all(topology[k] == 1 for k in SINGLE_INSTANCE)
    assert topology["sync"] >= 1 and topology["federation_sender"] >= 1
    # small leaves persisting on main (docs/performance.md, "Which workers cost latency"); the larger presets shard
    # events over several persisters
    if size == "small":
        assert topology["event_persister"] == 0
    else:
        assert topology["event_persister"] >= 2


def test_presets_grow():
    small, large, national = (PRESETS[s] for s in ("small", "large", "national"))
    for key in WORKER_FIELDS:
        assert small[key] <= large[key] <= national[key], key
    assert small["initial_sync"] == 0 < large["initial_sync"]


def test_explicit_counts_override_the_preset():
    workers = MatrixWorkers.model_validate({"size": "large", "sync": 5, "initialSync": 0, "pusher": 0})
    topology = workers.topology()
    assert (topology["sync"], topology["initial_sync"], topology["pusher"]) == (5, 0, 0)
    assert topology["event_persister"] == PRESETS["large"]["event_persister"]
    # counts without a preset: only what is set
    assert MatrixWorkers.model_validate({"sync": 2}).topology() == {**PRESETS["monolith"], "sync": 2}


@pytest.mark.parametrize("field", ["mediaRepository", "background", "userDirectory"])
def test_single_instance_type_refuses_two_replicas_naming_the_field(field):
    with pytest.raises(InputError) as err:
        suite_with("two-countries", {"components": {"matrix": {"workers": {"size": "small", field: 2}}}})
    [problem] = err.value.problems
    assert str(problem).startswith(f"spec.components.matrix.workers.{field}: ")
    assert f"{field} is a single-instance worker type" in str(problem) and "not 2" in str(problem)


def test_tenant_override_is_merged_and_its_errors_name_the_tenant():
    suite = suite_with("two-countries", {"components": {"matrix": {"workers": {"size": "small"}}},
                                         "tenants": [{"country": "FR", "cloud": "fr-secnumcloud",
                                                      "components": {"matrix": {"workers": {"sync": 3}}}},
                                                     {"country": "DE", "cloud": "de-c5"}]})
    fr, de = suite.spec.tenants
    assert effective_components(suite, fr).matrix.workers.topology()["sync"] == 3
    assert effective_components(suite, fr).matrix.workers.size == "small"  # the suite default, inherited
    assert effective_components(suite, de).matrix.workers.topology() == PRESETS["small"]
    with pytest.raises(InputError) as err:
        suite_with("two-countries", {"tenants": [{"country": "FR", "cloud": "fr-secnumcloud",
                                                  "components": {"matrix": {"workers": {"background": 3}}}}]})
    assert str(err.value.problems[0]).startswith("spec.tenants[0].components.matrix.workers.background: ")


def test_counts_are_bounded_and_sizes_known():
    with pytest.raises(InputError):
        suite_with("two-countries", {"components": {"matrix": {"workers": {"sync": 33}}}})
    with pytest.raises(InputError) as err:
        suite_with("two-countries", {"components": {"matrix": {"workers": {"size": "huge"}}}})
    assert "spec.components.matrix.workers.size" in str(err.value.problems[0])
