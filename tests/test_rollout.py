"""The rollout's state machine (reconcile/rollout.py) and the crash classifier (reconcile/crash_causes.py): pure."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from sovereign_suite.components.base import build_contexts
from sovereign_suite.reconcile.crash_causes import classify
from sovereign_suite.reconcile.observe import container_reason
from sovereign_suite.reconcile.rollout import Observed, backup_job, category, check_job, decide, job_suffix
from sovereign_suite.render import render_suite

from .helpers import load_example

ALL = {"database", "migrations", "application", "workers"}
NOW = datetime(2026, 12, 3, 23, 0, 0, tzinfo=timezone.utc)


def test_backup_first_when_backups_are_configured():
    d = decide(Observed(backups=True))
    assert (d.step, d.state, d.jobs, d.hold) == ("Backup", "Running", {"backup"}, ALL)
    d = decide(Observed(backups=True, backup_job="Running"))
    assert d.step == "Backup" and "check" not in d.jobs  # the check waits for the backup


def test_without_backups_the_check_comes_first():
    d = decide(Observed(backups=False))
    assert (d.step, d.jobs, d.hold) == ("CheckConfig", {"check"}, ALL)


def test_steps_in_dependency_order():
    o = dict(backups=True, backup_job="Complete", check_job="Complete")
    assert decide(Observed(**o)).step == "Database"
    assert decide(Observed(**o)).hold == {"migrations", "application", "workers"}
    o["database_ready"] = True
    assert decide(Observed(**o, migrations="Running")).step == "Migrations"
    assert decide(Observed(**o, migrations="Running")).hold == {"application", "workers"}
    d = decide(Observed(**o))
    assert (d.step, d.hold) == ("Application", {"workers"})
    o["application_ready"] = True
    d = decide(Observed(**o))
    assert (d.step, d.hold) == ("Workers", set())
    d = decide(Observed(**o, workers_ready=True))
    assert (d.step, d.state, d.jobs) == ("Done", "Done", set())


@pytest.mark.parametrize("observed, step, reason", [
    (Observed(backups=True, backup_job="Failed", failures={"backup": ("BackoffLimitExceeded", "bucket gone")}),
     "Backup", "PreUpgradeBackupFailed"),
    (Observed(backups=False, check_job="Failed", failures={"check": ("Error", "Config is missing server_name")}),
     "CheckConfig", "ConfigCheckFailed"),
    (Observed(backups=False, check_job="Complete", database_ready=True, migrations="Failed",
              failures={"migrations": ("BackoffLimitExceeded", "")}), "Migrations", "MigrationFailed"),
    (Observed(backups=False, check_job="Complete", database_ready=True,
              failures={"application": ("DatabaseSchemaTooNew", "Deployment/synapse: ...")}),
     "Application", "DatabaseSchemaTooNew"),
    (Observed(backups=False, check_job="Complete",
              failures={"database": ("ImagePullBackOff", "StatefulSet/matrix-postgres: ...")}),
     "Database", "ImagePullBackOff"),
    (Observed(backups=False, check_job="Complete", database_ready=True, application_ready=True,
              failures={"workers": ("CrashLoopBackOff", "StatefulSet/synapse-sync: ...")}),
     "Workers", "CrashLoopBackOff"),
])
def test_a_failed_step_stops_with_its_reason_and_holds_what_follows(observed, step, reason):
    d = decide(observed)
    assert (d.step, d.state, d.reason) == (step, "Failed", reason)
    later = {"Backup": ALL, "CheckConfig": ALL, "Database": {"migrations", "application", "workers"},
             "Migrations": {"application", "workers"}, "Application": {"workers"}, "Workers": set()}
    assert d.hold == later[step]
    if step == "CheckConfig":
        assert "Config is missing server_name" in d.message and "previous version keeps serving" in d.message


@pytest.fixture(scope="module")
def rendered():
    suite, clouds = load_example("two-countries")
    suite = suite.model_copy(deep=True)
    suite.spec.backups.enabled = False
    return render_suite(suite, clouds, {}, {}).manifests


def test_categories_of_the_rendered_objects(rendered):
    by = {(o["kind"], o["metadata"]["name"]): category(o) for o in rendered}
    assert by[("StatefulSet", "matrix-postgres")] == "database"
    assert by[("Deployment", "synapse")] == "application"
    assert by[("ConfigMap", "synapse")] is None and by[("Service", "synapse")] is None
    assert any(k[0] == "Job" and k[1].startswith("docs-migrate-") and v == "migrations" for k, v in by.items())
    worker = {"kind": "StatefulSet", "metadata": {"name": "synapse-sync", "labels": {
        "sovereignsuite.io/synapse-worker": "sync"}}}
    from sovereign_suite.components.matrix.workers import WORKER_LABEL
    worker["metadata"]["labels"] = {WORKER_LABEL: "sync"}
    assert category(worker) == "workers"


def test_the_check_job_runs_the_new_image_on_the_rendered_config(rendered):
    synapse = next(o for o in rendered if o["kind"] == "Deployment" and o["metadata"]["name"] == "synapse")
    job = check_job(synapse, "synapse-check-config-x", {"app": "check"})
    pod = job["spec"]["template"]["spec"]
    main = next(c for c in pod["containers"] if c["name"] == "synapse")
    want = next(c for c in synapse["spec"]["template"]["spec"]["containers"] if c["name"] == "synapse")
    assert main["image"] == want["image"]
    assert main["command"][:3] == ["python3", "-m", "synapse.config"] and main["command"][3:] == want["command"][3:]
    assert not any(k in main for k in ("startupProbe", "readinessProbe", "livenessProbe", "ports"))
    assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == 0
    assert pod["initContainers"] == synapse["spec"]["template"]["spec"]["initContainers"]  # writes the db config
    media = next(v for v in pod["volumes"] if v["name"] == "media")
    assert "persistentVolumeClaim" not in media  # the running Synapse holds the ReadWriteOnce media volume
    # never selected by the Synapse Service nor counted as its Deployment's pod
    assert not synapse["spec"]["selector"]["matchLabels"].items() <= job["spec"]["template"]["metadata"]["labels"].items()


def test_the_backup_job_is_the_cronjobs_template():
    cron = {"kind": "CronJob", "metadata": {"name": "backup", "namespace": "s-fr"},
            "spec": {"schedule": "0 2 * * *", "jobTemplate": {"metadata": {"labels": {"a": "b"}},
                                                              "spec": {"backoffLimit": 1, "template": {"spec": {}}}}}}
    job = backup_job(cron, "upgrade-backup-x", {"c": "d"})
    assert job["kind"] == "Job" and job["metadata"]["namespace"] == "s-fr"
    assert job["spec"] == cron["spec"]["jobTemplate"]["spec"] and job["metadata"]["labels"] == {"a": "b", "c": "d"}


def test_job_names_follow_the_move(rendered):
    a = job_suffix("2024.01", "2026.12", rendered)
    assert a == job_suffix("2024.01", "2026.12", list(reversed(rendered)))
    assert a != job_suffix("2025.01", "2026.12", rendered)
    other = [dict(o) for o in rendered]
    synapse = next(o for o in other if o["kind"] == "Deployment" and o["metadata"]["name"] == "synapse")
    synapse["spec"] = {**synapse["spec"], "template": {"spec": {"containers": [{"image": "other:1"}]}}}
    assert job_suffix("2024.01", "2026.12", other) != a


# the text Synapse v1.99.0 printed when it met a database v1.163.2 had migrated (tests/test_synapse_upgrade_real.py
# runs both for real); raised in synapse/storage/prepare_database.py, _upgrade_existing_database
REFUSAL = ('  File "/usr/local/lib/python3.11/site-packages/synapse/storage/prepare_database.py", line 390, in '
           '_upgrade_existing_database\n    raise ValueError(\nValueError: Cannot use this database as it is too '
           'new for the server to understand\n')


def test_the_schema_refusal_is_recognised():
    cause = classify(REFUSAL)
    assert cause is not None and cause.reason == "DatabaseSchemaTooNew"
    assert classify("psycopg2.OperationalError: password authentication failed") is None
    assert classify(None) is None
    worker = classify("Expected database schema version 94 but got 83: run the main synapse process to upgrade")
    assert worker is not None and worker.reason == "DatabaseNotMigrated"


def test_a_crash_loop_on_a_newer_schema_is_reported_as_such():
    pod = {"metadata": {"name": "synapse-abc"},
           "status": {"containerStatuses": [{"name": "synapse", "waiting": {"reason": "CrashLoopBackOff"},
                                             "lastTerminated": {"exitCode": 1, "reason": "Error",
                                                                "message": REFUSAL}}]}}
    reason, message = container_reason([pod])
    assert reason == "DatabaseSchemaTooNew"
    assert "newer Synapse migrated it" in message and "Cannot use this database" in message


def _release_suite(release: str):
    from sovereign_suite.api.validation import parse_suite

    from .helpers import example_dict

    doc = example_dict("two-countries")
    doc["spec"]["release"] = release
    return parse_suite(doc)


def test_the_release_record_moves_only_once_the_release_serves():
    from sovereign_suite.reconcile.rollout_pass import release_record

    old = {"name": "2024.01", "synapseSchemaVersion": 83, "synapseCompatVersion": 83,
           "postgresMajor": {"matrix": 17, "docs": 17}}
    suite = _release_suite("2026.12")
    tenant = suite.spec.tenants[0]
    running = {"fromRelease": "2024.01", "toRelease": "2026.12", "step": "Application", "state": "Running"}
    assert release_record(suite, tenant, old, True, running) == old  # mid-rollout
    assert release_record(suite, tenant, old, False, None) == old  # not serving
    assert release_record(suite, tenant, old, True, None) == old  # a move no rollout rolled (e.g. paused)
    done = release_record(suite, tenant, old, True, {**running, "step": "Done", "state": "Done"})
    assert done == {"name": "2026.12", "synapseSchemaVersion": 94, "synapseCompatVersion": 84,
                    "postgresMajor": {"matrix": 17, "docs": 17}}
    # a new tenant is recorded once ready; a database keeps the compat version the newest Synapse wrote
    assert release_record(suite, tenant, None, True, None)["name"] == "2026.12"
    back = release_record(_release_suite("2024.01"), tenant, {**done, "name": "2024.01"}, True, None)
    assert (back["synapseSchemaVersion"], back["synapseCompatVersion"]) == (94, 84)


def test_plan_adds_the_jobs_and_holds_the_workloads_of_an_upgrading_tenant():
    """rollout_pass.plan over the rendered objects and an empty live view: the Backup step (backups configured) adds
    the backup Job and holds every workload; a tenant already on its release is left alone."""
    from sovereign_suite.api.backups import ObjectStorage
    from sovereign_suite.reconcile.converge import stamp
    from sovereign_suite.reconcile.problems import ObjectKey
    from sovereign_suite.reconcile.rollout_pass import plan

    suite, clouds = load_example("two-countries")
    suite = suite.model_copy(deep=True)
    suite.spec.backups.enabled = True
    suite.spec.backups.encryption_recipient_secret_ref = None
    suite.spec.backups.include.secrets = False
    for c in clouds.values():
        c.spec.object_storage = ObjectStorage(endpoint="https://s3.example.test", bucket="backups",
                                              credentials_secret_ref="s3")
    desired = [stamp(o, "uid") for o in render_suite(suite, clouds, {}, {}).manifests]
    fr, de = (f"{suite.name}-{t.country.lower()}" for t in suite.spec.tenants)
    status = {"tenants": [{"namespace": fr, "release": {"name": "2024.01", "synapseCompatVersion": 83}},
                          {"namespace": de, "release": {"name": "2026.12", "synapseCompatVersion": 84}}]}
    ctxs = {c.tenant.country: c for c in build_contexts(suite, clouds)}
    out, held, upgrades = plan(suite, desired, {}, status, "uid", served=lambda ns: True,
                               pods_of=lambda ns, match: [], job_pods=lambda ns, job: [],
                               labels=lambda t, comp, part: ctxs[t.country].labels(comp, part), now=NOW)
    added = [o for o in out if o not in desired]
    assert [(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"][:15]) for o in added] == \
        [("Job", fr, "upgrade-backup-")]
    assert upgrades == {fr: {"fromRelease": "2024.01", "toRelease": "2026.12", "step": "Backup", "state": "Running",
                             "reason": "Upgrading", "message": "taking the backup before the upgrade",
                             "since": "2026-12-03T23:00:00Z"}}
    assert ObjectKey("apps", "Deployment", fr, "synapse") in held
    assert ObjectKey("apps", "StatefulSet", fr, "matrix-postgres") in held
    # and the configuration they read stays at the previous release with them (reconcile/rollout_config.py)
    assert ObjectKey.of({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "synapse", "namespace": fr}}) in held
    # Docs' migrations of the new backend image wait for their step: never on a database not backed up yet
    migrate = [o for o in desired if o["metadata"].get("namespace") == fr and category(o) == "migrations"]
    assert migrate and all(ObjectKey.of(o) in held for o in migrate)
    assert ObjectKey("apps", "Deployment", fr, "docs-backend") in held
    assert not any(k.namespace == de for k in held)  # the German tenant is on its release already


# Synapse v1.163.2's ConfigError for open registration without verification (synapse/config/registration.py), as
# its checker writes it to stderr (synapse/config/__main__.py): what a failed check Job's pod leaves as its
# termination message (the tail of its log: terminationMessagePolicy FallbackToLogsOnError)
CONFIG_ERROR = ("You have enabled open registration without any verification. This is a known vector for spam and "
                "abuse. If you would like to allow public registration, please consider adding email, captcha, or "
                "token-based verification. Otherwise this check can be removed by setting the "
                "`enable_registration_without_verification` config option to `true`.")


def _failed_job(ns: str, name: str) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": ns, "uid": "uid-2"},
            "status": {"failed": 1, "conditions": [
                {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                 "message": "Job has reached the specified backoff limit"}]}}


def _failed_pod(ns: str, job: str, message: str, uid: str = "uid-2") -> dict:
    """A Job's pod (restartPolicy Never) whose container exited 1, as the kubelet writes it: the exit in
    state.terminated (no restart, so no lastState); labelled by the Job controller with its Job's name and uid."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{job}-{uid}", "namespace": ns,
                         "labels": {"app.kubernetes.io/managed-by": "sovereign-suite-operator", "job-name": job,
                                    "batch.kubernetes.io/job-name": job,
                                    "batch.kubernetes.io/controller-uid": uid}},
            "spec": {"nodeName": "kwok-node-0", "containers": [{"name": "synapse"}]},
            "status": {"phase": "Failed", "containerStatuses": [
                {"name": "synapse", "ready": False, "restartCount": 0, "lastState": {},
                 "state": {"terminated": {"exitCode": 1, "reason": "Error", "message": message}}}]}}


def _job_pods(pods: list[dict]):
    """Pass.job_pods over ``pods``: the Job's own pods, by the uid label the Job controller sets."""
    return lambda ns, job: [p for p in pods if p["metadata"]["labels"].get("batch.kubernetes.io/controller-uid")
                            == job["metadata"]["uid"]]


def test_a_failed_check_reports_the_checkers_words_from_its_pod(rendered):
    """The check Job's pod stripped as the operator's caches strip pods (strip_pod): its one exit
    (state.terminated) is kept, so the rollout says what the new Synapse refused instead of the Job's
    BackoffLimitExceeded."""
    from sovereign_suite.reconcile.cache import strip_pod
    from sovereign_suite.reconcile.problems import ObjectKey
    from sovereign_suite.reconcile.rollout import CHECK_JOB_PREFIX
    from sovereign_suite.reconcile.rollout_pass import observe_tenant

    ns = next(o for o in rendered if o["kind"] == "Deployment" and o["metadata"]["name"] == "synapse")[
        "metadata"]["namespace"]
    objs = [o for o in rendered if o["metadata"].get("namespace") == ns]
    name = CHECK_JOB_PREFIX + "abc"
    live = {ObjectKey("batch", "Job", ns, name): _failed_job(ns, name)}
    # the first run's pod, of a Job deleted to run again (still there: deletion is in the background)
    pods = [strip_pod(_failed_pod(ns, name, "an earlier run's words", uid="uid-1")),
            strip_pod(_failed_pod(ns, name, "\n" + CONFIG_ERROR + "\n"))]
    seen = observe_tenant(ns, objs, live, False, "abc", lambda n, match: [], _job_pods(pods))
    d = decide(seen)
    assert (d.step, d.state, d.reason) == ("CheckConfig", "Failed", "ConfigCheckFailed")
    assert "(Error: You have enabled open registration without any verification." in d.message, d.message
    assert "BackoffLimitExceeded" not in d.message and "earlier run" not in d.message
    assert d.hold == ALL

    # a member's pod keeps no log text: the exit's reason and code are what is said, the Job's condition otherwise
    pods = [strip_pod(_failed_pod(ns, name, CONFIG_ERROR), log_text=False)]
    d = decide(observe_tenant(ns, objs, live, False, "abc", lambda n, match: [], _job_pods(pods)))
    assert "(Error: )" in d.message and "open registration" not in d.message
    d = decide(observe_tenant(ns, objs, live, False, "abc", lambda n, match: [], _job_pods([])))
    assert "(BackoffLimitExceeded: Job has reached the specified backoff limit)" in d.message


def test_a_failed_migration_reports_the_migrations_words(rendered):
    """Docs' migrate Job failing after the check: the Migrations step fails with the pod's last words and the
    applications and workers stay held."""
    from sovereign_suite.reconcile.cache import strip_pod
    from sovereign_suite.reconcile.problems import ObjectKey
    from sovereign_suite.reconcile.rollout import CHECK_JOB_PREFIX
    from sovereign_suite.reconcile.rollout_pass import observe_tenant

    migrate = next(o for o in rendered if category(o) == "migrations")
    ns, name = migrate["metadata"]["namespace"], migrate["metadata"]["name"]
    objs = [o for o in rendered if o["metadata"].get("namespace") == ns and category(o) != "database"]
    check = CHECK_JOB_PREFIX + "abc"
    live = {ObjectKey("batch", "Job", ns, name): _failed_job(ns, name),
            ObjectKey("batch", "Job", ns, check): {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}}
    words = "django.db.utils.ProgrammingError: relation \"core_document\" does not exist"
    pods = [strip_pod(_failed_pod(ns, name, words))]
    d = decide(observe_tenant(ns, objs, live, False, "abc", lambda n, match: [], _job_pods(pods)))
    assert (d.step, d.state, d.reason) == ("Migrations", "Failed", "MigrationFailed")
    assert d.message == f"Error: {words}"
    assert d.hold == {"application", "workers"}


def test_a_stuck_application_fails_its_step_and_a_rolled_one_does_not(rendered):
    """Synapse's new pod crash-looping (an error the operator does not know): the Application step Failed with the
    kubelet's reason and the container's last words; the workers' step is held. Once the Deployment has rolled out
    (applied and ready), its pods are not read: a step that is done is not failed."""
    from sovereign_suite.reconcile.cache import strip_pod
    from sovereign_suite.reconcile.converge import ANN_HASH, stamp
    from sovereign_suite.reconcile.problems import ObjectKey
    from sovereign_suite.reconcile.rollout import CHECK_JOB_PREFIX
    from sovereign_suite.reconcile.rollout_pass import observe_tenant

    synapse = stamp(next(o for o in rendered if o["kind"] == "Deployment" and o["metadata"]["name"] == "synapse"),
                    "uid")
    ns = synapse["metadata"]["namespace"]
    objs = [synapse]
    live = {ObjectKey("batch", "Job", ns, CHECK_JOB_PREFIX + "abc"):
            {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}}
    words = "ImportError: libpq.so.5: cannot open shared object file"
    pod = {"metadata": {"name": "synapse-7d9f-x", "namespace": ns,
                        "labels": {**synapse["spec"]["template"]["metadata"]["labels"]}},
           "spec": {"containers": [{"name": "synapse"}]},
           "status": {"phase": "Running", "containerStatuses": [
               {"name": "synapse", "ready": False, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": words}}}]}}
    pods = [strip_pod(pod)]

    def pods_of(n, match):
        return [p for p in pods if match.items() <= p["metadata"]["labels"].items()]

    d = decide(observe_tenant(ns, objs, live, False, "abc", pods_of, lambda n, job: []))
    assert (d.step, d.state, d.reason) == ("Application", "Failed", "CrashLoopBackOff")
    assert d.message.startswith("Deployment/synapse: pod synapse-7d9f-x, container synapse: CrashLoopBackOff")
    assert words in d.message and d.hold == {"workers"}

    # rolled out: applied (its hash) and every replica updated and ready; the same pod is not read any more
    live[ObjectKey.of(synapse)] = {**synapse, "metadata": {**synapse["metadata"], "generation": 2},
                                   "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
                                              "readyReplicas": 1, "availableReplicas": 1}}
    assert live[ObjectKey.of(synapse)]["metadata"]["annotations"][ANN_HASH]
    d = decide(observe_tenant(ns, objs, live, False, "abc", pods_of, lambda n, job: []))
    assert (d.step, d.state) == ("Done", "Done")


def test_step_since_is_kept_for_the_same_move_and_step_only():
    from sovereign_suite.reconcile.rollout import Decision, step_since

    d = Decision("Database", "Running")
    old = {"fromRelease": "2024.01", "toRelease": "2026.12", "step": "Database", "since": "2026-12-03T22:00:00Z"}
    assert step_since(d, old, "2024.01", "2026.12", NOW) == "2026-12-03T22:00:00Z"
    assert step_since(Decision("Application", "Running"), old, "2024.01", "2026.12", NOW) == "2026-12-03T23:00:00Z"
    assert step_since(d, old, "2024.01", "2027.06", NOW) == "2026-12-03T23:00:00Z"  # another move
    assert step_since(d, None, "2024.01", "2026.12", NOW) == "2026-12-03T23:00:00Z"
    # a failed step keeps its start: the deadline does not restart when a stuck pod recovers and fails again
    assert step_since(d, {**old, "state": "Failed"}, "2024.01", "2026.12", NOW) == "2026-12-03T22:00:00Z"


@pytest.mark.parametrize("step", ["Database", "Migrations", "Application", "Workers"])
def test_a_workload_step_past_its_deadline_fails_naming_what_it_waits_for(step):
    from sovereign_suite.reconcile.rollout import Decision, past_deadline

    d = Decision(step, "Running", "Upgrading", "rolling", frozenset({"check"}), frozenset({"workers"}))
    ten_min_ago = (NOW - timedelta(seconds=600)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert past_deadline(d, ten_min_ago, NOW, 600, "X") == d  # not past it yet
    late = past_deadline(d, ten_min_ago, NOW + timedelta(seconds=1), 600, "StatefulSet/matrix-postgres (0/1 ready)")
    assert (late.step, late.state, late.reason) == (step, "Failed", "ProgressDeadlineExceeded")
    assert late.message == (f"step {step} not done 601 s after it began (deadline 600 s); waiting for "
                            "StatefulSet/matrix-postgres (0/1 ready)")
    assert (late.jobs, late.hold) == (d.jobs, d.hold)  # what follows stays held


@pytest.mark.parametrize("d", [("Backup", "Running"), ("CheckConfig", "Running"), ("Database", "Failed"),
                               ("Done", "Done")])
def test_the_deadline_leaves_job_steps_failures_and_done_alone(d):
    from sovereign_suite.reconcile.rollout import Decision, past_deadline

    dec = Decision(*d)
    assert past_deadline(dec, "2026-12-01T00:00:00Z", NOW, 600, "X") == dec


def test_plan_fails_a_database_step_past_its_deadline_with_the_schedulers_words():
    """The database's StatefulSet applied at the new image, its pod Pending (no node fits), the step begun 11 min
    ago (the previous pass's entry): Failed ProgressDeadlineExceeded with the StatefulSet's ready count and the
    scheduler's message; the applications stay held. The same pod 5 min in: still Running, its start kept."""
    from sovereign_suite.reconcile.converge import stamp
    from sovereign_suite.reconcile.problems import ObjectKey
    from sovereign_suite.reconcile.rollout import CHECK_JOB_PREFIX, job_suffix
    from sovereign_suite.reconcile.rollout_pass import plan

    suite, clouds = load_example("two-countries")
    desired = [stamp(o, "uid") for o in render_suite(suite, clouds, {}, {}).manifests]
    fr = f"{suite.name}-fr"
    objs = [o for o in desired if o["metadata"].get("namespace") == fr]
    pg = next(o for o in objs if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "matrix-postgres")
    live = {ObjectKey("batch", "Job", fr, CHECK_JOB_PREFIX + job_suffix("2024.01", "2026.12", objs)):
            {"status": {"conditions": [{"type": "Complete", "status": "True"}]}},
            ObjectKey.of(pg): {**pg, "metadata": {**pg["metadata"], "generation": 2},
                               "status": {"observedGeneration": 2, "replicas": 1, "readyReplicas": 0}}}
    labels = pg["spec"]["selector"]["matchLabels"]
    unschedulable = "0/3 nodes are available: 3 Insufficient memory."
    pod = {"metadata": {"name": "matrix-postgres-0", "namespace": fr, "labels": labels},
           "status": {"phase": "Pending", "conditions": [
               {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable}]}}

    def pods_of(ns, match):
        return [pod] if ns == fr and match.items() <= labels.items() else []

    def run(since: str):
        status = {"tenants": [{"namespace": fr, "release": {"name": "2024.01"},
                               "upgrade": {"fromRelease": "2024.01", "toRelease": "2026.12", "step": "Database",
                                           "state": "Running", "since": since}}]}
        return plan(suite, desired, live, status, "uid", served=lambda ns: ns == fr, pods_of=pods_of,
                    job_pods=lambda ns, job: [], labels=lambda t, comp, part: {}, now=NOW, deadline=600)

    _, held, upgrades = run("2026-12-03T22:49:00Z")
    entry = upgrades[fr]
    assert (entry["step"], entry["state"], entry["reason"]) == ("Database", "Failed", "ProgressDeadlineExceeded")
    # Docs' database is not in the live view at all: named as such
    assert entry["message"] == ("step Database not done 660 s after it began (deadline 600 s); waiting for "
                                "StatefulSet/docs-postgres (not applied yet), "
                                f"StatefulSet/matrix-postgres (0/1 ready): Unschedulable: {unschedulable}")
    assert entry["since"] == "2026-12-03T22:49:00Z"
    assert ObjectKey("apps", "Deployment", fr, "synapse") in held
    _, _, upgrades = run("2026-12-03T22:55:00Z")
    assert (upgrades[fr]["state"], upgrades[fr]["since"]) == ("Running", "2026-12-03T22:55:00Z")
