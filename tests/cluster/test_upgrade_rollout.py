"""A release upgrade on the local control plane, with the operator as a real process (reconcile/rollout.py).

A French tenant on the previous release (api/releases.yaml), with backups configured, moves to the current one:
the API server's audit log shows the operator apply the pre-upgrade backup Job (from the backup CronJob's
template) first, then the Synapse check-config Job, then Synapse's main Deployment with the new image, and its
workers' StatefulSets last;
the status records the release and schema the database reached. Asking for the previous release again is refused
(Stalled, UpgradeRefused, the field named) and nothing is written but the status. kwok's nodes run no container:
the Jobs complete as kwok completes their pods; the real Synapse migration and refusal are
tests/test_synapse_upgrade_real.py.

A failed step: the check Job's pod exits 1 with Synapse's own configuration error (kept Pending on cordoned nodes,
so kwok leaves it alone, then its status written as the kubelet reports a container that exited); the Job
controller fails the Job; the rollout stops there (Failed, the checker's words, the suite Degraded) with nothing
rolled, and both documented ways on (docs/operations.md, "When a step fails") are taken.
"""

from __future__ import annotations

import time
import uuid

from sovereign_suite.api.image_pins import PINS, release_pins

from .conftest import wait_for
from .operator_fixture import SUITES, Audit, condition, create_referenced_secrets, get_suite, suite_doc, wait_ready
from .test_backup_live import RECIPIENT, cloud, referenceable

PREVIOUS, CURRENT = "2024.01", "2026.12"


def _synapse_image(kube, ns: str) -> str | None:
    dep = kube.get("apps/v1", "Deployment", "synapse", ns)
    return dep["spec"]["template"]["spec"]["containers"][0]["image"] if dep else None


def _tenant(kube, doc) -> dict:
    return ((get_suite(kube, doc) or {}).get("status") or {}).get("tenants", [{}])[0]


def test_an_upgrade_backs_up_checks_then_rolls_and_a_downgrade_is_refused(operator, kube, core, namespace, cluster):
    tag = uuid.uuid4().hex[:5]
    fr_cloud = cloud(f"fr-up-{tag}", "fr-secnumcloud", "fr-backups", "fr-s3")
    create_referenced_secrets(core, namespace)
    referenceable(core, namespace, "fr-s3", {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "key"})
    referenceable(core, namespace, "backup-recipient", {"recipient": RECIPIENT})
    doc = suite_doc("two-countries", namespace, patch={
        "deletionPolicy": "Delete", "release": PREVIOUS,
        "components": {"docs": {"enabled": False}, "jitsi": {"enabled": False},
                       "matrix": {"workers": {"size": "small"}}},
        "backups": {"enabled": True, "schedule": "15 1 * * *",
                    "encryptionRecipientSecretRef": {"name": "backup-recipient", "key": "recipient"}}})
    doc["spec"]["tenants"] = [{"country": "FR", "cloud": fr_cloud["metadata"]["name"]}]
    name, fr = doc["metadata"]["name"], f"{doc['metadata']['name']}-fr"
    audit = Audit(cluster)
    try:
        kube.create(fr_cloud)
        kube.create(doc)
        wait_ready(kube, doc, timeout=120)
        assert _synapse_image(kube, fr) == release_pins(PREVIOUS)["synapse"].ref
        rec = wait_for(lambda: _tenant(kube, doc).get("release"), timeout=30, what="the release record")
        assert (rec["name"], rec["synapseSchemaVersion"], rec["synapseCompatVersion"]) == (PREVIOUS, 83, 83)

        # the upgrade: backup, check, then the new image
        mark = audit.mark()
        kube.merge_patch(*SUITES, name, namespace, {"spec": {"release": CURRENT}})
        wait_for(lambda: (_tenant(kube, doc).get("release") or {}).get("name") == CURRENT, timeout=150,
                 what="the tenant on the current release")
        assert _synapse_image(kube, fr) == PINS["synapse"].ref
        rec = _tenant(kube, doc)["release"]
        assert (rec["synapseSchemaVersion"], rec["synapseCompatVersion"]) == (94, 84)
        assert "upgrade" not in _tenant(kube, doc)  # done: no rollout left in the status
        writes = audit.writes(mark)

        def first(prefix: str) -> int:
            found = [i for i, w in enumerate(writes) if w.startswith(prefix)]
            assert found, f"no {prefix!r} in {writes}"
            return found[0]

        backup = first(f"patch jobs {fr}/upgrade-backup-")  # server-side apply: a patch creates
        check = first(f"patch jobs {fr}/synapse-check-config-")
        assert f"patch deployments {fr}/synapse" in writes, writes
        synapse = writes.index(f"patch deployments {fr}/synapse")
        workers = first(f"patch statefulsets {fr}/synapse-")  # Synapse's workers (size small)
        assert backup < check < synapse < workers, writes
        # the one-off Jobs are gone once the rollout is done (pruned: no longer rendered)
        wait_for(lambda: not [j for j in kube.list("batch/v1", "Job", namespace=fr)
                              if j["metadata"]["name"].startswith(("upgrade-backup-", "synapse-check-config-"))],
                 timeout=60, what="the rollout's Jobs pruned")
        wait_ready(kube, doc, timeout=60)

        # a downgrade below the database's schema: refused, nothing written but the status
        mark = audit.mark()
        kube.merge_patch(*SUITES, name, namespace, {"spec": {"release": PREVIOUS}})

        def stalled():
            c = condition(get_suite(kube, doc), "Stalled")
            return c if c and c["status"] == "True" else None

        c = wait_for(stalled, timeout=60, what="Stalled condition")
        assert c["reason"] == "UpgradeRefused", c
        assert "spec.release: Synapse v1.99.0 (schema 83) cannot run on tenant FR's database" in c["message"], c
        assert "schema 94" in c["message"]
        assert _synapse_image(kube, fr) == PINS["synapse"].ref
        assert _tenant(kube, doc)["release"]["name"] == CURRENT  # the record survives the refused pass
        # the suite's status, its events and the operator's leader lease are not the tenant's children
        children = [w for w in audit.writes(mark) if w.split()[1] not in ("sovereignsuites/status", "events",
                                                                           "leases")]
        assert children == [], children
    finally:
        kube.delete({"apiVersion": "sovereignsuite.io/v1alpha1", "kind": "SovereignSuite",
                     "metadata": {"name": name, "namespace": namespace}})
        wait_for(lambda: get_suite(kube, doc) is None, timeout=60, what="suite deleted")
        kube.delete(fr_cloud)


# ---- a failed step ------------------------------------------------------------------------------------------------
# Synapse v1.163.2's ConfigError for open registration without verification (synapse/config/registration.py), as its
# checker writes it to stderr (synapse/config/__main__.py: "\n" + str(error) + "\n", exit 1); printed by the pinned
# Synapse's `python -m synapse.config` on a homeserver.yaml with `enable_registration: true` and nothing else set
CONFIG_ERROR = ("You have enabled open registration without any verification. This is a known vector for spam and "
                "abuse. If you would like to allow public registration, please consider adding email, captcha, or "
                "token-based verification. Otherwise this check can be removed by setting the "
                "`enable_registration_without_verification` config option to `true`.")
WORKLOADS = ("deployments", "statefulsets", "clusters")


def _cordon(kube, on: bool, names: list[str] | None = None) -> list[str]:
    """Mark the kwok nodes unschedulable (or schedulable again): a pod created meanwhile stays Pending, unbound, so
    kwok (whose stages act on pods bound to its nodes) does not complete it. Returns the nodes changed."""
    nodes = [n for n in kube.list("v1", "Node") if (n["metadata"].get("annotations") or {}).get(
        "kwok.x-k8s.io/node") == "fake" and bool(n["spec"].get("unschedulable")) != on
        and (names is None or n["metadata"]["name"] in names)]
    for n in nodes:
        kube.merge_patch("v1", "Node", n["metadata"]["name"], None, {"spec": {"unschedulable": on}})
    return [n["metadata"]["name"] for n in nodes]


def _check_pod_exits(kube, ns: str, code: int, message: str) -> str:
    """The check Job's pod exits with ``code`` and ``message`` (the checker's words), as the kubelet reports a
    container that ran once (restartPolicy Never): phase Failed or Succeeded, its container terminated with the tail
    of its log as the termination message (terminationMessagePolicy FallbackToLogsOnError, copied from Synapse's
    container). The Job controller then fails the Job (backoffLimit 0: BackoffLimitExceeded) or completes it, by its
    own rules. Returns the Job's name."""
    def pending():
        return [p for p in kube.list("v1", "Pod", namespace=ns)
                if p["metadata"]["name"].startswith("synapse-check-config-") and p["status"].get("phase") == "Pending"]

    pod = wait_for(pending, timeout=60, what="the check Job's pod, Pending on cordoned nodes")[0]
    spec = kube.get("v1", "Pod", pod["metadata"]["name"], ns)["spec"]
    assert spec["containers"][0]["terminationMessagePolicy"] == "FallbackToLogsOnError"
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    kube.merge_patch("v1", "Pod", pod["metadata"]["name"], ns, {"status": {
        "phase": "Failed" if code else "Succeeded", "startTime": now,
        "containerStatuses": [{"name": c["name"], "image": c["image"], "imageID": "", "ready": False,
                               "started": False, "restartCount": 0,
                               "state": {"terminated": {"exitCode": code, "reason": "Error" if code else "Completed",
                                                        "message": message, "startedAt": now, "finishedAt": now}}}
                              for c in spec["containers"]]}}, sub="status")
    return pod["metadata"]["labels"]["job-name"]


def _workload_images(kube, ns: str) -> dict[str, list[str]]:
    out = {}
    for kind in ("Deployment", "StatefulSet"):
        for w in kube.list("apps/v1", kind, namespace=ns):
            out[f"{kind}/{w['metadata']['name']}"] = [c["image"] for c in w["spec"]["template"]["spec"]["containers"]]
    return out


def _job_state(kube, ns: str, name: str) -> str:
    job = kube.get("batch/v1", "Job", name, ns) or {}
    return next((c["type"] for c in (job.get("status") or {}).get("conditions") or []
                 if c["type"] in ("Complete", "Failed") and c["status"] == "True"), "Running")


def _contents(kube, ns: str) -> dict[str, object]:
    """What the tenant's configuration and Services say (not their labels)."""
    out: dict[str, object] = {f"ConfigMap/{c['metadata']['name']}": c.get("data")
                              for c in kube.list("v1", "ConfigMap", namespace=ns)}
    out.update({f"Service/{v['metadata']['name']}": (v["spec"].get("selector"), v["spec"].get("ports"))
                for v in kube.list("v1", "Service", namespace=ns)})
    return out


def _end(kube, doc: dict, cordoned: list[str]) -> None:
    """A test's cleanup: the nodes it cordoned schedulable again, its suite deleted."""
    if cordoned:
        _cordon(kube, False, cordoned)
    kube.delete({"apiVersion": "sovereignsuite.io/v1alpha1", "kind": "SovereignSuite",
                 "metadata": {"name": doc["metadata"]["name"], "namespace": doc["metadata"]["namespace"]}})
    wait_for(lambda: get_suite(kube, doc) is None, timeout=60, what="suite deleted")


def _fr_suite(namespace: str) -> dict:
    doc = suite_doc("two-countries", namespace, patch={
        "deletionPolicy": "Delete", "release": PREVIOUS,
        "components": {"docs": {"enabled": False}, "jitsi": {"enabled": False},
                       "matrix": {"workers": {"size": "small"}}}})
    doc["spec"]["tenants"] = [{"country": "FR", "cloud": "fr-secnumcloud"}]
    return doc


def test_a_failed_check_stops_the_rollout_and_the_release_back_or_a_rerun_recovers(operator, kube, core, namespace,
                                                                                   cluster):
    """The new Synapse refuses the configuration: the rollout stops at CheckConfig (Failed, the checker's words),
    the suite is Degraded, no workload is written; setting the release back makes the suite Ready on what it ran;
    asking again fails again, and deleting the failed Job once the cause is gone runs the check again and the
    rollout goes on to the end."""
    create_referenced_secrets(core, namespace)
    doc = _fr_suite(namespace)
    name, fr = doc["metadata"]["name"], f"{doc['metadata']['name']}-fr"
    audit = Audit(cluster)
    cordoned: list[str] = []
    try:
        kube.create(doc)
        wait_ready(kube, doc, timeout=120)
        wait_for(lambda: _tenant(kube, doc).get("release"), timeout=30, what="the release record")
        before, contents = _workload_images(kube, fr), _contents(kube, fr)
        assert before["Deployment/synapse"] == [release_pins(PREVIOUS)["synapse"].ref]

        def upgrade_fails() -> tuple[dict, str, int]:
            mark = audit.mark()
            kube.merge_patch(*SUITES, name, namespace, {"spec": {"release": CURRENT}})
            job = _check_pod_exits(kube, fr, 1, "\n" + CONFIG_ERROR + "\n")
            up = wait_for(lambda: (_tenant(kube, doc).get("upgrade") or {}).get("state") == "Failed"
                          and _tenant(kube, doc)["upgrade"], timeout=60, what="the rollout Failed")
            return up, job, mark

        cordoned = _cordon(kube, True)
        assert cordoned
        up, job, mark = upgrade_fails()
        assert {k: up[k] for k in ("fromRelease", "toRelease", "step", "state", "reason")} == {
            "fromRelease": PREVIOUS, "toRelease": CURRENT, "step": "CheckConfig", "state": "Failed",
            "reason": "ConfigCheckFailed"}, up
        assert up["message"].startswith(f"the new Synapse refuses the configuration (Error: {CONFIG_ERROR[:60]}"), up
        assert "the previous version keeps serving" in up["message"]
        suite = get_suite(kube, doc)
        degraded, ready = condition(suite, "Degraded"), condition(suite, "Ready")
        assert (degraded["status"], degraded["reason"]) == ("True", "ConfigCheckFailed"), degraded
        assert f"{fr}: upgrade {PREVIOUS} -> {CURRENT} stopped at step CheckConfig" in degraded["message"]
        assert "open registration without any verification" in degraded["message"]
        assert (ready["status"], ready["reason"]) == ("False", "ConfigCheckFailed"), ready
        # held: every workload as it was, the record on the previous release; the failed Job kept (its words)
        assert _workload_images(kube, fr) == before
        assert _tenant(kube, doc)["release"]["name"] == PREVIOUS
        assert _job_state(kube, fr, job) == "Failed"
        # nothing rolled: of the tenant's children, the operator wrote the check Job and its own copies of the
        # new configuration, and the objects no step holds (Services, Ingress, the media claim: applied when the
        # move starts), whose content is the same between these releases: only their version label moved. The
        # ConfigMaps the held workloads read stay at the previous release (reconcile/rollout_config.py)
        time.sleep(6)  # two drift passes (3 s) on the failed rollout: it stays stopped
        writes = [w for w in audit.writes(mark) if w.split()[1] not in ("sovereignsuites/status", "events", "leases")]
        assert {w.split()[1] for w in writes} == {"jobs", "configmaps", "services", "ingresses",
                                                   "persistentvolumeclaims"}, writes
        assert {w for w in writes if w.split()[1] == "jobs"} == {f"patch jobs {fr}/{job}"}, writes
        assert {w for w in writes if w.split()[1] == "configmaps"} == {f"patch configmaps {fr}/{job}-synapse"}, writes
        now = _contents(kube, fr)
        # the check's copy holds the new release's configuration: the same content as the previous one between
        # these two releases; it is pruned with the Job when the release is set back (below)
        assert now.pop(f"ConfigMap/{job}-synapse") == now["ConfigMap/synapse"]
        assert now == contents
        assert (_tenant(kube, doc).get("upgrade") or {}).get("state") == "Failed"

        # the release set back: nothing to roll, the check Job removed, Ready on the images it never left
        mark = audit.mark()
        kube.merge_patch(*SUITES, name, namespace, {"spec": {"release": PREVIOUS}})
        wait_ready(kube, doc, timeout=60)
        wait_for(lambda: kube.get("batch/v1", "Job", job, fr) is None, timeout=30, what="the failed check Job pruned")
        assert "upgrade" not in _tenant(kube, doc) and _tenant(kube, doc)["release"]["name"] == PREVIOUS
        assert condition(get_suite(kube, doc), "Degraded")["status"] == "False"
        assert _workload_images(kube, fr) == before and _contents(kube, fr) == contents
        assert [w for w in audit.writes(mark) if w.split()[1] in WORKLOADS] == []

        # asked again: the same check fails again; once its cause is gone (here: the pod can run), deleting the
        # failed Job makes the next pass run it again, and the rollout goes on to the end
        up, job2, _ = upgrade_fails()
        assert (up["step"], up["reason"], job2) == ("CheckConfig", "ConfigCheckFailed", job)  # the same move's Job
        _cordon(kube, False, cordoned)
        cordoned = []
        kube.delete({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": job, "namespace": fr}})
        wait_for(lambda: (_tenant(kube, doc).get("release") or {}).get("name") == CURRENT, timeout=150,
                 what="the tenant on the current release")
        assert "upgrade" not in _tenant(kube, doc)
        assert _synapse_image(kube, fr) == PINS["synapse"].ref
        wait_ready(kube, doc, timeout=60)
    finally:
        _end(kube, doc, cordoned)



def test_a_new_synapse_that_crash_loops_fails_the_application_step_and_recovers_when_it_starts(
        operator, kube, core, namespace):
    """The check passes, Synapse's main Deployment gets the new image, and its new pod crash-loops: the rollout
    stops at Application (Failed, the kubelet's reason and the container's last words), the suite is Degraded,
    the workers stay on the previous version and the record on the previous release. When the container starts
    (the kubelet retries it; here: the pod gets a node and kwok makes it ready), the next passes go on to the end."""
    create_referenced_secrets(core, namespace)
    doc = _fr_suite(namespace)
    name, fr = doc["metadata"]["name"], f"{doc['metadata']['name']}-fr"
    words = ('psycopg2.OperationalError: connection to server at "matrix-postgres" (10.96.12.7), port 5432 failed: '
             'FATAL:  password authentication failed for user "synapse"')
    cordoned: list[str] = []
    try:
        kube.create(doc)
        wait_ready(kube, doc, timeout=120)
        wait_for(lambda: _tenant(kube, doc).get("release"), timeout=30, what="the release record")
        before = _workload_images(kube, fr)
        workers = {k: v for k, v in before.items() if k.startswith("StatefulSet/synapse-")}
        assert workers and all(v == [release_pins(PREVIOUS)["synapse"].ref] for v in workers.values()), before

        cordoned = _cordon(kube, True)
        kube.merge_patch(*SUITES, name, namespace, {"spec": {"release": CURRENT}})
        _check_pod_exits(kube, fr, 0, "Config parses OK!\n")  # synapse/config/__main__.py's words on success

        match = kube.get("apps/v1", "Deployment", "synapse", fr)["spec"]["selector"]["matchLabels"]

        def new_synapse_pod():
            return [p for p in kube.list("v1", "Pod", ",".join(f"{k}={v}" for k, v in match.items()), fr)
                    if p["spec"]["containers"][0]["image"] == PINS["synapse"].ref
                    and not p["metadata"].get("deletionTimestamp")]

        pod = wait_for(new_synapse_pod, timeout=90, what="the new Synapse's pod")[0]
        assert _synapse_image(kube, fr) == PINS["synapse"].ref
        # as the kubelet reports a container that exits 1 at start, restarted with a back-off
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        kube.merge_patch("v1", "Pod", pod["metadata"]["name"], fr, {"status": {"containerStatuses": [
            {"name": c["name"], "image": c["image"], "imageID": "", "ready": False, "started": False,
             "restartCount": 3,
             "state": {"waiting": {"reason": "CrashLoopBackOff",
                                   "message": f"back-off 40s restarting failed container={c['name']} "
                                              f"pod={pod['metadata']['name']}_{fr}"}},
             "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": words,
                                          "startedAt": now, "finishedAt": now}}}
            for c in pod["spec"]["containers"]]}}, sub="status")
        up = wait_for(lambda: (_tenant(kube, doc).get("upgrade") or {}).get("state") == "Failed"
                      and _tenant(kube, doc)["upgrade"], timeout=60, what="the rollout Failed")
        assert (up["step"], up["reason"]) == ("Application", "CrashLoopBackOff"), up
        assert up["message"].startswith(f"Deployment/synapse: pod {pod['metadata']['name']}, container "), up
        assert "last exit 1 (Error): " + " ".join(words.split()) in up["message"], up  # its whitespace folded
        suite = get_suite(kube, doc)
        assert (condition(suite, "Degraded")["status"], condition(suite, "Degraded")["reason"]) == (
            "True", "CrashLoopBackOff")
        assert f"{fr}: upgrade {PREVIOUS} -> {CURRENT} stopped at step Application" in condition(
            suite, "Degraded")["message"]
        assert condition(suite, "Ready")["status"] == "False"
        time.sleep(6)  # two drift passes: still stopped, the workers still held
        assert {k: v for k, v in _workload_images(kube, fr).items() if k in workers} == workers
        assert _tenant(kube, doc)["upgrade"]["state"] == "Failed"
        assert _tenant(kube, doc)["release"]["name"] == PREVIOUS

        # the container starts: the rollout goes on, the workers follow, the record moves
        _cordon(kube, False, cordoned)
        cordoned = []
        wait_for(lambda: (_tenant(kube, doc).get("release") or {}).get("name") == CURRENT, timeout=150,
                 what="the tenant on the current release")
        assert all(v == [PINS["synapse"].ref] for k, v in _workload_images(kube, fr).items() if k in workers)
        assert "upgrade" not in _tenant(kube, doc)
        wait_ready(kube, doc, timeout=60)
    finally:
        _end(kube, doc, cordoned)


def test_a_new_synapse_that_never_gets_a_node_fails_its_step_at_the_deadline(operator, kube, core, namespace):
    """A new Synapse pod that is not stuck but never becomes ready (here: Pending, every node cordoned, so the
    scheduler says why) fails the Application step once the operator's rollout step deadline has passed
    (SOVEREIGN_SUITE_ROLLOUT_STEP_DEADLINE, 20 s for this test): ProgressDeadlineExceeded, naming the Deployment,
    its ready count and the scheduler's words; the suite Degraded, the workers held. Once a node takes the pod the
    rollout goes on to the end."""
    operator.stop()
    operator.extra_env["SOVEREIGN_SUITE_ROLLOUT_STEP_DEADLINE"] = "20"
    operator.start()
    create_referenced_secrets(core, namespace)
    doc = _fr_suite(namespace)
    name, fr = doc["metadata"]["name"], f"{doc['metadata']['name']}-fr"
    cordoned: list[str] = []
    try:
        kube.create(doc)
        wait_ready(kube, doc, timeout=120)
        wait_for(lambda: _tenant(kube, doc).get("release"), timeout=30, what="the release record")
        workers = {k: v for k, v in _workload_images(kube, fr).items() if k.startswith("StatefulSet/synapse-")}
        assert workers

        cordoned = _cordon(kube, True)
        kube.merge_patch(*SUITES, name, namespace, {"spec": {"release": CURRENT}})
        _check_pod_exits(kube, fr, 0, "Config parses OK!\n")
        started = time.monotonic()
        up = wait_for(lambda: (_tenant(kube, doc).get("upgrade") or {}).get("state") == "Failed"
                      and _tenant(kube, doc)["upgrade"], timeout=90, what="the rollout Failed at its deadline")
        assert (up["step"], up["reason"]) == ("Application", "ProgressDeadlineExceeded"), up
        assert up["message"].startswith("step Application not done "), up
        # the scheduler's own words for a pod no cordoned node takes
        assert "Deployment/synapse (0/1 ready): Unschedulable: " in up["message"], up
        assert "unschedulable" in up["message"].split("Deployment/synapse", 1)[1], up
        assert time.monotonic() - started >= 15  # not before the deadline (the step began after the check)
        suite = get_suite(kube, doc)
        assert (condition(suite, "Degraded")["status"], condition(suite, "Degraded")["reason"]) == (
            "True", "ProgressDeadlineExceeded")
        assert condition(suite, "Ready")["status"] == "False"
        assert {k: v for k, v in _workload_images(kube, fr).items() if k in workers} == workers
        assert _tenant(kube, doc)["release"]["name"] == PREVIOUS

        _cordon(kube, False, cordoned)
        cordoned = []
        wait_for(lambda: (_tenant(kube, doc).get("release") or {}).get("name") == CURRENT, timeout=150,
                 what="the tenant on the current release")
        assert "upgrade" not in _tenant(kube, doc)
        wait_ready(kube, doc, timeout=60)
    finally:
        _end(kube, doc, cordoned)
        operator.stop()
        operator.extra_env.pop("SOVEREIGN_SUITE_ROLLOUT_STEP_DEADLINE", None)
        operator.start()
