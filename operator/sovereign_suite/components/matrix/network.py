"""Who talks to whom among a tenant's Synapse processes (used by the tenancy NetworkPolicies,
components/tenancy/network.py). Monolith: the main process only, as before. Workers: the router reaches the
processes' HTTP port; every Synapse process reaches the others' replication port (instance_map) and Redis; only
the Synapse processes reach Redis; only the federation senders leave the tenant for other homeservers
(outbound_federation_restricted_to: the other processes send their federation requests through them)."""

from __future__ import annotations

from typing import Any, Callable

from ..base import RenderContext
from . import workers as synapse_workers

NAME = "app.kubernetes.io/name"
MAIN, WORKER, ROUTER = "synapse", synapse_workers.WORKER_POD_NAME, "synapse-router"


def _workers_on(ctx: RenderContext) -> bool:
    return ctx.components.matrix.workers.enabled()


def synapse_database_clients(ctx: RenderContext) -> tuple[str, ...]:
    return (MAIN, WORKER) if _workers_on(ctx) else (MAIN,)


def synapse_servers(ctx: RenderContext, pod: Callable[[str], dict[str, Any]], http_port: int) -> list[Any]:
    """(policy name, pod selector, ports routed from the ingress controller, [(client pods, ports)])."""
    if not _workers_on(ctx):
        return [(MAIN, pod(MAIN), [http_port], [])]
    replication = synapse_workers.REPLICATION_PORT
    return [
        (MAIN, pod(MAIN), [], [((ROUTER,), [http_port]), ((WORKER,), [replication])]),
        (WORKER, pod(WORKER), [], [((ROUTER,), [http_port]), ((MAIN, WORKER), [replication])]),
        (synapse_workers.REDIS_NAME, pod(synapse_workers.REDIS_NAME), [],
         [((MAIN, WORKER), [synapse_workers.REDIS_PORT])]),
        (ROUTER, pod(ROUTER), [http_port], []),
    ]


def synapse_federation_pods(ctx: RenderContext, names: Callable[[list[str]], dict[str, Any]]) -> dict[str, Any]:
    """The pods that send federation traffic: the federation senders when there are, else the main process."""
    if synapse_workers.instances(ctx.components.matrix.workers, "federation_sender"):
        kind = synapse_workers.BY_KEY["federation_sender"]
        return {"matchLabels": {NAME: WORKER, synapse_workers.WORKER_LABEL: kind.name}}
    return names([MAIN])
