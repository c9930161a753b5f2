"""Pure logic of multi-cluster passes (no cluster): how a member's failing watches become a problem, which
namespace an object belongs to, what a tenant's status says about its cluster, and the member metric."""

from __future__ import annotations

from sovereign_suite import metrics
from sovereign_suite.reconcile.observe import ComponentHealth
from sovereign_suite.reconcile.problems import ObjectKey, Severity, degraded, stalled
from sovereign_suite.reconcile.status import build_status, tenants_status
from sovereign_suite.reconcile.targets import REMOTE, cluster_problem
from sovereign_suite.reconcile.views import ClusterView, Homes, namespace_of_key, stray_problem

MEMBER = "member cluster de-c5 (https://10.0.0.1:6443)"


def test_a_member_with_no_failing_watch_has_no_problem():
    assert cluster_problem(MEMBER, []) is None


def test_refused_credentials_win_over_other_failures():
    p = cluster_problem(MEMBER, [("list Pod: 503 Unavailable: connection refused", 503),
                                 ("list Service: 403 Forbidden: services is forbidden", 403)])
    assert p.reason == "ClusterForbidden" and p.severity is Severity.DEGRADED
    assert MEMBER in p.message and "services is forbidden" in p.message


def test_no_answer_and_never_listed_are_unreachable():
    p = cluster_problem(MEMBER, [("HTTPSConnectionPool: Max retries exceeded", 0)])
    assert p.reason == "ClusterUnreachable" and "Max retries exceeded" in p.message and MEMBER in p.message
    never = cluster_problem(MEMBER, [("", 0)])
    assert never.reason == "ClusterUnreachable" and "not reached yet" in never.message


def test_a_namespace_belongs_to_itself_and_a_namespaced_object_to_its_namespace():
    assert namespace_of_key(ObjectKey("", "Namespace", "", "eu-de")) == "eu-de"
    assert namespace_of_key(ObjectKey("apps", "Deployment", "eu-de", "jvb")) == "eu-de"


class _Named:  # the only thing Homes.cluster reads of a target
    def __init__(self, name: str):
        self.name = name
        self.is_member = name != "local"

    def __str__(self) -> str:
        return self.name


def _homes() -> Homes:
    fr = ClusterView(_Named("fr-secnumcloud"), {"eu-fr"}, {})
    de = ClusterView(_Named("de-c5"), {"eu-de"}, {}, degraded("ClusterUnreachable", "de-c5 does not answer"))
    return Homes([fr, de], {"eu-fr": fr, "eu-de": de},
                 {"eu-fr": "fr-secnumcloud", "eu-de": "de-c5", "eu-lu": "lu-govcloud", "eu-se": "se-sovereign"},
                 remote={"eu-se"},
                 unresolved={"eu-lu": stalled("MemberCredentials", "Secret x/y: not found on the hub")})


def test_each_tenant_says_its_cluster_and_whether_it_answers():
    homes = _homes()
    assert homes.cluster("eu-fr") == {"cluster": "fr-secnumcloud", "clusterReachable": True}
    assert homes.cluster("eu-de") == {"cluster": "de-c5", "clusterReachable": False}
    assert homes.cluster("eu-lu") == {"cluster": "lu-govcloud", "clusterReachable": False}
    assert homes.cluster("eu-se") == {"cluster": REMOTE}
    assert set(homes.problems()) == {"eu-de", "eu-lu"} and homes.protected() == {"eu-lu"}


def test_a_tenant_in_an_unreachable_or_remote_cluster_is_never_reported_ready():
    homes = _homes()
    health = [ComponentHealth("fr", "eu-fr", "matrix", 1, 1), ComponentHealth("de", "eu-de", "matrix", 1, 1)]
    tenants = [("FR", "eu-fr"), ("DE", "eu-de"), ("SE", "eu-se")]
    ts = tenants_status(health, tenants, {}, {ns: homes.cluster(ns) for _, ns in tenants})
    assert [(t["country"], t["ready"]) for t in ts] == [("FR", True), ("DE", False), ("SE", False)]

    class Suite:  # build_status reads the name and the tenants' countries
        name = "eu"

        class spec:
            tenants = [type("T", (), {"country": c}) for c in ("FR", "DE", "SE")]

    status = build_status({}, [], 1, Suite, health, {}, {ns: homes.cluster(ns) for _, ns in tenants})
    assert status["readySummary"] == "1/2"  # the remote tenant is another operator's


def test_a_cluster_holding_only_strays_reports_them_only_when_it_cannot_prune():
    gone = ClusterView(_Named("old"), set(), {}, degraded("ClusterUnreachable", "old does not answer"))
    assert stray_problem(gone, owned=True).reason == "ClusterUnreachable"
    assert stray_problem(gone, owned=False) is None
    assert stray_problem(ClusterView(_Named("ok"), set(), {}), owned=True) is None


def test_member_metric_is_set_and_dropped():
    metrics.record_member("xx-test", False)
    assert metrics.MEMBER_UP.labels("xx-test")._value.get() == 0
    metrics.record_member("xx-test", True)
    assert metrics.MEMBER_UP.labels("xx-test")._value.get() == 1
    metrics.record_member("xx-test", None)
    assert ("xx-test",) not in metrics.MEMBER_UP._metrics


def test_a_refusing_member_names_the_command_that_repairs_it():
    """A member role made by an older `cloud join` lacks a kind this version renders (issue 22, item 13): the
    problem says to join again, naming the cloud."""
    p = cluster_problem(MEMBER, [("list PodMonitor: 403 Forbidden: podmonitors is forbidden", 403)], "de-c5")
    assert p.reason == "ClusterForbidden" and "podmonitors is forbidden" in p.message
    assert "re-run `sovereign-suite cloud join de-c5 --member-kubeconfig" in p.message
    unreachable = cluster_problem(MEMBER, [("connection refused", 0)], "de-c5")
    assert "cloud join" not in unreachable.message  # joining again does not bring a member back


def test_a_write_the_members_rbac_refuses_names_the_command_but_not_one_its_policy_refuses():
    from sovereign_suite.reconcile.cache import ClusterCache
    from sovereign_suite.reconcile.targets import Target
    from sovereign_suite.reconcile.views import on_cluster

    target = Target("de-c5", kube=None, cache=ClusterCache.__new__(ClusterCache), pools=None,
                    server="https://10.0.0.1:6443")
    rbac = degraded("Forbidden", '403 Forbidden: poddisruptionbudgets.policy "x" is forbidden')
    policy = degraded("Forbidden", "403 Forbidden: ValidatingAdmissionPolicy 'sovereign-suite-hub-de-c5' denied")
    found = on_cluster(target, [rbac, policy])
    assert "re-run `sovereign-suite cloud join de-c5" in found[0].message and str(target) in found[0].message
    assert "cloud join" not in found[1].message


def test_a_kubeconfig_secret_no_cloud_names_any_more_is_no_longer_watched():
    """The kubeconfig Secret watches on the hub stop when no NationalCloud names the Secret (cloud deleted, its
    reference changed), as the members' own watches do (issue 22, item 13)."""
    from sovereign_suite.reconcile.apiclient import ApiClient, ClientConfig
    from sovereign_suite.api.validation import parse_cloud
    from sovereign_suite.reconcile.kube import Kube
    from sovereign_suite.reconcile.targets import Members

    cfg = ClientConfig(host="https://127.0.0.1:9")  # nothing answers: the watch keeps retrying until stopped
    members = Members(Kube(ApiClient(cfg), max_retries=0), make_cache=None, on_change=lambda c: None)
    try:
        old = members._watch("sovereign-suite-system", "de-c5-kubeconfig", "de-c5")
        kept = members._watch("sovereign-suite-system", "fr-kubeconfig", "fr")
        assert members._watch("sovereign-suite-system", "de-c5-kubeconfig", "de-c6") is old  # one watch per Secret
        fr = parse_cloud({"apiVersion": "sovereignsuite.io/v1alpha1", "kind": "NationalCloud", "metadata": {
            "name": "fr"}, "spec": {"country": "FR", "provider": "x", "regions": ["r"], "cluster": "member",
                                    "kubeconfigSecretRef": {"name": "fr-kubeconfig",
                                                            "namespace": "sovereign-suite-system"}}})
        de6 = parse_cloud({**fr.model_dump(by_alias=True, exclude_none=True, mode="json"),
                           "metadata": {"name": "de-c6"}})  # now names fr's Secret, no longer de-c5's
        members.drop_unused({"fr": fr, "de-c6": de6})
        assert old._stop.is_set() and not kept._stop.is_set()
        assert set(members._secrets) == {("sovereign-suite-system", "fr-kubeconfig")}
        assert old.done.wait(5)  # its watch ended
        members.drop_unused({})  # every cloud gone
        assert kept._stop.is_set() and not members._secrets and not members._readers
    finally:
        members.stop()
