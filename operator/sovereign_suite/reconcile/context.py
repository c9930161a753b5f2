"""The operator's state, passed explicitly (no module globals): settings, the API client, the watch cache, the
work queue, the suites and clouds as last seen, and what the operator remembers per suite.

Kopf's startup handler builds one ``OperatorContext`` and keeps it in Kopf's ``memo``; the handlers, the workers
and the drift loop receive it. Tests and benchmarks build their own.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..api.common import OPERATOR_NAMESPACE
from ..api.models import NationalCloud
from ..api.validation import Problem as FieldProblem
from ..leader.elector import Leadership
from .cache import ClusterCache
from .finetune_store import FineTuneKey, FineTunes, finetune_of
from .rotation_key import RotationKeys
from .kube import Kube
from .pools import ClusterPools, SharedPools
from .problems import Problem, SuiteKey
from .queue import Backoff, WorkQueue
from .targets import LOCAL, REMOTE, Members, Target
from .transport import MEMBER, Deadlines
from .watchloop import WatchLoop


SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"  # mounted in every pod


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def own_namespace(path: str = SERVICE_ACCOUNT_NAMESPACE) -> str:
    """The operator's namespace: $SOVEREIGN_SUITE_OPERATOR_NAMESPACE (the chart sets it from the pod's own
    namespace), else the in-cluster ServiceAccount's, else OPERATOR_NAMESPACE (a process outside a cluster)."""
    if os.environ.get("SOVEREIGN_SUITE_OPERATOR_NAMESPACE"):
        return os.environ["SOVEREIGN_SUITE_OPERATOR_NAMESPACE"]
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip() or OPERATOR_NAMESPACE
    except OSError:
        return OPERATOR_NAMESPACE


@dataclass(frozen=True)
class Settings:
    namespaces: tuple[str, ...] = ()  # the suites' namespaces served (empty: all)
    # passes run at once, each applying a phase in parallel on its cluster's apply pool, one pool per cluster
    # (bench/many.py: 8 and 16 gave 143 objects/s at 200 suites, 4 and 8 gave 141: the API server is the limit on
    # 2 cores)
    workers: int = 8
    apply_workers: int = 16
    drift_interval: float = 60.0  # every suite is enqueued this often (a safety net: watches trigger the rest)
    requeue_seconds: float = 5.0  # while children roll out and no event comes (e.g. a Job being created)
    child_debounce: float = 0.5  # a burst of child events makes one pass
    retry_base: float = 1.0  # backoff of a failed pass: base x 2^n, at most retry_cap
    retry_cap: float = 300.0
    job_retry_base: float = 30.0  # a failed migration Job is re-created after base x 2^(attempt-1) seconds
    job_retry_cap: float = 3600.0
    # a rollout's workload step (reconcile/rollout.py) not done after this long fails: ProgressDeadlineExceeded
    # (Kubernetes' default progressDeadlineSeconds for a Deployment)
    rollout_step_deadline: float = 600.0
    # how soon an API not served (a CRD not installed) is looked for again: first after discovery_interval, then
    # twice as long each time, up to discovery_max_interval (unserved.py); a pass that needs it asks after
    # discovery_interval whatever the backoff
    discovery_interval: float = 30.0
    discovery_max_interval: float = 300.0
    # pull mode: the NationalClouds this cluster is (every other cloud is remote: never written to from here,
    # no credential of it read); empty: push mode (a cloud with kubeconfigSecretRef is a member cluster)
    local_clouds: tuple[str, ...] = ()
    # the operator's own namespace: a NationalCloud without suiteNamespaces admits only suites of it
    operator_namespace: str = OPERATOR_NAMESPACE
    # the only namespace a member's kubeconfig Secret is read from (empty: operator_namespace)
    member_secrets_namespace: str = ""

    @property
    def member_secrets(self) -> str:
        return self.member_secrets_namespace or self.operator_namespace
    # a member cluster's deadlines (transport.py): a connection, an answer to a request, a watch's timeoutSeconds
    # (a member that does not answer is noticed by a pass within the read timeout, by its watches within
    # watch + read: 60 s)
    member_connect_timeout: float = MEMBER.connect
    member_read_timeout: float = MEMBER.read
    member_watch_timeout: int = MEMBER.watch
    # leader election (leader/): off, this process works alone; on, it works only while it holds the Lease
    # lease_namespace/lease_name (empty namespace: operator_namespace)
    leader_elect: bool = False
    lease_name: str = "sovereign-suite-operator"
    lease_namespace: str = ""
    # sharding (shard/): 0, off; N, the suites are split into N shards, each written only by the replica holding
    # its Lease (lease_name-shard-<i>, in lease_namespace), with the timings above
    shards: int = 0
    lease_duration: float = 10.0
    renew_deadline: float = 6.0
    retry_period: float = 1.0

    @property
    def member_deadlines(self) -> Deadlines:
        return Deadlines(self.member_connect_timeout, self.member_read_timeout, self.member_watch_timeout)

    @classmethod
    def from_env(cls, namespaces: tuple[str, ...] = (), local_clouds: tuple[str, ...] = (),
                 **overrides: Any) -> Settings:
        values = dict(
            namespaces=tuple(namespaces),
            local_clouds=tuple(local_clouds),
            operator_namespace=own_namespace(),
            member_secrets_namespace=os.environ.get("SOVEREIGN_SUITE_MEMBER_SECRETS_NAMESPACE", ""),
            workers=int(_env_float("SOVEREIGN_SUITE_WORKERS", cls.workers)),
            apply_workers=int(_env_float("SOVEREIGN_SUITE_APPLY_WORKERS", cls.apply_workers)),
            drift_interval=_env_float("SOVEREIGN_SUITE_DRIFT_INTERVAL", cls.drift_interval),
            requeue_seconds=_env_float("SOVEREIGN_SUITE_REQUEUE", cls.requeue_seconds),
            retry_base=_env_float("SOVEREIGN_SUITE_RETRY_BASE", cls.retry_base),
            job_retry_base=_env_float("SOVEREIGN_SUITE_JOB_RETRY_BASE", cls.job_retry_base),
            rollout_step_deadline=_env_float("SOVEREIGN_SUITE_ROLLOUT_STEP_DEADLINE", cls.rollout_step_deadline),
            discovery_interval=_env_float("SOVEREIGN_SUITE_DISCOVERY_INTERVAL", cls.discovery_interval),
            discovery_max_interval=_env_float("SOVEREIGN_SUITE_DISCOVERY_MAX_INTERVAL", cls.discovery_max_interval),
            member_connect_timeout=_env_float("SOVEREIGN_SUITE_MEMBER_CONNECT_TIMEOUT", cls.member_connect_timeout),
            member_read_timeout=_env_float("SOVEREIGN_SUITE_MEMBER_READ_TIMEOUT", cls.member_read_timeout),
            member_watch_timeout=int(_env_float("SOVEREIGN_SUITE_MEMBER_WATCH_TIMEOUT", cls.member_watch_timeout)),
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class SuiteMemory:
    """What the operator remembers of one suite between passes (lost on restart, rebuilt by the next pass)."""

    handled_generation: int = 0  # the generation the last pass ran on
    complete_generation: int = 0  # the generation whose every child was applied
    trigger: str = ""  # what enqueued the next pass (metrics)
    job_attempts: dict[str, int] = field(default_factory=dict)  # failed migration Job -> times re-created
    # children the last pass wrote, as (cluster, key) -> their resourceVersion
    expect: dict[Any, str] = field(default_factory=dict)
    last_status: dict[str, Any] | None = None  # the status last written (the watch may not show it yet)
    status_version: str = ""  # the suite's resourceVersion that write made


class Clouds:
    """The NationalClouds, parsed, as last seen (Kopf's watch keeps them current)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clouds: dict[str, NationalCloud] = {}
        self._problems: dict[str, list[FieldProblem]] = {}

    def set(self, name: str, cloud: NationalCloud | None, problems: list[FieldProblem] | None = None) -> None:
        with self._lock:
            self._clouds.pop(name, None)
            self._problems.pop(name, None)
            if cloud is not None:
                self._clouds[name] = cloud
            if problems:
                self._problems[name] = list(problems)

    def snapshot(self) -> tuple[dict[str, NationalCloud], list[FieldProblem]]:
        with self._lock:
            return dict(self._clouds), [p for ps in self._problems.values() for p in ps]


class OperatorContext:
    def __init__(self, kube: Kube, settings: Settings, cache: ClusterCache | None = None,
                 leadership: Leadership | None = None):
        from .child_kinds import CHILD_KINDS  # the kinds the renderers produce

        self.kube = kube
        self.settings = settings
        # whether this replica may write (leader/elector.py); kube.fence checks the same object
        self.leadership = leadership or Leadership.always()
        self.elector: Any = None  # the LeaderElector under leader election (leader/work.py), else None
        self.identity = ""  # this replica's name in the Lease (and its user agent) under leader election
        # sharded (run --shards): the per-shard write fence (shard/fence.py; kube.fence checks it), else None
        self.shards: Any = None
        # suites and FineTunes (finetune_store.py: keys of two types that never compare equal)
        self.queue: WorkQueue[SuiteKey | FineTuneKey] = WorkQueue(Backoff(settings.retry_base, settings.retry_cap))
        # every cluster's watches on one event loop and its lists on a few shared threads (watchloop.py), every
        # cluster's writes on shared threads with a cap per cluster (pools.py): the thread count does not grow
        # with the members
        self.watches = WatchLoop()
        self.pools = SharedPools(settings.workers, settings.apply_workers)
        self.cache = cache or ClusterCache(kube, CHILD_KINDS, settings.namespaces, on_suite_change=self.child_changed,
                                           on_secret_change=self.secret_changed, on_api_change=self.api_changed,
                                           unserved_retry=settings.discovery_interval,
                                           unserved_retry_max=settings.discovery_max_interval, watches=self.watches,
                                           on_other_change=self.other_changed)
        self.local = Target(LOCAL, kube, self.cache, self._pools(LOCAL))
        self.members = Members(kube, self._member_cache, on_change=self.cloud_changed,
                               secrets_namespace=settings.member_secrets, deadlines=settings.member_deadlines,
                               make_pools=self._pools, watches=self.watches)
        self.rotation_keys = RotationKeys(kube)  # the key of the pods' secrets-hash annotation, per suites' namespace
        self.clouds = Clouds()
        self.finetunes = FineTunes()  # as last seen (Kopf's watch), with what the operator remembers of each
        # Rendering is pure and fast; one thread keeps the YAML parser's native allocator to one heap (measured:
        # concurrent renders on 16 threads doubled the operator's RSS).
        self.render_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._suites: dict[SuiteKey, dict[str, Any]] = {}
        self._memory: dict[SuiteKey, SuiteMemory] = {}

    def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Secret of the operator's cluster a suite references: from the cache of referenceable Secrets, else one
        GET (a Secret not labelled referenceable is not cached: the caller says why it is refused)."""
        return self.cache.referenced_secret(namespace, name) or self.kube.get("v1", "Secret", name, namespace)

    # ---- clusters ------------------------------------------------------------------------------
    def target_for(self, cloud: NationalCloud) -> Target | Problem | str:
        """The cluster a cloud's tenants are applied to, a problem reaching it, or REMOTE (pull mode)."""
        if self.settings.local_clouds:
            return self.local if cloud.name in self.settings.local_clouds else REMOTE
        if cloud.spec.cluster == "local":  # said by the cloud, never implied by a missing reference
            return self.local
        return self.members.target(cloud)

    def targets(self) -> list[Target]:
        """Every cluster this operator writes to (where a suite's children may be)."""
        return [self.local, *self.members.targets()]

    def _pools(self, cluster: str) -> ClusterPools:
        """A cluster's share of the writer and apply threads (pools.py)."""
        return ClusterPools(cluster, self.settings.workers, self.settings.apply_workers, shared=self.pools)

    def _member_cache(self, kube: Kube, cloud: str) -> ClusterCache:
        from .child_kinds import CHILD_KINDS

        # cluster-wide: the member's ClusterRole (members/rbac.py) grants list/watch on the child kinds, but
        # Secrets only per tenant namespace (the RoleBinding a pass writes there: pipeline.py). No log text of
        # the member's containers is kept: the hub's status and Events get a container's reason and exit code.
        return ClusterCache(kube, CHILD_KINDS, (), on_suite_change=self.child_changed,
                            on_api_change=self.api_changed, unserved_retry=self.settings.discovery_interval,
                            unserved_retry_max=self.settings.discovery_max_interval,
                            on_health_change=lambda: self.cloud_changed(cloud), referenceable=False,
                            secrets_by_namespace=True, log_text=False, watches=self.watches,
                            on_other_change=self.other_changed, park=True)

    def owns(self, key: SuiteKey) -> bool:
        """Whether this replica may pass ``key`` now: always unsharded (the leader fence guards the writes),
        sharded only while it holds the suite's shard."""
        return self.shards is None or self.shards.may_write(key)

    # ---- suites as last seen (Kopf's watch) ----------------------------------------------------
    def suite(self, key: SuiteKey) -> dict[str, Any] | None:
        with self._lock:
            return self._suites.get(key)

    def set_suite(self, key: SuiteKey, body: dict[str, Any] | None) -> None:
        with self._lock:
            if body is None:
                self._suites.pop(key, None)
            else:
                self._suites[key] = body

    def suite_keys(self) -> list[SuiteKey]:
        with self._lock:
            return sorted(self._suites)

    def memory(self, key: SuiteKey) -> SuiteMemory:
        with self._lock:
            return self._memory.setdefault(key, SuiteMemory())

    def forget(self, key: SuiteKey) -> None:
        """A suite is gone: drop what the operator kept of it (its metrics are dropped by the worker)."""
        with self._lock:
            self._memory.pop(key, None)
            self._suites.pop(key, None)
        self.queue.forget(key)

    # ---- triggers: each only enqueues a key ------------------------------------------------------
    def enqueue(self, key: SuiteKey, trigger: str, delay: float = 0.0) -> None:
        mem = self.memory(key)
        if not mem.trigger:
            mem.trigger = trigger
        self.queue.add_after(key, delay)

    def child_changed(self, key: SuiteKey, what: str) -> None:
        if self.suite(key) is not None:
            self.enqueue(key, "child", self.settings.child_debounce)

    def cloud_changed(self, cloud: str) -> None:
        """A cloud's member changed (credentials rotated, stopped or started answering): its suites pass again,
        and their FineTunes."""
        for key in self.suite_keys():
            tenants = ((self.suite(key) or {}).get("spec") or {}).get("tenants") or []
            if cloud in {t.get("cloud") for t in tenants}:
                self.enqueue(key, "cloud")
                self.enqueue_finetunes(key)

    def enqueue_finetune(self, key: FineTuneKey, delay: float = 0.0) -> None:
        if self.finetunes.get(key) is not None:
            self.queue.add_after(key, delay)

    def enqueue_finetunes(self, suite: SuiteKey) -> None:
        """The FineTunes naming a suite (its spec, tenants or clouds changed; it appeared or went)."""
        for key in self.finetunes.of_suite(suite):
            self.queue.add(key)

    def other_changed(self, obj: dict[str, Any]) -> None:
        """An object of no suite changed in a cluster: a FineTune's Job, pod or NetworkPolicy enqueues it."""
        key = finetune_of(obj)
        if key is not None:
            self.enqueue_finetune(key, self.settings.child_debounce)

    def api_changed(self, what: str) -> None:
        """A child kind became served or stopped being served (a CRD installed or deleted): every suite renders
        again (what it may render depends on it)."""
        for key in self.suite_keys():
            self.enqueue(key, "api")

    def secret_changed(self, namespace: str) -> None:
        """A referenceable Secret changed: the suites of its namespace copy it again (a rotation rolls pods)."""
        for key in self.suite_keys():
            if key.namespace == namespace:
                self.enqueue(key, "secret", self.settings.child_debounce)

    def shutdown(self) -> None:
        self.stop.set()
        self.queue.shutdown()
        if self.elector is not None:  # the fence closes before the Lease is released (leader/elector.py)
            self.elector.stop(release=True)
        self.cache.stop()
        self.members.stop()
        # running passes finish their current request; none starts (the queue is shut down)
        self.local.pools.stop()
        self.pools.stop()
        self.watches.stop()
        self.render_pool.shutdown(wait=False)
