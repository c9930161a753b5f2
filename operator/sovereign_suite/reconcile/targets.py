"""Where each tenant is applied: the operator's own cluster, or its national cloud's member cluster
(docs/multi-cluster.md).

- A NationalCloud without ``kubeconfigSecretRef`` is the operator's own cluster (``LOCAL``).
- With one, it is a member cluster (push mode): the operator reaches it with the kubeconfig in that Secret on the
  hub (written by ``sovereign-suite cloud join``). Each member gets a ``Target`` of its own: its own client and
  watch cache, built on first use and built again when the Secret changes (rotated credentials are used from the
  next pass, with no restart).
- In pull mode (``run --local-cloud NAME``) the named clouds are this cluster and every other cloud is remote:
  its tenants are applied by the operator in their own country, and no credential of theirs is ever read here.

A member that does not answer, or answers 401/403, is a problem of its tenants only (``Target.problem``); the
other tenants of the suite go on. Each cluster has its own deadlines (transport.py) and its own threads
(pools.py): a member that hangs holds neither another cluster's threads nor, beyond its deadlines, a pass.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import yaml
from kubernetes import config as k8s_config

from .. import metrics
from ..api.models import NationalCloud
from .cache import ClusterCache, keep_whole
from .informer import Informer
from .kube import Kube
from .pools import ClusterPools
from .problems import Problem, degraded, stalled
from .transport import MEMBER, Deadlines, Reachability, client_configuration

log = logging.getLogger(__name__)

LOCAL = "local"  # the cluster the operator runs in
REMOTE = "remote"  # pull mode: a cloud another country's operator serves
SYNC_TIMEOUT = 10.0  # how long a pass waits for a new member's first listing before calling it unreachable


@dataclass
class Target:
    """One cluster tenants are applied to: its client and its watch cache."""

    name: str  # LOCAL, or the NationalCloud whose member cluster this is
    kube: Kube
    cache: ClusterCache
    pools: ClusterPools  # this cluster's threads (pools.py)
    server: str = ""  # the member's API server, as its kubeconfig names it
    source: tuple[str, str, str] = ("", "", "")  # (namespace, name, key) of the kubeconfig Secret on the hub
    version: str = ""  # that Secret's resourceVersion when this target was built
    built_at: float = 0.0  # time.monotonic() when built: a pass waits for the first listing only that long

    @property
    def is_member(self) -> bool:
        return self.name != LOCAL

    def __str__(self) -> str:
        return f"member cluster {self.name} ({self.server})" if self.is_member else "the operator's cluster"

    def problem(self) -> Problem | None:
        """Whether the member answers. A watch failing with 401/403 means credentials too weak or revoked; any
        other failure, a request or watch that got no answer and none answered since, or a first listing not done
        yet, means it does not answer. (The operator's own cluster reports failing watches as WatchFailed instead:
        pipeline.py.)"""
        if not self.is_member:
            return None
        down = self.kube.reachability.failure()
        return cluster_problem(str(self), ([(down, 0)] if down else [])
                               + [(i.last_error, i.last_status) for i in self.cache.failing()])

    def unanswered(self) -> bool:
        """A member whose request or watch got no answer, and none since (a pass stops waiting for it:
        pools.each_cluster)."""
        return self.is_member and self.kube.reachability.failure() is not None

    def stop(self) -> None:
        """Its watches and its threads stop (a request in flight ends by its deadline)."""
        self.cache.stop()
        self.pools.stop()


def cluster_problem(cluster: str, failing: list[tuple[str, int]]) -> Problem | None:
    """``failing``: (error, API status) of the watches failing now ("" error: never listed yet)."""
    if not failing:
        return None
    denied = [error for error, status in failing if status in (401, 403)]
    if denied:
        return degraded("ClusterForbidden", f"{cluster} refuses the operator's credentials: {denied[0]}")
    errors = [error for error, _ in failing if error]
    return degraded("ClusterUnreachable", f"{cluster} does not answer: {errors[0] if errors else 'not reached yet'}")


class Members:
    """The member clusters of push mode, one ``Target`` per NationalCloud with a ``kubeconfigSecretRef``.

    The kubeconfig Secrets are watched on the hub (one small watch each, by name): a change marks the target
    stale and ``on_change(cloud)`` enqueues the suites using that cloud; the next pass builds a new target and
    stops the old one's watches and threads. ``make_cache(kube, cloud)`` builds (does not start) a member's cache;
    ``make_pools(cloud)`` its threads. ``on_change(cloud)`` also runs when a member stops or starts answering."""

    def __init__(self, hub: Kube, make_cache: Callable[[Kube, str], ClusterCache],
                 on_change: Callable[[str], None], max_retries: int = 1, deadlines: Deadlines = MEMBER,
                 make_pools: Callable[[str], ClusterPools] = lambda cloud: ClusterPools(cloud, 8, 16)):
        self.hub = hub
        self.make_cache = make_cache
        self.make_pools = make_pools
        self.on_change = on_change
        # a member that does not answer fails fast: a refused connection is tried once more, a timeout never
        self.max_retries = max_retries
        self.deadlines = deadlines
        self._lock = threading.Lock()
        self._building: dict[str, threading.Lock] = {}
        self._targets: dict[str, Target] = {}
        self._secrets: dict[tuple[str, str], Informer] = {}
        self._readers: dict[tuple[str, str], set[str]] = {}  # kubeconfig Secret -> the clouds naming it

    def targets(self) -> list[Target]:
        with self._lock:
            return list(self._targets.values())

    def target(self, cloud: NationalCloud) -> Target | Problem:
        ref = cloud.spec.kubeconfig_secret_ref
        assert ref is not None
        source = (ref.namespace, ref.name, ref.key)
        where = f"NationalCloud {cloud.name}: spec.kubeconfigSecretRef: Secret {ref.namespace}/{ref.name}"
        watch = self._watch(ref.namespace, ref.name, cloud.name)
        if not watch.synced.wait(SYNC_TIMEOUT):
            return degraded("MemberCredentials", f"{where}: cannot be read on the hub: {watch.last_error}")
        secret = watch.get(ref.namespace, ref.name)
        if secret is None:
            return stalled("MemberCredentials", f"{where}: not found on the hub (written by `sovereign-suite cloud "
                           "join`)")
        version = secret["metadata"].get("resourceVersion", "")
        with self._lock:
            lock = self._building.setdefault(cloud.name, threading.Lock())
        with lock:  # two passes needing the same new member build it once
            with self._lock:
                current = self._targets.get(cloud.name)
            if current is not None and current.source == source and current.version == version:
                self._settle(current)
                return current
            built = self._build(cloud.name, secret, ref.key, where)
            if isinstance(built, Problem):
                return built
            built.source, built.version = source, version
            with self._lock:
                old, self._targets[cloud.name] = self._targets.get(cloud.name), built
        if old is not None:
            log.info("%s: kubeconfig Secret changed; the old client's watches and threads stop", built)
            old.stop()
        self._settle(built)
        return built

    @staticmethod
    def _settle(target: Target) -> None:
        """Let a new member's first listing finish (up to SYNC_TIMEOUT after it was built), so that a pass does
        not mistake a cache still filling for a member that does not answer; later, unreachable is reported
        at once (Target.problem)."""
        left = SYNC_TIMEOUT - (time.monotonic() - target.built_at)
        if left > 0:
            target.cache.wait_synced(left)

    def _build(self, cloud: str, secret: dict[str, Any], key: str, where: str) -> Target | Problem:
        raw = (secret.get("data") or {}).get(key)
        if not raw:
            return stalled("MemberCredentials", f"{where}: has no key {key!r}")
        try:
            doc = yaml.safe_load(base64.b64decode(raw))
            cfg = client_configuration()  # no retry hidden in the client (transport.py)
            api = k8s_config.new_client_from_config_dict(doc, persist_config=False, client_configuration=cfg)
        except (binascii.Error, yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError,
                k8s_config.ConfigException) as exc:
            # the exception's text may quote the kubeconfig (a token): only its type is reported
            return stalled("MemberCredentials", f"{where}: key {key!r} is not a usable kubeconfig "
                           f"({type(exc).__name__})")
        kube = Kube(api, max_retries=self.max_retries, max_delay=2.0, user_agent="sovereign-suite-operator",
                    deadlines=self.deadlines,
                    reachability=Reachability(lambda: self.on_change(cloud), f"member cluster {cloud}"))
        cache = self.make_cache(kube, cloud)
        target = Target(cloud, kube, cache, self.make_pools(cloud), server=api.configuration.host,
                        built_at=time.monotonic())
        cache.start()
        log.info("%s: watching", target)
        return target

    def _watch(self, namespace: str, name: str, cloud: str) -> Informer:
        with self._lock:
            self._readers.setdefault((namespace, name), set()).add(cloud)
            inf = self._secrets.get((namespace, name))
            if inf is None:
                inf = Informer(self.hub, "v1", "Secret", strip=keep_whole, namespace=namespace,
                               field_selector=f"metadata.name={name}",
                               on_event=lambda *_: self._secret_changed(namespace, name))
                self._secrets[(namespace, name)] = inf
                inf.start()
        return inf

    def _secret_changed(self, namespace: str, name: str) -> None:
        with self._lock:  # a Secret created after its cloud named it, replaced (rotation) or deleted
            clouds = sorted(self._readers.get((namespace, name), ()))
        for cloud in clouds:
            self.on_change(cloud)

    def drop_unused(self, clouds: dict[str, NationalCloud]) -> None:
        """Stop the targets of clouds that no longer name a member (``cloud leave``, cloud deleted)."""
        with self._lock:
            gone = [n for n, t in self._targets.items() if n not in clouds
                    or clouds[n].spec.kubeconfig_secret_ref is None]
            stopped = [self._targets.pop(n) for n in gone]
        for t in stopped:
            log.info("%s: no NationalCloud names it any more; its watches and threads stop", t)
            t.stop()
            metrics.record_member(t.name, None)

    def stop(self) -> None:
        with self._lock:
            targets, secrets = list(self._targets.values()), list(self._secrets.values())
        for t in targets:
            t.stop()
        for inf in secrets:
            inf.stop()
