"""Which ConfigMaps a release move holds with their workloads, and the check Job's copies
(reconcile/rollout_config.py): pure, over the rendered two-country example with Synapse workers."""

from __future__ import annotations

import pytest

from sovereign_suite.reconcile.problems import ObjectKey
from sovereign_suite.reconcile.rollout import category, check_job
from sovereign_suite.reconcile.rollout_config import configmaps_read, held_configuration, with_config_copies
from sovereign_suite.render import render_suite

from .helpers import load_example


@pytest.fixture(scope="module")
def fr_objs():
    suite, clouds = load_example("two-countries")
    suite = suite.model_copy(deep=True)
    suite.spec.backups.enabled = False
    suite.spec.components.matrix.workers.size = "small"
    objs = render_suite(suite, clouds, {}, {}).manifests
    return [o for o in objs if o["metadata"].get("namespace") == f"{suite.name}-fr"]


def _get(objs, kind, name):
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def test_what_the_synapse_processes_read(fr_objs):
    assert "synapse" in configmaps_read(_get(fr_objs, "Deployment", "synapse"))
    workers = [o for o in fr_objs if o["kind"] == "StatefulSet" and category(o) == "workers"]
    assert workers and all({"synapse", "synapse-workers"} <= configmaps_read(w) for w in workers)  # projected
    env = {"kind": "Job", "spec": {"template": {"spec": {"containers": [{
        "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "a", "key": "k"}}}, {"name": "B", "value": "b"}],
        "envFrom": [{"configMapRef": {"name": "b"}}, {"secretRef": {"name": "s"}}]}]}}}}
    assert configmaps_read(env) == {"a", "b"}


def test_a_configmap_moves_with_the_first_workload_that_reads_it(fr_objs):
    def held(hold):
        return {k.name for k in held_configuration(fr_objs, hold)}

    everything = held({"database", "migrations", "application", "workers"})  # Backup, CheckConfig
    assert {"synapse", "synapse-workers", "element-web"} <= everything
    # Synapse's main process (Application) and its workers read `synapse`: it moves at the Application step;
    # the workers' own ConfigMap waits for theirs
    assert held({"workers"}) == {"synapse-workers"}
    assert held(set()) == set()
    # a ConfigMap no workload reads, or that a workload no step rolls reads, is never held
    orphan = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nobody", "namespace": "x"}, "data": {}}
    cron = {"kind": "CronJob", "metadata": {"name": "c", "namespace": "x"}, "spec": {"jobTemplate": {"spec": {
        "template": {"spec": {"volumes": [{"name": "v", "configMap": {"name": "synapse"}}]}}}}}}
    assert "nobody" not in {k.name for k in held_configuration(fr_objs + [orphan], everything)}
    assert "synapse" not in {k.name for k in held_configuration(fr_objs + [cron], everything)}
    assert all(isinstance(k, ObjectKey) and k.kind == "ConfigMap" for k in held_configuration(fr_objs, everything))


def test_the_check_job_reads_copies_of_the_new_configuration(fr_objs):
    synapse = _get(fr_objs, "Deployment", "synapse")
    configmaps = {o["metadata"]["name"]: o for o in fr_objs if o["kind"] == "ConfigMap"}
    job = check_job(synapse, "synapse-check-config-abc", {"app": "check"})
    out = with_config_copies(job, configmaps)
    copies, new_job = out[:-1], out[-1]
    assert [c["metadata"]["name"] for c in copies] == ["synapse-check-config-abc-synapse"]
    assert copies[0]["data"] == configmaps["synapse"]["data"]
    assert copies[0]["metadata"]["labels"] == {"app": "check"}  # pruned with the Job (not the tenant's own)
    vols = {v["name"]: v for v in new_job["spec"]["template"]["spec"]["volumes"]}
    names = {v["configMap"]["name"] for v in vols.values() if v.get("configMap")}
    assert "synapse-check-config-abc-synapse" in names and "synapse" not in names
    # the Job given is not changed, and what is not a rendered ConfigMap is read as it is
    assert "synapse" in {v["configMap"]["name"] for v in job["spec"]["template"]["spec"]["volumes"]
                         if v.get("configMap")}
    assert with_config_copies(job, {}) == [job]
