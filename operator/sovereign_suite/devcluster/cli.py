"""``sovereign-suite cluster up|down|status [--name NAME] [--countries FR,DE] [--real-node]``."""

from __future__ import annotations

import json
import sys

from .cluster import Cluster, ClusterError, main_progress


def main(args) -> int:
    cluster = Cluster(args.name)
    try:
        if args.action == "up":
            countries = [c.strip() for c in (getattr(args, "countries", "") or "").split(",") if c.strip()]
            cluster.up(progress=main_progress, countries=countries or None,
                       real_node=getattr(args, "real_node", False))
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
