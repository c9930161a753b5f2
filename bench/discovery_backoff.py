"""The background discovery of one member cache over time: how often the watches of the kinds a cluster does not
serve (CloudNativePG, its Barman plugin, the Prometheus Operator) ask discovery, with the operator's settings
(operator/sovereign_suite/reconcile/unserved.py: 30 s doubling to 300 s).

    python bench/discovery_backoff.py [--minutes 10] [--base 30] [--cap 300]

A fresh development cluster (none of those CRDs installed), a member cache as the operator builds one
(context._member_cache's options) on a client of its own user agent, started and left alone; then the cluster's
audit log read: every discovery GET of that client, per group, with the gaps between them, and the requests per
minute over the whole run and over its last half.
"""

from __future__ import annotations

import argparse
import time

from audit_reads import discovery_summary
from lib import Bench, log, write_result

from sovereign_suite.reconcile.cache import ClusterCache
from sovereign_suite.reconcile.child_kinds import CHILD_KINDS
from sovereign_suite.reconcile.credentials import kubeconfig_client
from sovereign_suite.reconcile.kube import Kube
from sovereign_suite.reconcile.watchloop import WatchLoop

AGENT = "sovereign-suite-discovery-bench"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--base", type=float, default=30)
    p.add_argument("--cap", type=float, default=300)
    args = p.parse_args()
    with Bench("disc") as b:
        kube = Kube(kubeconfig_client(str(b.cluster.kubeconfig)), user_agent=AGENT, discovery_ttl=args.base)
        b.audit.agents = (AGENT,)
        mark = b.audit.mark()
        loop = WatchLoop(name="disc")
        start = time.time()
        cache = ClusterCache(kube, CHILD_KINDS, (), unserved_retry=args.base, unserved_retry_max=args.cap,
                             referenceable=False, secrets_by_namespace=True, log_text=False, watches=loop).start()
        try:
            cache.wait_synced(60)
            log(f"member cache started; waiting {args.minutes:g} min")
            time.sleep(args.minutes * 60)
            end = time.time()
            events = b.audit.events(mark)
        finally:
            cache.stop()
            loop.stop()
    whole = discovery_summary(events, start, end)
    late = discovery_summary(events, start + (end - start) / 2, end)
    out = {"base_s": args.base, "cap_s": args.cap, "minutes": args.minutes, "whole": whole, "second_half": late}
    log(f"discovery requests: {whole['requests']} in {whole['window_s']:.0f} s ({whole['per_minute']:.2f}/min); "
        f"second half {late['per_minute']:.2f}/min; gaps {whole['gaps_s']}")
    print(f"wrote {write_result('discovery_backoff', out)}")


if __name__ == "__main__":
    main()
