"""``sovereign-suite run``: the operator in the foreground."""

from __future__ import annotations

import logging
import os


def main(args) -> int:
    import kopf
    from prometheus_client import start_http_server

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if getattr(args, "drift_interval", None):
        os.environ["SOVEREIGN_SUITE_DRIFT_INTERVAL"] = str(args.drift_interval)
    from . import handlers  # noqa: F401 - registers the handlers (reads the drift interval at import)

    handlers.WATCH_NAMESPACES = list(args.namespace or [])

    start_http_server(args.metrics_port)
    logging.getLogger("sovereign_suite").info(
        "metrics on :%d/metrics, liveness on :%d/healthz", args.metrics_port, args.liveness_port)
    kopf.run(
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=args.namespace or [],
        liveness_endpoint=f"http://0.0.0.0:{args.liveness_port}/healthz",
    )
    return 0
