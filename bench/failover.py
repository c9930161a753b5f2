"""Failover: two operator processes with leader election (`run --leader-elect`, default timings), a converged
two-country suite; the leader is SIGKILLed, a suite change is made at the same moment, and the standby takes over.

    python bench/failover.py [--rounds 5]

"takeover": from the SIGKILL to the Lease naming the standby (polled every 50 ms). "converged": from the SIGKILL
to the suite Ready for the changed generation (Jitsi enabled or its web replicas changed). The killed process is
started again as the next round's standby, once it campaigns (its caches synced).
"""

from __future__ import annotations

import argparse
import signal
import time

from lib import Bench, log, suite_doc, summary, table, wait_for, write_result
from tests.cluster.leader_fixture import holder, start_pair


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    takeover, converged = [], []
    with Bench("failover") as b:
        ns = b.namespace("bench")  # a namespace the dev clouds admit (devcluster/clouds.yaml)
        a, s = start_pair(b.cluster, b.kube, ns)
        doc = suite_doc("two-countries", ns, "failover")
        b.kube.create(doc)
        wait_for(lambda: b.ready(doc), 300, 0.2, "suite Ready")
        leader, standby = a, s
        try:
            for i in range(args.rounds):
                time.sleep(3)  # a few renewals seen by the standby
                leader.proc.send_signal(signal.SIGKILL)
                killed = time.monotonic()
                leader.proc.wait()
                b.kube.merge_patch(*("sovereignsuite.io/v1alpha1", "SovereignSuite"), "failover", ns,
                                   {"spec": {"components": {"jitsi": {"enabled": True, "webReplicas": 1 + i % 2}}}})
                wait_for(lambda: holder(b.kube, ns) == standby.identity, 60, 0.05, "standby leads")
                takeover.append(time.monotonic() - killed)
                wait_for(lambda: b.ready(doc), 300, 0.2, "suite Ready after the change")
                converged.append(time.monotonic() - killed)
                log(f"round {i + 1}: takeover {takeover[-1]:.2f} s, converged {converged[-1]:.2f} s")
                leader.start()  # the killed one comes back as the standby
                wait_for(leader.campaigning, 120, 0.2, "restarted replica campaigns")
                leader, standby = standby, leader
        finally:
            for r in (a, s):
                r.stop()
    result = {"rounds": args.rounds, "timings": {"lease_duration": 10, "renew_deadline": 6, "retry_period": 1},
              "takeover_seconds": summary(takeover), "converged_seconds": summary(converged),
              "takeover_all": [round(t, 2) for t in takeover], "converged_all": [round(t, 2) for t in converged]}
    path = write_result("failover", result)
    print(table([["", "median", "min", "max"],
                 *[[k, *(f"{result[k + '_seconds'][m]:.2f} s" for m in ("median", "min", "max"))]
                   for k in ("takeover", "converged")]]))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
