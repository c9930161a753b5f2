"""Where each tenant is applied: the operator's own cluster, or its national cloud's member cluster
(docs/multi-cluster.md).

- A NationalCloud with ``spec.cluster: local`` (the default) is the operator's own cluster (``LOCAL``).
- With ``spec.cluster: member`` it is a member cluster (push mode): the operator reaches it with the kubeconfig in
  the Secret ``kubeconfigSecretRef`` names (written by ``sovereign-suite cloud join``). That Secret must be in the
  operator's member-secrets namespace and labelled ``sovereignsuite.io/member-credentials: "true"``, and its
  kubeconfig is read as data only (members/kubeconfig.py: nothing in it can make the operator run a program or read
  a file). Each member gets a ``Target`` of its own: its own client and watch cache, built on first use and built
  again when the Secret changes (rotated credentials are used from the next pass, with no restart).
- In pull mode (``run --local-cloud NAME``) the named clouds are this cluster and every other cloud is remote:
  its tenants are applied by the operator in their own country, and no credential of theirs is ever read here.

A member that does not answer, or answers 401/403, is a problem of its tenants only (``Target.problem``); the
other tenants of the suite go on. Each cluster has its own deadlines (transport.py) and a capped share of the
shared threads (pools.py): a member that hangs holds no more than its cap of them and, beyond its deadlines, no
pass.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from .. import metrics
from ..api.common import OPERATOR_NAMESPACE
from ..api.models import NationalCloud
from ..api.secret_refs import MEMBER_CREDENTIALS_LABEL, OPT_IN_LABEL
from ..members import kubeconfig
from .apiclient import ApiClient
from .cache import ClusterCache, keep_whole
from .informer import Informer
from .kube import ApiError, Kube
from .pools import ClusterPools
from .problems import Problem, degraded, stalled
from .transport import CONNECTION_POOL, MEMBER, Deadlines, Reachability
from .watchloop import WatchLoop

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
    identity: str = ""  # the cluster behind the client (identify), once read

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
                               + [(i.last_error, i.last_status) for i in self.cache.failing()], self.name)

    def unanswered(self) -> bool:
        """A member whose request or watch got no answer, and none since (a pass stops waiting for it:
        pools.each_cluster)."""
        return self.is_member and self.kube.reachability.failure() is not None

    def stop(self) -> None:
        """Its watches and its threads stop (a request in flight ends by its deadline)."""
        self.cache.stop()
        self.pools.stop()


def identify(target: Target) -> str:
    """The cluster behind a target's client: the uid of its kube-system Namespace, the cluster ID that
    sig-multicluster's KEP-2149 (ClusterId for ClusterSet identification) recommends, since it lives as long as the
    cluster and no two clusters share it. A cloud's name says which credentials are used, not which cluster they
    reach: a kubeconfig Secret replaced by one of another cluster keeps the name (moves.py). Read once per client
    (a changed Secret builds a new Target); "" when it cannot be read now, and asked again at the next pass."""
    if not target.identity:
        try:
            ns = target.kube.get("v1", "Namespace", "kube-system") or {}
        except ApiError as err:
            log.info("%s: its identity cannot be read now: %s", target, err)
            return ""
        target.identity = str((ns.get("metadata") or {}).get("uid") or "")
    return target.identity


def rejoin_hint(cloud: str) -> str:
    """What to do when a member refuses the operator: its role and policy are those of the `cloud join` that made
    them, which may predate a kind this version renders; join again brings them up to date (members/join.py)."""
    return (f"re-run `sovereign-suite cloud join {cloud} --member-kubeconfig <member admin kubeconfig>`: it gives "
            "the hub's ServiceAccount what this operator version needs there (a token revoked is replaced)")


def cluster_problem(cluster: str, failing: list[tuple[str, int]], cloud: str = "") -> Problem | None:
    """``failing``: (error, API status) of the watches failing now ("" error: never listed yet). ``cloud``: the
    NationalCloud whose member it is (a refusal names the command that repairs it)."""
    if not failing:
        return None
    denied = [error for error, status in failing if status in (401, 403)]
    if denied:
        hint = f"; {rejoin_hint(cloud)}" if cloud else ""
        return degraded("ClusterForbidden", f"{cluster} refuses the operator's credentials: {denied[0]}{hint}")
    errors = [error for error, _ in failing if error]
    return degraded("ClusterUnreachable", f"{cluster} does not answer: {errors[0] if errors else 'not reached yet'}")


class Members:
    """The member clusters of push mode, one ``Target`` per NationalCloud with a ``kubeconfigSecretRef``.

    The kubeconfig Secrets are watched on the hub (one small watch each, by name): a change marks the target
    stale and ``on_change(cloud)`` enqueues the suites using that cloud; the next pass builds a new target and
    stops the old one's watches and threads. ``make_cache(kube, cloud)`` builds (does not start) a member's cache;
    ``make_pools(cloud)`` its threads. ``on_change(cloud)`` also runs when a member stops or starts answering."""

    def __init__(self, hub: Kube, make_cache: Callable[[Kube, str], ClusterCache],
                 on_change: Callable[[str], None], max_retries: int = 1,
                 secrets_namespace: str = OPERATOR_NAMESPACE, deadlines: Deadlines = MEMBER,
                 make_pools: Callable[[str], ClusterPools] = lambda cloud: ClusterPools(cloud, 8, 16),
                 watches: WatchLoop | None = None):
        self.hub = hub
        self.secrets_namespace = secrets_namespace  # the only namespace a member kubeconfig is read from
        self.make_cache = make_cache
        self.make_pools = make_pools
        self.watches = watches  # where the kubeconfig Secrets' watches run (None: the process's loop)
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
        if ref.namespace != self.secrets_namespace:
            # never watched nor read: a cloud must not borrow another namespace's kubeconfig (Cluster API keeps
            # one per cluster as <cluster>-kubeconfig)
            return self._refused(cloud.name, stalled(
                "MemberCredentials", f"NationalCloud {cloud.name}: spec.kubeconfigSecretRef.namespace: "
                f"{ref.namespace!r} is not the operator's member-secrets namespace {self.secrets_namespace!r}; member "
                "kubeconfigs are read only there (--member-secrets-namespace)"))
        watch = self._watch(ref.namespace, ref.name, cloud.name)
        if not watch.synced.wait(SYNC_TIMEOUT):
            return degraded("MemberCredentials", f"{where}: cannot be read on the hub: {watch.last_error}")
        secret = watch.get(ref.namespace, ref.name)
        if secret is None:
            return self._refused(cloud.name, stalled(
                "MemberCredentials", f"{where}: not found on the hub (written by `sovereign-suite cloud join`)"))
        labels = secret["metadata"].get("labels") or {}
        if labels.get(MEMBER_CREDENTIALS_LABEL) != "true":
            return self._refused(cloud.name, stalled(
                "MemberCredentials", f"{where}: not labelled {MEMBER_CREDENTIALS_LABEL}=\"true\" (the Secret's "
                "owner opts in to its use as a member's credentials; `sovereign-suite cloud join` labels the Secret "
                "it writes)"))
        if labels.get(OPT_IN_LABEL) == "true":
            return self._refused(cloud.name, stalled(
                "MemberCredentials", f"{where}: also labelled {OPT_IN_LABEL}=\"true\": suites of namespace "
                f"{ref.namespace} could copy it into their tenants; remove that label"))
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
                return self._refused(cloud.name, built)
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
        # Parsed as data only, never by the client's kubeconfig loader (which runs exec plugins and reads files);
        # the problem names the field, never its value (members/kubeconfig.py).
        try:
            creds = kubeconfig.parse(base64.b64decode(raw, validate=True))
        except (binascii.Error, ValueError):
            return stalled("MemberCredentials", f"{where}: key {key!r} is not base64")
        except kubeconfig.KubeconfigRefused as err:
            return stalled("MemberCredentials", f"{where}: key {key!r}: {err.path}: {err.message}")
        # no retry hidden in the client, TCP keepalive (transport.py)
        api = ApiClient(kubeconfig.configuration(creds, CONNECTION_POOL))
        # the hub's user agent (the replica's identity under leader election) and write fence: a member is
        # written only by the leader, like the hub
        # the hub's discovery interval: a pass that needs a kind the member did not serve asks again after it
        kube = Kube(api, max_retries=self.max_retries, max_delay=2.0, user_agent=self.hub.user_agent,
                    discovery_ttl=self.hub.discovery_ttl,
                    deadlines=self.deadlines, fence=self.hub.fence,
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
                               on_event=lambda *_: self._secret_changed(namespace, name), watches=self.watches)
                self._secrets[(namespace, name)] = inf
                inf.start()
        return inf

    def _secret_changed(self, namespace: str, name: str) -> None:
        with self._lock:  # a Secret created after its cloud named it, replaced (rotation) or deleted
            clouds = sorted(self._readers.get((namespace, name), ()))
        for cloud in clouds:
            self.on_change(cloud)

    def _refused(self, cloud: str, problem: Problem) -> Problem:
        """The cloud's credentials are not accepted (any more): its client stops (it must not go on with what
        was accepted before), and the problem is the pass's."""
        with self._lock:
            old = self._targets.pop(cloud, None)
        if old is not None:
            log.info("%s: credentials refused; its watches stop", old)
            old.cache.stop()
            metrics.record_member(cloud, None)  # its series goes with its client (the suite says MemberCredentials)
        return problem

    def drop_unused(self, clouds: dict[str, NationalCloud]) -> None:
        """Stop the targets of clouds that no longer name a member (``cloud leave``, cloud deleted), and the
        watches of kubeconfig Secrets no cloud names any more."""
        def names(cloud: NationalCloud | None) -> tuple[str, str] | None:
            ref = cloud.spec.kubeconfig_secret_ref if cloud is not None else None
            return (ref.namespace, ref.name) if ref is not None else None

        with self._lock:
            gone = [n for n in self._targets if names(clouds.get(n)) is None]
            stopped = [self._targets.pop(n) for n in gone]
            for secret, readers in list(self._readers.items()):
                readers &= {c for c in readers if names(clouds.get(c)) == secret}
                if not readers:
                    del self._readers[secret]
            unwatched = [self._secrets.pop(s) for s in list(self._secrets) if s not in self._readers]
        for t in stopped:
            log.info("%s: no NationalCloud names it any more; its watches and threads stop", t)
            t.stop()
            metrics.record_member(t.name, None)
        for inf in unwatched:
            log.info("%r: no NationalCloud names this kubeconfig Secret any more; its watch stops", inf)
            inf.stop()

    def stop(self) -> None:
        with self._lock:
            targets, secrets = list(self._targets.values()), list(self._secrets.values())
        for t in targets:
            t.stop()
        for inf in secrets:
            inf.stop()
