"""``sovereign-suite cluster up|down|status [--name NAME]``."""

from __future__ import annotations

import json
import sys

from .cluster import Cluster, ClusterError, main_progress


def main(args) -> int:
    cluster = Cluster(args.name)
    try:
        if args.action == "up":
            cluster.up(progress=main_progress)
            print(f"export KUBECONFIG={cluster.kubeconfig}")
        elif args.action == "down":
            cluster.down()
            main_progress(f"cluster {args.name}: deleted")
        else:
            print(json.dumps(cluster.status(), indent=2))
    except ClusterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
