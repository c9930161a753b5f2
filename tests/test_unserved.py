"""The backoff of discovery for kinds a cluster does not serve (reconcile/unserved.py), the waiters a pass's
discovery answer wakes, and the APIs a suite asks for (child_kinds.wanted_apis). No cluster: the behaviour against
a real API server is tests/cluster/test_discovery.py."""

from __future__ import annotations

import pytest

from sovereign_suite.reconcile.child_kinds import wanted_apis
from sovereign_suite.reconcile.context import Settings
from sovereign_suite.reconcile.unserved import UnservedBackoff, Waiters


def test_the_wait_doubles_from_the_base_up_to_the_cap():
    b = UnservedBackoff(30.0, 300.0)
    assert [b.next() for _ in range(7)] == [30.0, 60.0, 120.0, 240.0, 300.0, 300.0, 300.0]


def test_served_again_starts_over_from_the_base():
    b = UnservedBackoff(30.0, 300.0)
    for _ in range(5):
        b.next()
    b.reset()
    assert [b.next(), b.next()] == [30.0, 60.0]


def test_a_cap_below_the_base_means_a_fixed_interval():
    b = UnservedBackoff(30.0, 10.0)
    assert [b.next() for _ in range(3)] == [30.0, 30.0, 30.0]


def test_many_misses_do_not_overflow():
    b = UnservedBackoff(1.0, 600.0)
    for _ in range(2000):
        assert b.next() <= 600.0


def test_the_base_must_be_positive():
    with pytest.raises(ValueError):
        UnservedBackoff(0.0, 300.0)


def test_the_backoff_is_configured_from_the_environment(monkeypatch):
    monkeypatch.setenv("SOVEREIGN_SUITE_DISCOVERY_INTERVAL", "5")
    monkeypatch.setenv("SOVEREIGN_SUITE_DISCOVERY_MAX_INTERVAL", "40")
    s = Settings.from_env()
    assert (s.discovery_interval, s.discovery_max_interval) == (5.0, 40.0)
    monkeypatch.delenv("SOVEREIGN_SUITE_DISCOVERY_MAX_INTERVAL")
    assert Settings.from_env().discovery_max_interval == 300.0


def test_waiters_of_the_group_found_run_once_each_and_can_cancel():
    w = Waiters()
    calls: list[str] = []
    cancel_a = w.add("postgresql.cnpg.io/v1", lambda: calls.append("a"))
    w.add("postgresql.cnpg.io/v1", lambda: calls.append("b"))
    w.add("monitoring.coreos.com/v1", lambda: calls.append("m"))
    w.found("postgresql.cnpg.io/v1")
    assert sorted(calls) == ["a", "b"]
    cancel_a()
    cancel_a()  # twice: harmless (a wait that timed out, then cancelled in its finally)
    calls.clear()
    w.found("postgresql.cnpg.io/v1")
    assert calls == ["b"]


def test_a_broken_waiter_does_not_stop_the_others():
    w = Waiters()
    calls: list[str] = []
    w.add("g/v1", lambda: 1 / 0)
    w.add("g/v1", lambda: calls.append("ok"))
    w.found("g/v1")
    assert calls == ["ok"]


def test_the_apis_a_suite_asks_for():
    assert wanted_apis({"monitoring": {"serviceMonitors": False}}) == frozenset()
    assert wanted_apis({"monitoring": {"serviceMonitors": True}}) == {"monitoring.coreos.com/v1"}
    cnpg = {"postgresql.cnpg.io/v1", "barmancloud.cnpg.io/v1"}
    assert wanted_apis({"components": {"matrix": {"postgres": {"mode": "cloudnative-pg"}}}}) == cnpg
    assert wanted_apis({"components": {"matrix": {"postgres": {"mode": "embedded"}}}}) == frozenset()
    # a tenant's own components
    assert wanted_apis({"tenants": [{"country": "FR", "components": {"docs": {"postgres": {
        "mode": "cloudnative-pg"}}}}]}) == cnpg
