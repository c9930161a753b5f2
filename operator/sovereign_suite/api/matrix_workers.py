"""Synapse workers of a tenant (``components.matrix.workers``): which worker types run and how many of each.

A ``size`` preset expands to a topology (``PRESETS``); every count set explicitly wins over the preset. Worker
types and what Synapse allows of each (element-hq/synapse docs/workers.md at the pinned tag v1.163.2):

- ``sync`` / ``initialSync``: generic workers for /sync (the router keeps a user on one of them); initial syncs
  (no ``since``) get their own pool when ``initialSync`` > 0 ("Load balancing").
- ``clientReader``: generic workers for the client API read endpoints (round robin).
- ``federationInbound``: generic workers for the federation request endpoints and /send ("Federation requests").
- ``federationSender``: ``federation_sender_instances`` (several; all processes restart when it changes).
- ``eventPersister``: writers of the ``events`` stream, sharded by room (several; all processes restart).
- ``pusher``: ``pusher_instances`` (several; main and pushers restart when it changes).
- ``mediaRepository``, ``background``, ``userDirectory``: single-instance in Synapse
  (``media_instance_running_background_jobs``, ``run_background_tasks_on``,
  ``update_user_directory_from_worker`` each name ONE instance; media repositories must also share one store,
  here a ReadWriteOnce volume).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from .common import Model

Size = Literal["monolith", "small", "large", "national"]
# The API field (camelCase) of each worker type, in rendering order.
WORKER_FIELDS = {
    "sync": "sync",
    "initial_sync": "initialSync",
    "client_reader": "clientReader",
    "federation_inbound": "federationInbound",
    "federation_sender": "federationSender",
    "event_persister": "eventPersister",
    "media_repository": "mediaRepository",
    "background": "background",
    "pusher": "pusher",
    "user_directory": "userDirectory",
}
SINGLE_INSTANCE = ("media_repository", "background", "user_directory")
MAX_REPLICAS = 32  # per worker type: far above what one PostgreSQL primary sustains

_NONE = dict.fromkeys(WORKER_FIELDS, 0)
# What each preset is for (docs/components/matrix.md, "Workers"):
# - monolith: one Synapse process, no Redis (the default: a pilot, a ministry of a few thousand users);
# - small: one worker per type but no initial-sync pool and no event persister: tens of thousands. Main keeps
#   writing events and the router sends it the event-sending requests (routes.yaml): a separate persister added
#   the most latency per message of any worker type on the lab (docs/performance.md, "Which workers cost
#   latency"), and main's one core is not yet what limits a tenant of this size;
# - large: two of each shardable type and an initial-sync pool: a few hundred thousand users;
# - national: a whole country (Luxchat, Tchap): four sync workers, two for initial syncs, four persisters
#   and four senders (both change only with a restart of every process: chosen once, generously).
PRESETS: dict[str, dict[str, int]] = {
    "monolith": dict(_NONE),
    "small": {**_NONE, "sync": 1, "client_reader": 1, "federation_inbound": 1, "federation_sender": 1,
              "event_persister": 0, "media_repository": 1, "background": 1, "pusher": 1, "user_directory": 1},
    "large": {**_NONE, "sync": 2, "initial_sync": 1, "client_reader": 2, "federation_inbound": 2,
              "federation_sender": 2, "event_persister": 2, "media_repository": 1, "background": 1, "pusher": 1,
              "user_directory": 1},
    "national": {**_NONE, "sync": 4, "initial_sync": 2, "client_reader": 4, "federation_inbound": 4,
                 "federation_sender": 4, "event_persister": 4, "media_repository": 1, "background": 1, "pusher": 2,
                 "user_directory": 1},
}


def _count(description: str) -> object:
    return Field(None, ge=0, le=MAX_REPLICAS, description=description)


def _single(description: str) -> object:
    return Field(None, ge=0, description=description + " Single-instance in Synapse: 0 or 1.")


class MatrixAutoscaling(Model):
    """HorizontalPodAutoscalers (autoscaling/v2, CPU) for the types whose replicas Synapse does not list in its
    configuration and the router reaches through one Service: client readers and federation inbound."""

    enabled: bool = False
    max_factor: int = Field(3, ge=1, le=10, description="maxReplicas = count × maxFactor (minReplicas = count).")
    target_cpu_percent: int = Field(75, ge=10, le=100, description="Average CPU utilisation of the requests.")


class MatrixWorkers(Model):
    """Synapse workers; ``size`` expands to a topology, explicit counts override it."""

    size: Size = Field(
        "monolith",
        description="monolith (one process, no Redis), small, large or national: see docs/components/matrix.md.",
    )
    sync: int | None = _count("Sync workers (/sync, /events; sticky per user).")
    initial_sync: int | None = _count("Workers for initial syncs (/sync without since, /initialSync); 0: sync's.")
    client_reader: int | None = _count("Generic workers for the client API endpoints Synapse lets workers serve.")
    federation_inbound: int | None = _count("Generic workers for inbound federation requests and transactions.")
    federation_sender: int | None = _count("federation_sender_instances; changing it restarts every process.")
    event_persister: int | None = _count("Writers of the events stream (sharded by room); 0: main writes them and "
                                         "is sent event sending; changing it restarts every process.")
    media_repository: int | None = _single("The media repository (synapse.app.media_repository).")
    background: int | None = _single("run_background_tasks_on.")
    pusher: int | None = _count("pusher_instances.")
    user_directory: int | None = _single("update_user_directory_from_worker.")
    autoscaling: MatrixAutoscaling = Field(default_factory=MatrixAutoscaling)

    @field_validator(*SINGLE_INSTANCE)
    @classmethod
    def _single_instance(cls, v: int | None, info) -> int | None:  # type: ignore[no-untyped-def]
        if v is not None and v > 1:
            field = WORKER_FIELDS[info.field_name]
            raise ValueError(
                f"{field} is a single-instance worker type in Synapse (docs/workers.md): replicas must be 0 or 1, "
                f"not {v}"
            )
        return v

    def topology(self) -> dict[str, int]:
        """The count of every worker type: the preset, then the counts set explicitly."""
        counts = dict(PRESETS[self.size])
        counts.update({k: getattr(self, k) for k in WORKER_FIELDS if getattr(self, k) is not None})
        return counts

    def enabled(self) -> bool:
        return any(self.topology().values())
