"""The operator upgraded and rolled back with helm on the real node, and its leader killed (issue 24).

- The previous chart and image are those of a fixed earlier commit (devcluster/realnode/previous_image.py,
  PREVIOUS: the first commit whose image runs the operator), its image built from that commit's sources by this tree's
  builder. The test gives the previous chart's SovereignSuite CRD one synthetic difference it can check under
  strict field validation: without ``spec.paused`` (a field "added" by the current one). The CRD has real
  differences since that commit too (e.g. ``spec.tenants[].quota.fineTuning``, ``status.tenants[].clusterUID``),
  and the current render adds children the previous one lacks (the tenants' scoped ResourceQuotas).
- Installed with that chart (two replicas, leader election), the real-node suite (FR on the real node, DE
  simulated) converges from inside the cluster. ``helm upgrade --take-ownership`` to the current chart (the CRDs
  are templates now: docs/install.md, "Upgrade") and image: the suite is Ready at every sample taken during the
  upgrade and the new leader's first passes; every write of the operator to a child is to an object whose content
  changed (children whose render did not change receive none: the API server's audit log); pods are replaced or
  restarted only where their template changed; the CRD in the cluster is the current one (``spec.paused``
  accepted under strict field validation).
- SIGKILL of the leader's container process (found through containerd): the standby takes the Lease (measured),
  a deleted child comes back, no second in which two replicas wrote, no object created twice.
- ``helm rollback`` to the previous revision: the same checks; the CRDs stay (helm.sh/resource-policy: keep).
- The tenants' ResourceQuotas, read from the cluster, against what each operator's own renderer makes of the
  applied suite and NationalClouds (quota_renders.py): after the upgrade the current split (``tenant-quota``
  storage only, ``tenant-serving`` and ``tenant-fine-tuning`` scoped by PriorityClass); after the rollback the
  previous operator's single ``tenant-quota`` with its full limits (cpu, memory, GPUs, pods, storage) applied back
  over the storage-only one, and the two scoped quotas pruned (they carry the suite's labels and UID), in every
  tenant the previous operator renders.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import yaml

from sovereign_suite.devcluster.cluster import EXAMPLE_CLOUDS, dev_suite_namespaces
from sovereign_suite.devcluster.realnode import NODE_NAME, RealNode
from sovereign_suite.devcluster.realnode import operator_image, previous_image

from .conftest import wait_for
from .leader_fixture import ReplicaAudit, duplicates_created, seconds_written_by_two
from .operator_fixture import suite_doc, wait_ready
from .quota_renders import current_root, live_quotas, mismatches, rendered_quotas
from .realnode_fixture import FR_CLOUD, FR_NS, PATCH, REGISTRY, SUITE, Real, ensure_suite, need_real_node, start
from .test_real_node_operator import CHART, NAMESPACE, RELEASE, SA_USER, container_pid, helm, memory
from .upgrade_checks import ReadyWatch, Snapshot, child_writes, lease_holder, passes

pytestmark = [pytest.mark.realnode, pytest.mark.slow]

TENANTS = [FR_NS, f"{SUITE}-de"]
SUITE_CRD = "sovereignsuites.sovereignsuite.io"
ADDED_FIELD = "paused"  # absent from the previous chart's CRD (synthetic), present in the current one
TAKEOVER = 15.0  # the promise for a SIGKILLed leader
DRIFT = 10  # operator.driftInterval: a drift pass every 10 s, so the new leader's passes come quickly
COMMON = ["--namespace", NAMESPACE, "--set", "image.pullPolicy=Never",
          "--set", f"nodeSelector.kubernetes\\.io/hostname={NODE_NAME}", "--set", f"operator.driftInterval={DRIFT}",
          "--wait", "--timeout", "5m"]


def previous_chart(tmp: Path) -> Path:
    """The previous commit's chart, its SovereignSuite CRD without ``spec.paused``."""
    chart = tmp / "previous-chart"
    shutil.copytree(previous_image.chart(), chart)
    path = chart / "crds" / f"{SUITE_CRD.split('.')[0]}.yaml"
    crd = yaml.safe_load(path.read_text())
    del crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][ADDED_FIELD]
    path.write_text(yaml.safe_dump(crd, sort_keys=False))
    return chart


def operator_pods(r: Real) -> list[dict]:
    pods = json.loads(r.kubectl("-n", NAMESPACE, "get", "pods", "-l", f"app.kubernetes.io/instance={RELEASE}",
                                "-o", "json"))["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def leader_pod(r: Real) -> dict | None:
    """The replica holding the Lease (its identity is ``<pod>_<uuid>``: leader/elector.py), if it is live."""
    holder = lease_holder(r, NAMESPACE, RELEASE)
    return next((p for p in operator_pods(r) if holder.startswith(p["metadata"]["name"] + "_")), None)


def images(r: Real) -> set[str]:
    return {p["spec"]["containers"][0]["image"] for p in operator_pods(r)}


def diagnose(r: Real) -> str:
    """The operator pods' state, events and logs: what a failed `helm --wait` does not say."""
    out = [r.kubectl("-n", NAMESPACE, "get", "pods", "-o", "wide", check=False),
           r.kubectl("-n", NAMESPACE, "describe", "pods", check=False)[-4000:]]
    for p in operator_pods(r):
        out.append(r.kubectl("-n", NAMESPACE, "logs", p["metadata"]["name"], "--tail=40", check=False))
    return "\n".join(out)


def helm_step(r: Real, *args: str) -> None:
    try:
        helm(r, *args)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{diagnose(r)}") from None


def strict_dry_run(r: Real, spec_patch: dict) -> tuple[bool, str]:
    """Server-side apply of the suite with ``spec_patch``, dry run, unknown fields refused (not pruned)."""
    doc = suite_doc("two-countries", "rn-suites", name=SUITE, patch={**PATCH, **spec_patch})
    proc_ok = True
    try:
        out = r.kubectl("apply", "--server-side", "--force-conflicts", "--dry-run=server", "--validate=strict",
                        "-f", "-", input=json.dumps(doc))
    except AssertionError as err:
        proc_ok, out = False, str(err)
    return proc_ok, out


def crd_fields(r: Real) -> tuple[dict, set[str]]:
    crd = json.loads(r.kubectl("get", "crd", SUITE_CRD, "-o", "json"))
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    return crd["metadata"], set(props)


def undisturbed(r: Real, change) -> dict:
    """Run ``change`` (a helm command) and check the suite, its children and pods through it and the new
    operator's first passes; returns the figures."""
    audit = ReplicaAudit(r.cluster)
    before = Snapshot(r, TENANTS)
    old_images = images(r)
    mark = audit.mark()
    with ReadyWatch(r.cluster.kubeconfig, "rn-suites", SUITE) as watch:
        began = time.monotonic()
        change()
        helm_took = time.monotonic() - began
        wait_for(lambda: len(operator_pods(r)) == 2 and not (images(r) & old_images), timeout=180,
                 what="the old operator pods gone")
        leader = wait_for(lambda: leader_pod(r), timeout=60, what="a new leader")
        led = time.monotonic() - began
        first = passes(leader)
        # two passes of the new leader: its first full pass over the suite and a drift pass after it
        wait_for(lambda: passes(leader) >= first + 2, timeout=4 * DRIFT + 60, what="the new leader's passes")
    assert watch.samples and watch.not_ready() == [], watch.not_ready()
    after = Snapshot(r, TENANTS)
    changed = before.changed(after)
    written = child_writes(audit.events(mark), SA_USER, TENANTS)
    idle = {k: v for k, v in written.items() if k not in changed}
    assert idle == {}, f"writes to children whose content did not change: {idle}"
    assert before.disturbed_pods(after) == []
    print(f"helm {helm_took:.0f} s, new leader {led:.0f} s after the command; {len(watch.samples)} Ready samples; "
          f"{len(before.children)} children, changed {sorted(changed)}, written {sorted(written)}")
    return {"helm": helm_took, "written": written, "changed": changed}


def applied_inputs(r: Real) -> tuple[dict, list[dict]]:
    """The suite as the test applies it and the NationalClouds as the cluster holds them (their specs)."""
    clouds = json.loads(r.kubectl("get", "nationalclouds.sovereignsuite.io", "-o", "json"))["items"]
    return (suite_doc("two-countries", "rn-suites", name=SUITE, patch=PATCH),
            [{"apiVersion": c["apiVersion"], "kind": c["kind"], "metadata": {"name": c["metadata"]["name"]},
              "spec": c["spec"]} for c in clouds])


@pytest.fixture(scope="module")
def quota_renders(previous: Real, tmp_path_factory) -> dict:
    """The tenants' quotas as the current and the previous operator render them (quota_renders.py)."""
    suite, clouds = applied_inputs(previous)
    tmp = tmp_path_factory.mktemp("quota-renders")
    out = {"current": rendered_quotas(current_root(), suite, clouds, tmp / "current"),
           "previous": rendered_quotas(previous_image.sources(), suite, clouds, tmp / "previous")}
    # what the test relies on: the previous operator renders one quota per tenant, with everything in it
    assert sorted(out["previous"]) == sorted(TENANTS), out["previous"]
    for ns, quotas in out["previous"].items():
        assert list(quotas) == ["tenant-quota"], (ns, quotas)
        assert {"requests.cpu", "requests.memory", "pods", "requests.storage"} <= set(quotas["tenant-quota"]["hard"])
        assert any(k.startswith("requests.") and k.endswith("gpu") for k in quotas["tenant-quota"]["hard"])
    assert {ns: sorted(q) for ns, q in out["current"].items()} == {
        ns: ["tenant-fine-tuning", "tenant-quota", "tenant-serving"] for ns in TENANTS}, out["current"]
    return out


@pytest.fixture(scope="module")
def previous(tmp_path_factory):
    """The cluster with the real node, the current and previous images in its containerd, the previous chart
    installed (two replicas) and the suite Ready."""
    from sovereign_suite.devcluster import seed
    from sovereign_suite.devcluster.realnode.build import build_all

    need_real_node()
    build_all(["postgres", "synapse", "element-web", "litellm"], progress=lambda m: print(f"[images] {m}"))
    current = operator_image.build(progress=lambda m: print(f"[image] {m}"))
    began = time.monotonic()
    old = previous_image.build(progress=lambda m: print(f"[image] {m}"))
    print(f"previous image {previous_image.tag()}: {time.monotonic() - began:.0f} s (cached by commit)")
    chart = previous_chart(tmp_path_factory.mktemp("upgrade"))
    c = start(f"rn-up-{os.getpid()}", countries=["DE"], crds=False)
    try:
        node = RealNode(c)
        node.import_image(current)
        node.import_image(old)
        node.alias_images(REGISTRY)
        r = Real(c)
        began = time.monotonic()
        helm_step(r, "install", RELEASE, str(chart), "--create-namespace", "--set", f"image.tag={previous_image.tag()}",
             *COMMON)
        seed.apply_national_clouds(c.kubeconfig, EXAMPLE_CLOUDS, countries={"DE"},
                                   suite_namespaces=dev_suite_namespaces())
        r.apply(FR_CLOUD)
        ensure_suite(r)
        print(f"previous chart: install to a Ready suite {time.monotonic() - began:.0f} s")
        yield r
    finally:
        c.down()


def test_helm_upgrade_from_the_previous_chart(previous: Real, quota_renders: dict):
    r = previous
    # before: the previous operator's single quota per tenant
    assert mismatches(live_quotas(r, TENANTS), quota_renders["previous"]) == []
    meta, fields = crd_fields(r)
    assert ADDED_FIELD not in fields
    ok, out = strict_dry_run(r, {ADDED_FIELD: False})
    assert not ok and ADDED_FIELD in out, out  # refused, naming the field the previous CRD lacks
    began = time.monotonic()
    # --take-ownership: the CRDs came from the previous chart's crds/ (no release owns them); the current chart
    # has them as templates and adopts them (Helm 3.17 or later; docs/install.md, "Upgrade")
    figures = undisturbed(r, lambda: helm_step(r, "upgrade", RELEASE, str(CHART), "--take-ownership", *COMMON))
    assert images(r) == {f"sovereign-suite-operator:{operator_image.version()}"}
    meta, fields = crd_fields(r)
    assert ADDED_FIELD in fields and meta["annotations"]["helm.sh/resource-policy"] == "keep"
    assert meta["annotations"]["meta.helm.sh/release-name"] == RELEASE
    ok, out = strict_dry_run(r, {ADDED_FIELD: False})
    assert ok, out
    # the quota split, live: tenant-quota's hard is now storage only, the scoped shares exist
    assert mismatches(live_quotas(r, TENANTS), quota_renders["current"]) == []
    print(f"upgrade test: {time.monotonic() - began:.0f} s (helm upgrade --wait {figures['helm']:.0f} s)")


def test_sigkill_of_the_leader_pod_the_standby_takes_over(previous: Real):
    r = previous
    audit = ReplicaAudit(r.cluster)
    mark = audit.mark()
    leader = wait_for(lambda: leader_pod(r), timeout=30, what="the leader")
    (standby,) = [p for p in operator_pods(r) if p["metadata"]["name"] != leader["metadata"]["name"]]
    pid = container_pid(r, leader)
    charged, rss = memory(leader, pid)
    print(f"leader pod: {charged / 2**20:.0f} MiB charged to its cgroup, process resident {rss / 2**20:.0f} MiB")
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: lease_holder(r, NAMESPACE, RELEASE).startswith(standby["metadata"]["name"] + "_"),
             timeout=TAKEOVER + 15, interval=0.1, what="the standby leads")
    took = time.monotonic() - killed
    print(f"takeover after SIGKILL of the leader's container: {took:.1f} s")
    assert took < TAKEOVER
    # the suite keeps converging under the new leader: a deleted child comes back
    cms = json.loads(r.kubectl("-n", FR_NS, "get", "configmaps", "-l", f"sovereignsuite.io/suite={SUITE}", "-o",
                               "json"))["items"]
    victim = cms[0]["metadata"]["name"]
    r.kubectl("-n", FR_NS, "delete", "configmap", victim)
    wait_for(lambda: r.kubectl("-n", FR_NS, "get", "configmap", victim, "--ignore-not-found", "-o", "name"),
             timeout=4 * DRIFT + 60, what=f"configmap {victim} recreated")
    wait_ready(r.kube, suite_doc("two-countries", "rn-suites", name=SUITE, patch=PATCH), timeout=120)
    # kubelet restarts the killed container; it comes back as the standby
    wait_for(lambda: all(c["ready"] for p in operator_pods(r) for c in p["status"]["containerStatuses"]),
             timeout=120, what="both replicas ready again")
    events = audit.events(mark)
    # the audit reader sees the pods' writes: the recreation is there, by the new leader (its identity starts
    # with its pod's name), and nothing else wrote it
    agents = {w.rsplit(" ", 1)[1] for w in child_writes(events, SA_USER, TENANTS)[("configmaps", FR_NS, victim)]}
    assert agents and all(a.startswith(f"sovereign-suite-operator/{standby['metadata']['name']}_") for a in agents), \
        agents
    assert seconds_written_by_two(events) == []
    assert duplicates_created(events) == []
    print(f"recreated {victim} {time.monotonic() - killed:.0f} s after the SIGKILL")


def test_helm_rollback_to_the_previous_chart(previous: Real, quota_renders: dict):
    r = previous
    assert mismatches(live_quotas(r, TENANTS), quota_renders["current"]) == []
    began = time.monotonic()
    figures = undisturbed(r, lambda: helm_step(r, "rollback", RELEASE, "1", "--namespace", NAMESPACE, "--wait",
                                          "--timeout", "5m"))
    assert images(r) == {f"sovereign-suite-operator:{previous_image.tag()}"}
    # the CRDs stay, the current ones: a rollback never deletes them (keep) nor downgrades them (the previous
    # chart's crds/ are not applied again); the suite does not set the field the previous operator does not know
    meta, fields = crd_fields(r)
    assert ADDED_FIELD in fields and meta["annotations"]["helm.sh/resource-policy"] == "keep"
    # the previous operator's quota back in every tenant: tenant-quota with the full limits (applied over the
    # storage-only one), the two scoped quotas it does not render pruned (the suite's labels and UID: they are its)
    live = live_quotas(r, TENANTS)
    assert mismatches(live, quota_renders["previous"]) == [], live
    print(f"quotas after the rollback: {live}")
    print(f"rollback test: {time.monotonic() - began:.0f} s (helm rollback --wait {figures['helm']:.0f} s)")
