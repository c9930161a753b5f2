"""Leader election's pure decisions (leader/timing.py) and the write fence (leader/elector.py), on an injected
clock: when a candidate may take the Lease, how long a leader may write, and that a stopped-and-resumed leader's
last write comes before any other replica can lead. The loop against a real API server is in
tests/cluster/test_leader_lease.py; two operator processes in tests/cluster/test_leader_failover.py."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s_client

from sovereign_suite.leader.elector import Leadership, NotLeading, new_identity
from sovereign_suite.leader.timing import (Action, LeaseTiming, Observation, Record, claim, decide, expired,
                                           leading_until, next_look, observe, renewed_in_time)
from sovereign_suite.reconcile.kube import Kube

T = LeaseTiming()  # 10 s, 6 s, 1 s
HELD = Record("a_1", 10, 3, "t0", "t0")


class Clock:
    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


# ---- timings --------------------------------------------------------------------------------------------
def test_default_timings_are_valid_and_margin_is_positive():
    assert T.problems() == []
    assert T.lease_duration - T.renew_deadline == 4.0


@pytest.mark.parametrize("timing, fragment", [
    (LeaseTiming(6, 6, 1), "greater than the renew deadline"),
    (LeaseTiming(10, 6, 5), "1.2 x the retry period"),
    (LeaseTiming(10, 1.2, 1), "1.2 x the retry period"),  # client-go: RenewDeadline <= 1.2 * RetryPeriod refused
    (LeaseTiming(0, -1, 1), "greater than zero"),
    (LeaseTiming(10.5, 6, 1), "whole seconds"),
])
def test_invalid_timings_are_refused_with_the_reason(timing, fragment):
    assert any(fragment in p for p in timing.problems()), timing.problems()


def test_candidates_wait_between_one_and_2_2_retry_periods():
    assert T.jittered(0.0) == 1.0
    assert T.jittered(0.999) == pytest.approx(2.2, abs=0.01)


# ---- a candidate ----------------------------------------------------------------------------------------
def test_a_record_seen_unchanged_keeps_its_first_sighting():
    first = observe(None, HELD, 100.0)
    assert observe(first, HELD, 105.0) is first
    renewed = Record("a_1", 10, 3, "t0", "t1")
    assert observe(first, renewed, 105.0) == Observation(renewed, 105.0)  # renewed: the clock starts again


def test_a_held_lease_expires_after_its_duration_on_the_candidates_clock():
    obs = observe(None, HELD, 100.0)
    assert decide(obs, "b_2", 109.99) is Action.WAIT
    assert not expired(obs, 109.99)
    assert decide(obs, "b_2", 110.0) is Action.TAKE


def test_a_renewal_seen_in_time_postpones_the_takeover():
    obs = observe(None, HELD, 100.0)
    obs = observe(obs, Record("a_1", 10, 3, "t0", "t9"), 109.0)
    assert decide(obs, "b_2", 118.9) is Action.WAIT
    assert decide(obs, "b_2", 119.0) is Action.TAKE


def test_the_records_own_duration_counts_so_a_released_lease_goes_at_once():
    released = Record("", 1, 3, "t5", "t5")
    assert decide(observe(None, released, 100.0), "b_2", 100.0) is Action.TAKE  # no holder
    short = Record("a_1", 1, 3, "t5", "t5")
    assert decide(observe(None, short, 100.0), "b_2", 100.5) is Action.WAIT
    assert decide(observe(None, short, 100.0), "b_2", 101.0) is Action.TAKE


def test_a_waiting_candidate_looks_again_when_the_lease_runs_out_if_sooner_than_its_retry():
    obs = observe(None, HELD, 100.0)
    assert next_look(obs, 100.0, 2.2) == 2.2
    assert next_look(obs, 109.0, 2.2) == pytest.approx(1.0)
    assert next_look(obs, 111.0, 2.2) == 0.0


def test_sigkill_failover_is_bounded_by_lease_duration_plus_one_jittered_period():
    """Worst case with the defaults: the leader renewed just before the kill, the standby saw that renewal a full
    jittered period (2.2 s) later, and takes the Lease when it runs out on its clock: 12.2 s after the kill."""
    kill = renewed = 100.0
    seen = renewed + T.jittered(0.9999)
    obs = observe(None, Record("a_1", 10, 0, "t", "t"), seen)
    look = seen + next_look(obs, seen, T.jittered(0.9999))
    while decide(obs, "b_2", look) is Action.WAIT:
        look += next_look(obs, look, T.jittered(0.9999))
    assert look - kill == pytest.approx(12.2, abs=0.01)


def test_no_lease_is_created_and_our_own_is_renewed():
    assert decide(None, "b_2", 0.0) is Action.CREATE
    assert decide(observe(None, HELD, 100.0), "a_1", 100.0) is Action.RENEW


def test_records_written_keep_or_count_transitions_like_client_go():
    assert claim(Action.CREATE, None, "b", 10, "s") == Record("b", 10, 0, "s", "s")
    assert claim(Action.RENEW, HELD, "a_1", 10, "s") == Record("a_1", 10, 3, "t0", "s")
    assert claim(Action.TAKE, HELD, "b", 10, "s") == Record("b", 10, 4, "s", "s")
    assert claim(Action.TAKE, Record("", 1, 4, "x", "x"), "b", 10, "s").transitions == 5  # a released one too


# ---- the leader: its deadline vs the earliest takeover ----------------------------------------------------
@pytest.mark.parametrize("seen_after_sent", [0.0, 0.001, 0.5, 3.0])
def test_the_old_leaders_last_write_precedes_the_earliest_takeover(seen_after_sent):
    """The leader sent its last renewal at ``sent``; the server applied it later, and a candidate saw it later
    still. The leader's fence closes at sent + renew_deadline; the candidate takes over no earlier than
    seen + lease_duration: the margin is at least lease_duration - renew_deadline, on any clocks of equal rate,
    whatever the leader was doing meanwhile (SIGSTOPped, partitioned)."""
    sent = 100.0
    fence = leading_until(sent, T)
    obs = observe(None, Record("a_1", int(T.lease_duration), 0, "t", "t"), sent + seen_after_sent)
    earliest = next(t / 100 for t in range(10_000, 20_000) if decide(obs, "b_2", t / 100) is Action.TAKE)
    assert earliest - fence >= T.lease_duration - T.renew_deadline
    clock = Clock()
    leadership = Leadership(clock)
    leadership.extend(fence)
    clock.t = fence - 0.01
    assert leadership.may_write()
    clock.t = fence  # stopped, then resumed exactly at its deadline: no write
    assert not leadership.may_write()


def test_clocks_may_differ_in_rate_by_the_ratio_of_lease_duration_to_renew_deadline():
    """client-go's doc: the tolerated ratio of fastest to slowest clock is about lease_duration/renew_deadline.
    A leader whose clock runs at 0.61 the candidate's rate still stops before the candidate takes over."""
    ratio = T.renew_deadline / T.lease_duration  # 0.6
    leader_rate = ratio + 0.01
    real_stop = T.renew_deadline / leader_rate  # real seconds until the leader's clock shows renew_deadline
    assert real_stop < T.lease_duration
    assert T.renew_deadline / (ratio - 0.01) > T.lease_duration  # slower than that: unsafe (documented)


def test_a_renewal_counts_if_answered_before_the_deadline_it_sets():
    """Sent at 104 (before the previous deadline 106), answered at 107 (a slow API server): it leads until 110;
    answered at 110 or later, it does not (its own deadline passed before the answer came)."""
    assert renewed_in_time(104.0, 107.0, T)
    assert not renewed_in_time(104.0, 110.0, T)
    clock = Clock(107.0)
    leadership = Leadership(clock)
    leadership.extend(106.0)
    assert not leadership.may_write()  # closed while the renewal was in flight
    leadership.extend(leading_until(104.0, T))
    assert leadership.may_write() and leadership.until == 110.0


def test_an_ended_leadership_never_reopens():
    clock = Clock(100.0)
    leadership = Leadership(clock)
    leadership.extend(106.0)
    leadership.end()
    leadership.extend(200.0)  # a late renewal after the end: ignored
    assert not leadership.may_write() and leadership.ended


def test_the_fence_only_moves_forward_and_always_is_open():
    clock = Clock(100.0)
    leadership = Leadership(clock)
    assert not leadership.may_write()  # a standby starts closed
    leadership.extend(106.0)
    leadership.extend(104.0)  # an older renewal's answer arriving late
    assert leadership.until == 106.0
    assert Leadership.always().may_write()
    with pytest.raises(NotLeading, match="PATCH x not sent"):
        Leadership(clock).check("PATCH x")


def test_identities_are_unique_per_process_and_name_the_host():
    a, b = new_identity("pod-a"), new_identity("pod-a")
    assert a != b and a.startswith("pod-a_") and "/" not in a  # "/" would change the field manager (runner.py)


def test_kube_sends_no_write_once_the_fence_is_closed():
    """The fence runs before the request is built into a connection: a closed fence sends nothing (the host below
    does not exist; a request that went out would fail with Unreachable, not NotLeading). Reads are not fenced."""
    cfg = k8s_client.Configuration()
    cfg.host = "https://fence.invalid:1"
    leadership = Leadership(Clock(100.0))
    kube = Kube(k8s_client.ApiClient(cfg), max_retries=0, fence=leadership.check)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        with pytest.raises(NotLeading):
            kube.request(method, "/api/v1/namespaces/x/configmaps/y", body={})
    assert sum(kube.requests.values()) == 0
    from sovereign_suite.reconcile.kube import Unreachable
    with pytest.raises(Unreachable):
        kube.request("GET", "/api/v1/namespaces")


def test_run_refuses_timings_client_go_would_refuse_naming_the_flags():
    from sovereign_suite.api.validation import InputError
    from sovereign_suite.cli import build_parser
    from sovereign_suite.reconcile.runner import leader_settings

    parse = build_parser().parse_args
    assert leader_settings(parse(["run"])) == {}  # off: one process, no Lease
    on = leader_settings(parse(["run", "--leader-elect", "--leader-elect-resource-namespace", "ops"]))
    assert on == {"leader_elect": True, "lease_name": "sovereign-suite-operator", "lease_namespace": "ops",
                  "lease_duration": 10.0, "renew_deadline": 6.0, "retry_period": 1.0}
    with pytest.raises(InputError) as err:
        leader_settings(parse(["run", "--leader-elect", "--leader-elect-renew-deadline", "12"]))
    (problem,) = err.value.problems
    assert "--leader-elect-renew-deadline" in str(problem) and "must be greater than the renew deadline" in str(problem)
