"""What a pass reads, from watches instead of requests: one cache per cluster (docs/architecture.md, "Watches").

- Children: one informer per child kind, label-filtered (``app.kubernetes.io/managed-by``), cluster-wide; in the
  namespace-scoped mode (``run -n``) one per kind and tenant namespace, since the operator may only list there.
  A member cluster's cache (``secrets_by_namespace``) watches Secrets per tenant namespace, each once the
  operator's Secret-reader RoleBinding there is seen: the hub may read Secrets only in those namespaces
  (members/rbac.py).
  Objects are indexed by their suite (labels), so a pass finds its children without scanning.
- Tenant namespaces: every Namespace labelled ``sovereignsuite.io/suite`` (the operator's, and those a platform
  team created for the namespace-scoped mode).
- Pods (not Succeeded/Failed): the scheduler's reasons for pending pods, and the GPUs in use on each national
  cloud's GPU nodes. Cluster-wide; in the namespace-scoped mode only in the tenant namespaces, like the children
  (the chart grants no cluster-wide pod reads there), so GPU accounting sees only those pods
  (docs/gpu-scheduling.md, "Namespace-scoped mode").
- Nodes, cluster-wide: the allocatable GPUs.
- Referenced Secrets: those labelled ``sovereignsuite.io/referenceable=true`` (their owners opt in).
A change of a child or of one of the suite's pods enqueues the suite (``on_suite_change``).

A member cluster's cache parks its child kinds (``park``): the watch of a kind with nothing labelled for the
operator in it, and nothing of it written by the operator for a while, stops holding a connection until the
operator writes that kind there (informer.py; the member's ``Kube.on_write`` wakes it before the write is sent).
A tenancy-only suite renders 4 of the 19 kinds, and its tenant namespaces get no Secret: an empty member held 14
watch connections for nothing, and each tenant namespace without a Secret one (about 68 KiB each with what goes
with them: docs/performance.md, "Cutting the replica's memory").

Stripped objects keep only what the pipeline reads (strip.py), so the cache stays small with hundreds of
suites. One ClusterCache per cluster: a hub and its members each get one. Its watches have no threads of their
own: they are coroutines on the operator's ``WatchLoop`` (watchloop.py), one event loop for every cluster.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from ..api.secret_refs import OPT_IN_LABEL
from ..components.base import LABEL_SUITE, LABEL_SUITE_NS, MANAGED_BY
from ..members.rbac import is_secret_reader_binding
from .child_kinds import CAPABILITY_KINDS
from .informer import PARK_AFTER, Informer
from .kube import Kube
from .problems import ObjectKey, SuiteKey
# the stripping of stored objects (strip.py); keep_whole and strip_child are also imported from here
from .strip import keep_whole, strip_child, strip_member_pod, strip_namespace, strip_node, strip_pod  # noqa: F401
from .unserved import DEFAULT_BASE, DEFAULT_CAP
from .watchloop import WatchLoop, shared

log = logging.getLogger(__name__)

LABEL_REFERENCEABLE = OPT_IN_LABEL
MANAGED_SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"
# Kinds whose objects a cluster's controllers make from one the operator writes, carrying its labels (a
# StatefulSet's volumeClaimTemplates, a CronJob's jobTemplate): writing the first wakes the watch of the second.
MADE_FROM = {("apps/v1", "StatefulSet"): (("v1", "PersistentVolumeClaim"),),
             ("batch/v1", "CronJob"): (("batch/v1", "Job"),)}
# Never parked: whether the cluster serves them decides what is rendered (pipeline.capabilities), and a watch
# that runs is what notices a CRD deleted
_UNPARKED = {(api, k) for api, kinds in CAPABILITY_KINDS.items() for k in kinds}


def suite_of(obj: dict[str, Any] | None) -> SuiteKey | None:
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    if LABEL_SUITE in labels and LABEL_SUITE_NS in labels:
        return SuiteKey(labels[LABEL_SUITE_NS], labels[LABEL_SUITE])
    return None


def health_news(failing: bool, cluster_down: bool) -> bool:
    """Whether a watch that starts failing (``failing``) or works again is news for the suites of its cluster
    (``on_health_change`` enqueues them all). A watch failing while its cluster is known not to answer
    (``cluster_down``: its Reachability says so) is not: the suites were enqueued when the cluster went down
    (Reachability's ``on_change``), are again when it answers, and their passes meanwhile report it unreachable
    whatever more of its watches fail. Without this, each of a hung member's 20-odd watches, failing one after the
    other at its own read deadline, enqueued every suite using the member again: in bench/eu_scale.py (9 members, 40
    suites) 30 of them failed within a minute of the freeze, so the member's suites passed again and again, each
    pass rendering the suite on the operator's one render thread while the other members' passes waited
    (docs/performance.md). A watch failing while the cluster answers (a refusal: 401, 403) and one working again
    stay news."""
    return not (failing and cluster_down)


class ClusterCache:
    """``child_kinds``: (apiVersion, kind) of every namespaced child kind. ``namespaces``: the namespaces whose
    suites the operator serves (empty: all, and its children are watched cluster-wide)."""

    def __init__(self, kube: Kube, child_kinds: tuple[tuple[str, str], ...], namespaces: tuple[str, ...] = (),
                 on_suite_change: Callable[[SuiteKey, str], None] | None = None,
                 on_secret_change: Callable[[str], None] | None = None,
                 on_api_change: Callable[[str], None] | None = None, unserved_retry: float = DEFAULT_BASE,
                 unserved_retry_max: float = DEFAULT_CAP,
                 on_health_change: Callable[[], None] | None = None, referenceable: bool = True,
                 secrets_by_namespace: bool = False, log_text: bool = True, watches: WatchLoop | None = None,
                 on_other_change: Callable[[dict[str, Any]], None] | None = None, park: bool = False,
                 park_after: float = PARK_AFTER):
        self.kube = kube
        # child kinds and tenant Secrets stop watching while they hold nothing (the module's docstring)
        self.park, self.park_after = park, park_after
        self._secret_writes: dict[str, float] = {}  # namespace -> a Secret written before its watch existed
        # a child kind's object or a pod of no suite changed (a FineTune's Job, pod or NetworkPolicy: the context
        # maps it to its FineTune, finetune_store.finetune_of)
        self.on_other_change = on_other_change
        # the loop its watches run on and the pool its lists take turns in, shared with every other cluster's
        # cache (watchloop.py): at most LISTS_PER_CLUSTER of this cluster's watches list at once (all of them do
        # after a start or a reconnection, each holding a decoded page until it is stripped), a few over all
        # clusters, and a member that does not answer never holds up the others' listings beyond that
        self.watches = watches or shared()
        self.child_kinds = tuple(k for k in child_kinds if k[1] != "Namespace"
                                 and not (secrets_by_namespace and k == ("v1", "Secret")))
        self.secrets_by_namespace = secrets_by_namespace
        self._tenant_secrets: dict[str, Informer] = {}  # namespace -> its Secrets (secrets_by_namespace)
        self.namespaces = tuple(namespaces)
        self.on_suite_change = on_suite_change
        self.on_secret_change = on_secret_change
        self.on_api_change = on_api_change
        self.unserved_retry, self.unserved_retry_max = unserved_retry, unserved_retry_max  # unserved.py
        self.on_health_change = on_health_change  # a watch started failing or works again (members: reachability)
        # a member's cache keeps no container's log text (strip_pod): its cluster's data stays in its country
        self.strip_pod = strip_pod if log_text else strip_member_pod
        self._lock = threading.Lock()
        self._index: dict[SuiteKey, dict[ObjectKey, dict[str, Any]]] = {}
        self._children: dict[tuple[str, str, str], Informer] = {}  # (apiVersion, kind, namespace or "")
        self._started = False
        self.tenant_namespaces = Informer(kube, "v1", "Namespace", strip=strip_namespace, label_selector=LABEL_SUITE,
                                          on_event=self._namespace_event, on_health=self._health_changed,
                                          watches=self.watches)
        self._pods: dict[str, Informer] = {}  # by namespace ("": cluster-wide)
        self.nodes = Informer(kube, "v1", "Node", strip=strip_node, on_health=self._health_changed,
                              watches=self.watches)
        # Secrets a suite references live beside the suite: a member cluster's cache has none to watch
        self.referenceable = [Informer(kube, "v1", "Secret", strip=keep_whole, namespace=ns or None,
                                       label_selector=f"{LABEL_REFERENCEABLE}=true", on_event=self._secret_event,
                                       watches=self.watches)
                              for ns in (self.namespaces or ("",))] if referenceable else []
        if park:
            kube.on_write = self._writing

    # ---- life ---------------------------------------------------------------------------------
    def start(self) -> ClusterCache:
        self._started = True
        for inf in (self.tenant_namespaces, self.nodes, *self.referenceable):
            inf.start()
        if not self.namespaces:
            self._start_pods("")
            for api_version, kind in self.child_kinds:
                self._start_child(api_version, kind, "")
        return self

    def _start_pods(self, namespace: str) -> None:
        with self._lock:
            if namespace in self._pods:
                return
            inf = Informer(self.kube, "v1", "Pod", strip=self.strip_pod, namespace=namespace or None,
                           field_selector="status.phase!=Succeeded,status.phase!=Failed", on_event=self._pod_event,
                           on_health=self._health_changed, watches=self.watches)
            self._pods[namespace] = inf
        inf.start()

    def _start_child(self, api_version: str, kind: str, namespace: str) -> None:
        key = (api_version, kind, namespace)
        with self._lock:
            if key in self._children:
                return
            inf = Informer(self.kube, api_version, kind, strip=strip_child, namespace=namespace or None,
                           label_selector=MANAGED_SELECTOR, on_event=self._child_event,
                           on_served=self._served_changed, on_health=self._health_changed,
                           unserved_retry=self.unserved_retry,
                           unserved_retry_max=self.unserved_retry_max, watches=self.watches,
                           park=self.park and (api_version, kind) not in _UNPARKED, park_after=self.park_after)
            self._children[key] = inf
        inf.start()

    def stop(self) -> None:
        with self._lock:
            informers = [*self._pods.values(), *self._children.values(), *self._tenant_secrets.values()]
        for inf in (self.tenant_namespaces, self.nodes, *self.referenceable, *informers):
            inf.stop()

    def informers(self) -> list[Informer]:
        with self._lock:
            return [self.tenant_namespaces, self.nodes, *self.referenceable, *self._pods.values(),
                    *self._children.values(), *self._tenant_secrets.values()]

    def wait_synced(self, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        for inf in self.informers():
            if not inf.synced.wait(max(0.0, deadline - time.monotonic())):
                log.warning("%r not synced after %.0f s", inf, timeout)
                return False
        return True

    # ---- events -------------------------------------------------------------------------------
    def _index_child(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> SuiteKey | None:
        with self._lock:
            for obj, add in ((old, False), (new, True)):
                suite = suite_of(obj)
                if suite is None:
                    continue
                key = ObjectKey.of(obj)
                if add:
                    self._index.setdefault(suite, {})[key] = obj
                else:
                    children = self._index.get(suite) or {}
                    children.pop(key, None)
                    if not children:
                        self._index.pop(suite, None)
        return suite_of(new) or suite_of(old)

    def _child_event(self, type_: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        suite = self._index_child(old, new)
        if self.secrets_by_namespace and is_secret_reader_binding(new or old or {}):
            self._secret_reader_event(type_, (new or old)["metadata"]["namespace"])  # type: ignore[index]
        if suite is not None and self.on_suite_change is not None:
            self.on_suite_change(suite, f"{type_} {ObjectKey.of(new or old)}")  # type: ignore[arg-type]
        elif suite is None and self.on_other_change is not None:
            self.on_other_change(new or old)  # type: ignore[arg-type]

    def _namespace_event(self, type_: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        self._child_event(type_, old, new)
        if not self.namespaces:
            return
        if type_ == "DELETED":
            # namespace-scoped mode: a tenant namespace gone takes its watches with it (each is a connection,
            # and would retry a namespace that no longer exists for ever)
            self._stop_namespace((old or {}).get("metadata", {}).get("name") or "")
            return
        suite = suite_of(new)
        if suite is not None and suite.namespace in self.namespaces:
            # namespace-scoped mode: the operator may list only inside the tenant namespaces of the suites it
            # serves (a platform team created them, with the operator's rights there)
            for api_version, kind in self.child_kinds:
                self._start_child(api_version, kind, new["metadata"]["name"])
            self._start_pods(new["metadata"]["name"])

    # ---- member: Secrets per tenant namespace ----------------------------------------------------
    def _secret_reader_event(self, type_: str, namespace: str) -> None:
        """The operator's Secret-reader RoleBinding appeared in (or left) a tenant namespace: watch its Secrets
        (or stop, dropping them from the index: the namespace is going, or the binding is written again)."""
        if type_ != "DELETED":
            with self._lock:
                if namespace in self._tenant_secrets:
                    return
                inf = Informer(self.kube, "v1", "Secret", strip=strip_child, namespace=namespace,
                               label_selector=MANAGED_SELECTOR, on_event=self._child_event,
                               unserved_retry=self.unserved_retry,
                               unserved_retry_max=self.unserved_retry_max, watches=self.watches, park=self.park,
                               park_after=self.park_after, woken_at=self._secret_writes.pop(namespace, None))
                self._tenant_secrets[namespace] = inf
            inf.start()
            return
        with self._lock:
            gone = self._tenant_secrets.pop(namespace, None)
        if gone is not None:
            gone.stop()
            for obj in gone.items():
                self._child_event("DELETED", obj, None)

    def _writing(self, api_version: str, kind: str, namespace: str | None) -> None:
        """The operator is about to write an object here (``Kube.on_write``): the watches that would hold it, or
        what the cluster makes from it (``MADE_FROM``), watch again if parked, and stay watching a while."""
        kinds = ((api_version, kind), *MADE_FROM.get((api_version, kind), ()))
        now = time.monotonic()
        with self._lock:
            woken = [i for (a, k, ns), i in self._children.items() if (a, k) in kinds and ns in ("", namespace or "")]
            if self.secrets_by_namespace and (api_version, kind) == ("v1", "Secret") and namespace:
                inf = self._tenant_secrets.get(namespace)
                if inf is not None:
                    woken.append(inf)
                else:  # its watch starts with the reader binding's event, maybe after this write: it must not park
                    if len(self._secret_writes) > 1000:  # namespaces that never got their binding: forgotten
                        self._secret_writes = {n: t for n, t in self._secret_writes.items()
                                               if now - t <= self.park_after}
                    self._secret_writes[namespace] = now
        for inf in woken:
            inf.wake()

    def _stop_namespace(self, namespace: str) -> None:
        """Stop and forget the watches of one namespace (namespace-scoped mode), and what they held."""
        if not namespace:
            return
        with self._lock:
            gone = [self._children.pop(k) for k in [k for k in self._children if k[2] == namespace]]
            pods = self._pods.pop(namespace, None)
            for suite in list(self._index):
                children = self._index[suite]
                for key in [k for k in children if k.namespace == namespace]:
                    children.pop(key)
                if not children:
                    self._index.pop(suite)
        for inf in [*gone, *([pods] if pods else [])]:
            inf.stop()

    def _pod_event(self, type_: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        suite = suite_of(new) or suite_of(old)
        if suite is not None and self.on_suite_change is not None:
            self.on_suite_change(suite, f"{type_} {ObjectKey.of(new or old)}")  # type: ignore[arg-type]
        elif suite is None and self.on_other_change is not None:
            self.on_other_change(new or old)  # type: ignore[arg-type]

    def _served_changed(self, informer: Informer) -> None:
        log.info("%r: the cluster %s serves it", informer, "now" if informer.served else "no longer")
        if self.on_api_change is not None:
            self.on_api_change(f"{informer.kind} {'served' if informer.served else 'not served'}")

    def _health_changed(self, informer: Informer) -> None:
        if self.on_health_change is not None and health_news(bool(informer.last_error),
                                                             self.kube.reachability.failure() is not None):
            self.on_health_change()

    def _secret_event(self, type_: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if self.on_secret_change is not None:
            self.on_secret_change((new or old or {}).get("metadata", {}).get("namespace") or "")

    # ---- reading ------------------------------------------------------------------------------
    def children(self, suite: SuiteKey) -> dict[ObjectKey, dict[str, Any]]:
        with self._lock:
            return dict(self._index.get(suite) or {})

    def pods(self) -> list[dict[str, Any]]:
        """Every pod the cache watches (cluster-wide, or those of the tenant namespaces)."""
        with self._lock:
            informers = list(self._pods.values())
        return [p for inf in informers for p in inf.items()]

    def child(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object of a child kind, labelled managed-by the operator, whichever suite (or none) it belongs to."""
        with self._lock:
            infs = [i for (a, k, ns), i in self._children.items() if (a, k) == (api_version, kind)
                    and ns in ("", namespace)]
        return next((o for o in (i.get(namespace, name) for i in infs) if o is not None), None)

    def labelled(self, api_version: str, kind: str, labels: dict[str, str]) -> list[dict[str, Any]]:
        """The objects of a child kind carrying every one of ``labels`` (a scan: for deletions, not passes)."""
        with self._lock:
            infs = [i for (a, k, _), i in self._children.items() if (a, k) == (api_version, kind)]
        return [o for i in infs for o in i.items()
                if all((o["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())]

    def pods_in(self, namespace: str) -> list[dict[str, Any]]:
        with self._lock:
            inf = self._pods.get(namespace) or self._pods.get("")
        return [p for p in inf.items() if p["metadata"].get("namespace") == namespace] if inf else []

    def referenced_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        for inf in self.referenceable:
            obj = inf.get(namespace, name)
            if obj is not None:
                return obj
        return None

    def served(self, api_version: str, kind: str, ask: bool = False) -> bool:
        """Whether the cluster serves a child kind (a CRD installed), as its informer last found; ``ask``: a pass
        needs it, so a kind its informer has not found is asked of discovery (at most every discovery_ttl; an
        answer that finds it wakes the informer: unserved.py)."""
        with self._lock:
            infs = [i for (a, k, _), i in self._children.items() if (a, k) == (api_version, kind)]
        if infs and (any(i.served and i.synced.is_set() for i in infs) or not ask):
            return any(i.served and i.synced.is_set() for i in infs)
        return self.kube.kind(api_version, kind) is not None

    def unsynced(self) -> list[Informer]:
        """The watches of tenant namespaces and children that have not listed yet: what they hold is not the
        cluster's state, and a deletion must not take it for "nothing left"."""
        with self._lock:
            children = list(self._children.values())
        return [i for i in (self.tenant_namespaces, *children) if not i.synced.is_set()]

    def failing(self) -> list[Informer]:
        """The watches failing now, and those that never listed (their cluster never answered). A tenant
        namespace's Secret watch is not one of them: it is refused for a moment after its RoleBinding is written
        (the API server's authorizer sees the binding a little later), and a refusal there is the pass's to repair
        (it applies the binding), which it would never do if the whole member were reported unreachable."""
        with self._lock:
            own = set(map(id, self._tenant_secrets.values()))
        return [i for i in self.informers() if id(i) not in own and (i.last_error or not i.synced.is_set())]

    def watch_errors(self, namespaces: set[str]) -> list[str]:
        """Watches that are failing now (e.g. 403 after a permission was revoked): what a pass read from them may
        be stale, and the suite says so (Degraded, WatchFailed). ``namespaces``: the suite's tenant namespaces."""
        with self._lock:
            children = [i for (_, _, ns), i in self._children.items() if not ns or ns in namespaces]
            pods = [i for ns, i in self._pods.items() if not ns or ns in namespaces]
        return [f"{i!r}: {i.last_error}" for i in (self.tenant_namespaces, *pods, self.nodes, *children)
                if i.last_error]
