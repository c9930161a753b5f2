"""What a NationalCloud grants (issue 22, items 3 and 4), without a cluster: which suite namespaces may use it
(``spec.suiteNamespaces``), that its cluster is said and never implied (``spec.cluster``), and when a tenant may
move between clusters (reconcile/moves.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from sovereign_suite.api.secret_refs import SecretReference, opt_in_problems
from sovereign_suite.api.validation import InputError, check_suite, cloud_admits, parse_cloud
from sovereign_suite.reconcile.moves import held_data, hold_moves, last_clusters, move_problem
from sovereign_suite.reconcile.problems import ObjectKey, Severity, degraded
from sovereign_suite.reconcile.views import ClusterView, Homes

from .helpers import CLOUDS, EXAMPLE_FILES, ROOT, load_example


def _cloud(**spec):
    return parse_cloud({"apiVersion": "sovereignsuite.io/v1alpha1", "kind": "NationalCloud",
                        "metadata": {"name": "de-c5"},
                        "spec": {"country": "DE", "provider": "STACKIT", "regions": ["eu01"], **spec}})


# ---- suiteNamespaces ---------------------------------------------------------------------------------------------

def test_a_cloud_without_suite_namespaces_admits_the_operators_namespace_only():
    cloud = _cloud()
    assert cloud_admits(cloud, "sovereign-suite-system", "sovereign-suite-system")
    assert not cloud_admits(cloud, "team-a", "sovereign-suite-system")
    assert cloud_admits(cloud, "ops", "ops")


def test_suite_namespaces_are_names_or_globs_and_a_list_replaces_the_default():
    cloud = _cloud(suiteNamespaces=["team-a", "eu-*", "t?"])
    assert [n for n in ("team-a", "eu-prod", "eu-", "t1", "team-b", "t12", "sovereign-suite-system")
            if cloud_admits(cloud, n, "sovereign-suite-system")] == ["team-a", "eu-prod", "eu-", "t1"]
    assert cloud_admits(_cloud(suiteNamespaces=["*"]), "anything", "ops")
    assert not cloud_admits(_cloud(suiteNamespaces=[]), "ops", "ops")  # an empty list admits nobody


@pytest.mark.parametrize("bad", ["Team", "a/b", "[ab]", "-x", "x" * 64])
def test_a_suite_namespace_pattern_is_a_namespace_name_with_wildcards(bad):
    with pytest.raises(InputError) as err:
        _cloud(suiteNamespaces=[bad])
    assert "suiteNamespaces" in str(err.value)


def test_a_suite_in_a_namespace_its_cloud_does_not_admit_is_refused_naming_the_tenant_and_the_namespace():
    suite, clouds = load_example("two-countries")  # namespace sovereign-suite, admitted by the example clouds
    assert check_suite(suite, clouds) == []
    other = suite.model_copy(update={"metadata": suite.metadata.model_copy(update={"namespace": "team-b"})})
    problems = check_suite(other, clouds)
    assert [p.path for p in problems] == ["spec.tenants[0].cloud", "spec.tenants[1].cloud"]
    assert "does not admit suites of namespace 'team-b'" in problems[0].message
    assert "suiteNamespaces ['sovereign-suite']" in problems[0].message
    de = clouds["de-c5"].model_copy(update={"spec": clouds["de-c5"].spec.model_copy(
        update={"suite_namespaces": None})})
    problems = check_suite(suite, {**clouds, "de-c5": de}, operator_namespace="ops")
    assert [p.path for p in problems] == ["spec.tenants[1].cloud"]
    assert "only the operator's namespace 'ops'" in problems[0].message


def test_offline_validate_refuses_a_suite_namespace_the_clouds_do_not_admit(tmp_path):
    doc = yaml.safe_load(EXAMPLE_FILES["two-countries"].read_text())
    doc["metadata"]["namespace"] = "team-b"
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(doc))
    run = subprocess.run([sys.executable, "-m", "sovereign_suite.cli", "validate", "-f", str(path), "--clouds",
                          str(CLOUDS)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 1
    assert ("error: spec.tenants[0].cloud: NationalCloud 'fr-secnumcloud' does not admit suites of namespace "
            "'team-b'") in run.stderr


# ---- spec.cluster ------------------------------------------------------------------------------------------------

REF = {"name": "de-c5-kubeconfig", "namespace": "sovereign-suite-system"}


def test_the_cluster_is_said_never_implied_by_the_reference():
    assert _cloud().spec.cluster == "local"
    assert _cloud(cluster="member", kubeconfigSecretRef=REF).spec.kubeconfig_secret_ref.name == "de-c5-kubeconfig"
    with pytest.raises(InputError) as err:
        _cloud(cluster="member")  # a GitOps sync dropped the reference: never the hub
    assert "kubeconfigSecretRef: required when cluster is member" in str(err.value)
    with pytest.raises(InputError) as err:
        _cloud(kubeconfigSecretRef=REF)  # a reference alone does not make a member
    assert "kubeconfigSecretRef: not allowed when cluster is local" in str(err.value)


def test_a_member_credentials_secret_is_never_copied_into_a_tenant():
    ref = SecretReference("de-c5-kubeconfig", "spec.identity.oidc.clientSecretRef", "docs")
    refused = opt_in_problems([ref], {"de-c5-kubeconfig": {"sovereignsuite.io/referenceable": "true",
                                                          "sovereignsuite.io/member-credentials": "true"}}, "ops")
    assert refused and refused[0][0] == "spec.identity.oidc.clientSecretRef"
    assert "member cluster's credentials" in refused[0][1]


# ---- moves ----------------------------------------------------------------------------------------------------------

DATA = ["PersistentVolumeClaim/eu-de/synapse-data", "Secret/eu-de/synapse-keys"]


def test_a_move_is_refused_while_the_old_cluster_holds_the_data_or_cannot_be_asked():
    p = move_problem("eu-de", "de-c5", "local", None, "Retain")
    assert p.reason == "TenantMoveRefused" and p.severity is Severity.STALLED
    assert "member cluster de-c5" in p.message and "the operator's own cluster (local)" in p.message
    assert "cannot tell" in p.message
    p = move_problem("eu-de", "local", "de-c5", DATA, "Retain")
    assert p.reason == "TenantMoveRefused" and "PersistentVolumeClaim/eu-de/synapse-data" in p.message


@pytest.mark.parametrize("last, now, held, policy", [
    ("", "local", None, "Retain"),  # never applied anywhere
    ("de-c5", "de-c5", None, "Retain"),  # no move
    ("remote", "local", None, "Retain"),  # pull mode: another operator's
    ("local", "de-c5", [], "Retain"),  # the old cluster holds nothing of it
    ("de-c5", "local", None, "Delete"),  # its editor let its data go
    ("local", "de-c5", DATA, "Delete"),
])
def test_a_move_goes_on_only_when_nothing_is_at_stake(last, now, held, policy):
    assert move_problem("eu-de", last, now, held, policy) is None


class _Target:
    def __init__(self, name: str):
        self.name, self.is_member = name, name != "local"


def _obj(kind: str, name: str, labels: dict | None = None, api: str = "v1") -> tuple[ObjectKey, dict]:
    obj = {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "eu-de", "labels": labels or {}}}
    return ObjectKey.of(obj), obj


def test_held_data_is_what_the_old_clusters_cache_shows_of_the_tenant():
    live = dict([_obj("PersistentVolumeClaim", "synapse-data"), _obj("ConfigMap", "synapse-config"),
                 _obj("Secret", "synapse-keys", {"sovereignsuite.io/generated": "true"}), _obj("Secret", "oidc")])
    assert held_data(ClusterView(_Target("local"), set(), live), "eu-de") == [
        "PersistentVolumeClaim/eu-de/synapse-data", "Secret/eu-de/synapse-keys"]
    assert held_data(ClusterView(_Target("local"), set(), live), "eu-fr") == []
    assert held_data(None, "eu-de") is None
    gone = ClusterView(_Target("x"), set(), live, degraded("ClusterUnreachable", "x"))
    assert held_data(gone, "eu-de") is None


def test_a_refused_move_takes_the_tenant_out_of_its_new_cluster_and_keeps_its_old_one_in_the_status():
    local = ClusterView(_Target("local"), {"eu-de", "eu-fr"}, {})
    homes = Homes([local], {"eu-de": local, "eu-fr": local}, {"eu-de": "de-c5", "eu-fr": "fr-secnumcloud"})
    last = last_clusters({"tenants": [{"namespace": "eu-de", "cluster": "de-c5"},
                                      {"namespace": "eu-fr", "cluster": "local"}]})
    hold_moves(homes, last, "Retain")
    assert set(homes.home) == {"eu-fr"} and local.namespaces == {"eu-fr"}
    assert homes.unresolved["eu-de"].reason == "TenantMoveRefused" and homes.protected() == {"eu-de"}
    assert homes.cluster("eu-de") == {"cluster": "de-c5", "clusterReachable": False}
    assert homes.cluster("eu-fr") == {"cluster": "local", "clusterReachable": True}


def test_a_tenant_whose_cluster_is_unknown_this_pass_keeps_its_last_cluster_in_the_status():
    """A cloud joined while its kubeconfig Secret is not readable yet: the tenant is unresolved, and its status must
    keep saying it is on the hub, or the next pass would not see the move."""
    from sovereign_suite.reconcile.problems import stalled

    local = ClusterView(_Target("local"), set(), {})
    homes = Homes([local], {}, {"eu-de": "de-c5"}, unresolved={"eu-de": stalled("MemberCredentials", "x")})
    hold_moves(homes, {"eu-de": "local"}, "Retain")
    assert homes.cluster("eu-de") == {"cluster": "local", "clusterReachable": False}
    fresh = Homes([local], {}, {"eu-de": "de-c5"}, unresolved={"eu-de": stalled("MemberCredentials", "x")})
    hold_moves(fresh, {}, "Retain")  # never applied: the cloud's name, as before
    assert fresh.cluster("eu-de") == {"cluster": "de-c5", "clusterReachable": False}


def test_a_cloud_whose_credentials_reach_another_cluster_is_refused_as_a_move():
    """The same cloud name, another cluster behind it (its kubeconfig Secret replaced by another member's): the
    tenant is refused like a move, its old identity kept in the status; the same cluster, a tenant being
    restored, deletionPolicy Delete or an identity not known on either side lets it go on."""
    from sovereign_suite.reconcile.moves import identity_problem, last_identities

    def run(policy="Retain", restoring=frozenset(), now="uid-b", last_uid="uid-a"):
        member = ClusterView(_Target("de-c5"), {"eu-de"}, {})
        homes = Homes([member], {"eu-de": member}, {"eu-de": "de-c5"})
        status = {"tenants": [{"namespace": "eu-de", "cluster": "de-c5", "clusterUID": last_uid}]}
        hold_moves(homes, last_clusters(status), policy, last_identities(status), lambda t: now, restoring)
        return homes

    homes = run()
    problem = homes.unresolved["eu-de"]
    assert problem.reason == "TenantMoveRefused" and "eu-de" not in homes.home and homes.protected() == {"eu-de"}
    assert "member cluster de-c5 is now another cluster (its kube-system namespace uid uid-b)" in problem.message
    assert "(uid-a)" in problem.message and "restoreFrom" in problem.message
    assert homes.cluster("eu-de") == {"cluster": "de-c5", "clusterReachable": False, "clusterUID": "uid-a"}
    same = run(now="uid-a")
    assert not same.unresolved and same.cluster("eu-de") == {"cluster": "de-c5", "clusterReachable": True,
                                                               "clusterUID": "uid-a"}
    for ok in (run(policy="Delete"), run(restoring=frozenset({"eu-de"}))):
        assert not ok.unresolved and ok.cluster("eu-de")["clusterUID"] == "uid-b"  # the new cluster recorded
    first = run(last_uid="")  # a status from before identities: recorded now, nothing compared
    assert not first.unresolved and first.cluster("eu-de")["clusterUID"] == "uid-b"
    unknown = run(now="")  # not readable now: nothing compared, the known identity kept
    assert not unknown.unresolved and unknown.cluster("eu-de")["clusterUID"] == "uid-a"
    assert identity_problem("eu-de", "de-c5", "uid-a", "uid-a", "Retain", False) is None


def test_a_cluster_that_does_not_answer_is_not_asked_who_it_is():
    asked = []
    gone = ClusterView(_Target("de-c5"), {"eu-de"}, {}, degraded("ClusterUnreachable", "x"))
    homes = Homes([gone], {"eu-de": gone}, {"eu-de": "de-c5"})
    hold_moves(homes, {"eu-de": "de-c5"}, "Retain", {"eu-de": "uid-a"}, lambda t: asked.append(t) or "uid-b")
    assert asked == [] and not homes.unresolved
    assert homes.cluster("eu-de")["clusterUID"] == "uid-a"


def test_identify_reads_the_kube_system_uid_once_and_says_unknown_on_failure():
    from sovereign_suite.reconcile.kube import ApiError
    from sovereign_suite.reconcile.targets import identify

    class _Kube:
        def __init__(self, answers):
            self.answers, self.calls = list(answers), []

        def get(self, api_version, kind, name, namespace=None):
            self.calls.append((api_version, kind, name, namespace))
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

    class _T:
        def __init__(self, kube):
            self.kube, self.identity, self.name = kube, "", "de-c5"

    kube = _Kube([ApiError(0, "Timeout", "no answer", "Namespace/kube-system"), {"metadata": {"uid": "9f1c"}}])
    target = _T(kube)
    assert identify(target) == ""  # not readable now: asked again later
    assert identify(target) == "9f1c" and identify(target) == "9f1c"
    assert kube.calls == [("v1", "Namespace", "kube-system", None)] * 2  # once read, never asked again
