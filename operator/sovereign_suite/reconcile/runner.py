"""``sovereign-suite run``: the operator in the foreground."""

from __future__ import annotations

import logging

from kubernetes import client as k8s_client, config as k8s_config


def api_client(pool_size: int = 64) -> k8s_client.ApiClient:
    """In-cluster credentials, else the kubeconfig. The pool holds a connection per watch (about 25) besides the
    workers' and the apply pool's: urllib3's default of 10 would open and drop connections all the time."""
    cfg = k8s_client.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=cfg)
    except k8s_config.ConfigException:
        k8s_config.load_kube_config(client_configuration=cfg)
    cfg.connection_pool_maxsize = pool_size
    return k8s_client.ApiClient(cfg)


def main(args) -> int:
    import kopf
    from prometheus_client import start_http_server

    from . import handlers  # noqa: F401 - registers the Kopf handlers
    from .context import OperatorContext, Settings
    from .kube import Kube

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env(tuple(args.namespace or ()), tuple(getattr(args, "local_cloud", None) or ()),
                                 drift_interval=getattr(args, "drift_interval", None))
    ctx = OperatorContext(Kube(api_client(), discovery_ttl=settings.discovery_interval), settings)
    start_http_server(args.metrics_port)
    logging.getLogger("sovereign_suite").info(
        "metrics on :%d/metrics, liveness on :%d/healthz, %d workers; %s", args.metrics_port, args.liveness_port,
        settings.workers, f"pull mode, local clouds: {', '.join(settings.local_clouds)}" if settings.local_clouds
        else "push mode (a NationalCloud with kubeconfigSecretRef is a member cluster)")
    kopf.run(
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=args.namespace or [],
        liveness_endpoint=f"http://0.0.0.0:{args.liveness_port}/healthz",
        memo=kopf.Memo(ctx=ctx),
    )
    return 0
