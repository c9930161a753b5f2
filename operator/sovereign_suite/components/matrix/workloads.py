"""The Kubernetes objects of a tenant's Synapse workers (templates/synapse-workers.yaml.j2): the ConfigMap
``synapse-workers``, Redis ``synapse-redis``, and per worker type a headless Service, a StatefulSet and, where
the router sends paths, a Service (per pod for the sticky sync pools); an HPA (autoscaling/v2, CPU) for the types
``workers.autoscaling`` may scale. Nothing for the monolith."""

from __future__ import annotations

import shlex
from typing import Any

from .. import tls
from ..base import RenderContext, container_security, pod_security, render_template
from . import workers as synapse_workers
from .workers import WORKER_LABEL, WORKER_POD_NAME, WorkerType

REDIS_UID, REDIS_GID = 999, 1000  # the redis image's user (as Docs' Redis: components/docs)
REDIS_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
# Replication is pub/sub plus a small shared cache: noeviction below the limit, so Redis refuses a write rather
# than being OOM-killed (Synapse retries).
REDIS_MAXMEMORY = "384mb"
REDIS_SECRET_DIR = "/redis-secret"  # the password file
REDIS_TLS_DIR = "/redis-tls"  # the server's certificate, key and the tenant CA
REDIS_CLIENT_TLS_DIR = "/redis-client-tls"  # the probe's client pair
STICKY = ("sync", "initial_sync")  # hashed per user over the pool's processes (docs/workers.md, "Load balancing")
METRICS_LABEL = "sovereignsuite.io/synapse-metrics"  # the worker Services with a metrics port (ServiceMonitor)


def redis_script(port: int, maxmemory: str) -> str:
    """redis-server with its password as a config line on standard input ("-", as Docs' Redis:
    components/docs/secret_env.py), TLS only (redis.conf of the redis image's release, "TLS/SSL": ``port 0`` turns
    the plaintext listener off, ``tls-port`` serves TLS, ``tls-auth-clients yes`` requires a client certificate
    signed by ``tls-ca-cert-file``). The generated password is alphanumeric: no quoting needed in redis.conf."""
    files = tls.SERVER_FILES
    args = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", f"{REDIS_TLS_DIR}/{files['cert']}",
            "--tls-key-file", f"{REDIS_TLS_DIR}/{files['key']}", "--tls-ca-cert-file", f"{REDIS_TLS_DIR}/{files['ca']}",
            "--tls-auth-clients", "yes", "--tls-protocols", "TLSv1.2 TLSv1.3", "--save", "", "--appendonly", "no",
            "--maxmemory", maxmemory, "--maxmemory-policy", "noeviction"]
    return (f"exec redis-server - {shlex.join(args)} <<EOF\nrequirepass $(cat {REDIS_SECRET_DIR}/password)\nEOF\n")


def redis_probe(port: int) -> str:
    """PING over TLS as a Synapse process connects: the client pair, the server verified against the tenant CA
    (localhost is one of its certificate's names), the password in REDISCLI_AUTH of this one process."""
    files = tls.SERVER_FILES
    return (f'REDISCLI_AUTH="$(cat {REDIS_SECRET_DIR}/password)" redis-cli --tls '
            f"--cacert {REDIS_CLIENT_TLS_DIR}/{files['ca']} --cert {REDIS_CLIENT_TLS_DIR}/{files['cert']} "
            f"--key {REDIS_CLIENT_TLS_DIR}/{files['key']} -h localhost -p {port} ping | grep -q PONG")


def worker_labels(ctx: RenderContext, component: str, kind: WorkerType, version: str | None) -> dict[str, str]:
    return {**ctx.labels(component, WORKER_POD_NAME, version), WORKER_LABEL: kind.name}


def worker_selector(ctx: RenderContext, component: str, kind: WorkerType) -> dict[str, str]:
    return {**ctx.selector(component, WORKER_POD_NAME), WORKER_LABEL: kind.name}


def _ports(kind: WorkerType, http_port: int, metrics_port: int, container: bool) -> list[dict[str, Any]]:
    named = [("http", http_port), ("metrics", metrics_port)]
    if kind.replication:
        named.append(("replication", synapse_workers.REPLICATION_PORT))
    key = "containerPort" if container else "port"
    return [{"name": n, key: p, **({} if container else {"targetPort": n}), "protocol": "TCP"} for n, p in named]


def render_workers(ctx: RenderContext, component: str, version: str | None, **common: Any) -> list[dict[str, Any]]:
    """``common``: what the main Deployment's template gets too (paths, db, command parts, resources...)."""
    matrix = ctx.components.matrix
    active = synapse_workers.active(matrix.workers)
    if not active:
        return []
    paths = common["paths"]
    autoscaling = matrix.workers.autoscaling
    workers = []
    for kind, count in active:
        selector = worker_selector(ctx, component, kind)
        autoscaled = kind.autoscaled and autoscaling.enabled
        workers.append({
            "kind": kind,
            "replicas": count,
            "autoscaled": autoscaled,
            "max_replicas": count * autoscaling.max_factor,
            "labels": worker_labels(ctx, component, kind, version),
            "pod_labels": {**worker_labels(ctx, component, kind, version), **common["writers"]},
            "selector": selector,
            "ports": _ports(kind, common["http_port"], common["metrics_port"], container=False),
            "container_ports": _ports(kind, common["http_port"], common["metrics_port"], container=True),
            "pod_services": [
                {"name": kind.instance(i),
                 "selector": {**selector, "statefulset.kubernetes.io/pod-name": kind.instance(i)}}
                for i in range(count)
            ] if kind.key in STICKY else [],
            "media": kind.key == "media_repository",
            "init_command": ["python3", paths.worker_script, paths.worker_type_file(kind.name), paths.worker,
                             kind.statefulset],
        })
    redis_part = synapse_workers.REDIS_NAME
    return render_template(
        common.pop("here"),
        "synapse-workers.yaml.j2",
        ctx=ctx,
        matrix=matrix,
        workers=workers,
        autoscaling=autoscaling,
        labels=ctx.labels(component, WORKER_POD_NAME, version),
        worker_selector=ctx.selector(component, WORKER_POD_NAME),
        metrics_label={METRICS_LABEL: "true"},
        redis_name=redis_part,
        redis_port=synapse_workers.REDIS_PORT,
        redis_labels=ctx.labels(component, redis_part),
        redis_selector=ctx.selector(component, redis_part),
        redis_pod_security=pod_security(user=REDIS_UID, fs_group=REDIS_GID),
        redis_resources=REDIS_RESOURCES,
        redis_script=redis_script(synapse_workers.REDIS_PORT, REDIS_MAXMEMORY),
        redis_probe=redis_probe(synapse_workers.REDIS_PORT),
        redis_tls_dir=REDIS_TLS_DIR,
        redis_client_tls_dir=REDIS_CLIENT_TLS_DIR,
        redis_tls_server_volume=tls.server_volume("tls", tls.SYNAPSE_REDIS),
        redis_tls_client_volume=tls.client_volume("client-tls", tls.SYNAPSE_REDIS_CLIENT),
        pod_security=pod_security(common.pop("uid")),
        container_security=container_security(read_only_root=True),
        **common,
    )


# idle connections the router keeps per upstream and nginx worker, and for how long (below Twisted's 60 s: the
# template says why); a request without an idle connection opens a new one, as before
ROUTER_KEEPALIVE_CONNECTIONS = 16
ROUTER_KEEPALIVE_TIMEOUT_S = 30


def router_conf(ctx: RenderContext, here: str, http_port: int, max_body: str, timeout: int) -> str:
    from ..base import render_text
    from .routing import nginx_values

    return render_text(here, "router-nginx.conf.j2", http_port=http_port, max_body=max_body, timeout=timeout,
                       keepalive_connections=ROUTER_KEEPALIVE_CONNECTIONS, keepalive_timeout=ROUTER_KEEPALIVE_TIMEOUT_S,
                       **nginx_values(ctx.components.matrix.workers.topology()))


def render_router(ctx: RenderContext, component: str, *, here: str, http_port: int, affinity: dict[str, Any],
                  max_body: str, timeout: int, resources: dict[str, Any], uid: int) -> list[dict[str, Any]]:
    """The router (templates/synapse-router.yaml.j2) with its nginx config from routes.yaml."""
    from ..base import image_version

    matrix = ctx.components.matrix
    return render_template(
        here, "synapse-router.yaml.j2", ctx=ctx,
        labels=ctx.labels(component, "synapse-router", image_version(matrix.router_image)),
        selector=ctx.selector(component, "synapse-router"),
        config_data={"default.conf": router_conf(ctx, here, http_port, max_body, timeout)},
        replicas=matrix.router_replicas if matrix.replicas else 0, image=matrix.router_image,
        http_port=http_port, affinity=affinity, resources=resources,
        pod_security=pod_security(uid), container_security=container_security(read_only_root=True),
    )
