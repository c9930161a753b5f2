"""Synapse workers of a tenant: the shared configuration they need and each worker type's own file.

Every fact below is from element-hq/synapse at the pinned tag v1.163.2: docs/workers.md ("Shared configuration",
"Stream writers", "Background tasks", "Push Notifications", "synapse.app.media_repository", "Restrict outbound
federation traffic") and docs/usage/configuration/config_documentation.md ("Coordinating workers",
"Individual worker configuration"); the health resource every HTTP listener serves is in
synapse/app/generic_worker.py (``_listen_http``).

Instance names are the StatefulSet pod names (``synapse-<type>-<ordinal>``): stable across restarts, so the
``instance_map`` entries are the pods' DNS names under the type's headless Service, and ``stream_writers``,
``federation_sender_instances`` and the single-instance settings name them. A worker learns its own name from
its pod name (init container ``worker-config``, templates/write-worker-config.py.j2).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ...api.matrix_workers import MatrixWorkers, WORKER_FIELDS
from .. import tls
from ..base import RenderContext

REPLICATION_PORT = 9093  # docs/workers.md's example; ESS uses 9093 too
REDIS_NAME = "synapse-redis"
REDIS_PORT = 6379
GENERIC = "synapse.app.generic_worker"
MEDIA = "synapse.app.media_repository"
WORKER_LABEL = "sovereignsuite.io/synapse-worker"  # the worker type of a pod (status, selectors)
WORKER_POD_NAME = "synapse-worker"  # app.kubernetes.io/name of every worker pod (network policies)
# the writer set a Synapse process was started with (pod template label of main and every worker): adding or
# removing event persisters or federation senders needs every process restarted (docs/workers.md, "Stream
# writers" and "synapse.app.generic_worker"), and no process of the old set may run beside one of the new set
# (reconcile/writer_change.py)
WRITERS_LABEL = "sovereignsuite.io/synapse-writers"
WRITER_KEYS = ("stream_writers", "federation_sender_instances")


@dataclass(frozen=True)
class WorkerType:
    key: str  # the API's snake_case name (MatrixWorkers field)
    app: str  # worker_app
    resources: tuple[str, ...]  # of the public HTTP listener; () = only /health
    replication: bool = False  # a replication listener, listed in instance_map
    autoscaled: bool = False  # an HPA may change its replicas (nothing in the config lists them)

    @property
    def name(self) -> str:
        """The type's object name suffix: event_persister -> event-persister."""
        return self.key.replace("_", "-")

    @property
    def field(self) -> str:
        return WORKER_FIELDS[self.key]

    @property
    def statefulset(self) -> str:
        return f"synapse-{self.name}"

    def instance(self, ordinal: int) -> str:
        return f"{self.statefulset}-{ordinal}"


TYPES: tuple[WorkerType, ...] = (
    WorkerType("sync", GENERIC, ("client",)),
    WorkerType("initial_sync", GENERIC, ("client",)),
    WorkerType("client_reader", GENERIC, ("client",), autoscaled=True),
    WorkerType("federation_inbound", GENERIC, ("federation",), autoscaled=True),
    # outbound_federation_restricted_to: "Any worker specified here must also be in the instance_map".
    WorkerType("federation_sender", GENERIC, (), replication=True),
    # stream writers need a replication listener and an instance_map entry ("Stream writers").
    WorkerType("event_persister", GENERIC, (), replication=True),
    # the media resource also serves /_matrix/client/v1/media and /_matrix/federation/v1/media.
    WorkerType("media_repository", MEDIA, ("media",)),
    WorkerType("background", GENERIC, ()),
    WorkerType("pusher", GENERIC, ()),
    # the user directory search may go to any client worker; its updates run here only.
    WorkerType("user_directory", GENERIC, ("client",)),
)
BY_KEY = {t.key: t for t in TYPES}


def active(workers: MatrixWorkers) -> list[tuple[WorkerType, int]]:
    """The worker types with at least one replica, in TYPES order, with their count."""
    counts = workers.topology()
    return [(t, counts[t.key]) for t in TYPES if counts[t.key] > 0]


def instances(workers: MatrixWorkers, key: str) -> list[str]:
    kind = BY_KEY[key]
    return [kind.instance(i) for i in range(workers.topology()[key])]


def pod_host(ctx: RenderContext, kind: WorkerType, ordinal: int) -> str:
    """A StatefulSet pod's DNS name under its headless Service (stable while the pod is rescheduled)."""
    return f"{kind.instance(ordinal)}.{kind.statefulset}.{ctx.namespace}.svc.cluster.local"


def redis_tls(tls_dir: str) -> dict[str, Any]:
    """Synapse's Redis TLS settings (synapse/config/redis.py at v1.163.2: ``use_tls``, ``certificate_file``,
    ``private_key_file``, ``ca_file``, ``ca_path``). At that tag the connection is encrypted but Synapse does not
    verify the server: synapse/replication/tcp/context.py's ClientContextFactory loads ``ca_file`` into a context
    of Twisted's ssl.ClientContextFactory and never calls ``set_verify`` (OpenSSL's default: VERIFY_NONE). The CA
    is set anyway (a release that verifies will use it); the server verifies the clients instead
    (``tls-auth-clients yes``: only a process holding the tenant CA's client certificate gets in, then the
    password), and the NetworkPolicy lets only the tenant's Synapse processes reach it."""
    files = tls.SERVER_FILES
    return {"use_tls": True, "ca_file": f"{tls_dir}/{files['ca']}", "certificate_file": f"{tls_dir}/{files['cert']}",
            "private_key_file": f"{tls_dir}/{files['key']}"}


def shared_config(ctx: RenderContext, keys_dir: str, redis_tls_dir: str) -> dict[str, Any]:
    """The keys every process reads from homeserver.yaml when workers run ({} for the monolith)."""
    workers = ctx.components.matrix.workers
    if not workers.enabled():
        return {}
    instance_map: dict[str, Any] = {
        "main": {"host": f"synapse.{ctx.namespace}.svc.cluster.local", "port": REPLICATION_PORT},
    }
    for kind, count in active(workers):
        if kind.replication:
            for i in range(count):
                instance_map[kind.instance(i)] = {"host": pod_host(ctx, kind, i), "port": REPLICATION_PORT}
    config: dict[str, Any] = {
        "redis": {
            "enabled": True,
            "host": f"{REDIS_NAME}.{ctx.namespace}.svc.cluster.local",
            "port": REDIS_PORT,
            "password_path": f"{keys_dir}/redis_password",
            **redis_tls(redis_tls_dir),
        },
        # Authenticates the replication HTTP requests (required by outbound_federation_restricted_to).
        "worker_replication_secret_path": f"{keys_dir}/worker_replication_secret",
        "instance_map": instance_map,
    }
    persisters = instances(workers, "event_persister")
    if persisters:
        config["stream_writers"] = {"events": persisters}
    senders = instances(workers, "federation_sender")
    if senders:
        config["send_federation"] = False
        config["federation_sender_instances"] = senders
        # only the senders contact other homeservers (the network policy lets only them out)
        config["outbound_federation_restricted_to"] = senders
    pushers = instances(workers, "pusher")
    if pushers:
        config["start_pushers"] = False
        config["pusher_instances"] = pushers
    media = instances(workers, "media_repository")
    if media:
        config["enable_media_repo"] = False  # main stops serving media; the media worker's app overrides it
        config["media_instance_running_background_jobs"] = media[0]
    for key, option in (("background", "run_background_tasks_on"),
                        ("user_directory", "update_user_directory_from_worker")):
        names = instances(workers, key)
        if names:
            config[option] = names[0]
    return config


# Synapse's first backoff after a failed federation request to a destination ("federation" section,
# destination_min_retry_interval: default 10m, synapse/config/federation.py at v1.163.2; then multiplied by
# destination_retry_multiplier, 2, up to destination_max_retry_interval, 7d). With
# outbound_federation_restricted_to, every process's federation request goes through a sender's replication
# listener (synapse/http/proxyagent.py), and the retry limiter wraps the whole request
# (synapse/http/matrixfederationclient.py, get_retry_limiter): a request made while no sender listens
# (every process starting after a writer set change, a sender pod restarting) counts as the *destination*
# failing. The destination is then backed off in the shared ``destinations`` table, and the federation sender
# holds every transaction to it without a word above DEBUG (synapse/federation/sender/per_destination_queue.py,
# NotRetryingDestination) until the backoff ends or the destination contacts us. Seen with real Synapse: main's
# user directory refreshes a remote user's profile 10 s after it starts (synapse/handlers/user_directory.py,
# ``ignore_backoff=False``, a 10 s timeout so no retry); the senders not listening yet, the partner country was
# backed off for 10 minutes and the next message to it waited as long (tests/cluster/test_matrix_workers_real.py).
# 30 s bounds that wait; a destination really down is still backed off 30 s, 1 min, 2 min... (a few more
# attempts in its first quarter of an hour, to the whitelisted partners only).
DESTINATION_MIN_RETRY_INTERVAL = "30s"


def federation_defaults(ctx: RenderContext) -> dict[str, Any]:
    """The ``federation`` section's settings the operator chooses for a topology with federation senders
    (extraConfig's ``federation`` keys replace them one by one); {} otherwise (Synapse's defaults)."""
    workers = ctx.components.matrix.workers
    if not workers.enabled() or not instances(workers, "federation_sender"):
        return {}
    return {"destination_min_retry_interval": DESTINATION_MIN_RETRY_INTERVAL}


def main_listener() -> dict[str, Any]:
    """The main process's replication listener (docs/workers.md, "Shared configuration"): never routed."""
    return {
        "port": REPLICATION_PORT,
        "type": "http",
        "tls": False,
        "bind_addresses": ["::", "0.0.0.0"],
        "resources": [{"names": ["replication"], "compress": False}],
    }


def worker_config(kind: WorkerType, http_port: int, metrics_port: int) -> dict[str, Any]:
    """A worker type's own file, without worker_name (the init container adds the pod's name)."""
    listeners: list[dict[str, Any]] = [
        {
            "port": http_port,
            "type": "http",
            "tls": False,
            "x_forwarded": True,
            "bind_addresses": ["::", "0.0.0.0"],
            "resources": [{"names": list(kind.resources) or ["health"], "compress": False}],
        },
        {"port": metrics_port, "type": "metrics", "bind_addresses": ["0.0.0.0"]},
    ]
    if kind.replication:
        listeners.append({**main_listener()})
    return {"worker_app": kind.app, "worker_listeners": listeners}


def writers_digest(homeserver: dict[str, Any]) -> str:
    """A label value naming the writer set of a worker topology's homeserver.yaml."""
    chosen = {key: homeserver.get(key) for key in WRITER_KEYS}
    return hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest()[:16]
