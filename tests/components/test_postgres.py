"""The shared Postgres helper: embedded StatefulSet, CloudNativePG Cluster, external server."""

from __future__ import annotations

import kubernetes_validate
import pytest

from sovereign_suite.api.models import Postgres, SecretKeyRef, resources
from sovereign_suite.api.validation import InputError
from sovereign_suite.components.base import SecretKey, build_contexts
from sovereign_suite.components.postgres import Database, image_tag, render_postgres
from sovereign_suite.render import phase_of

from ..helpers import K8S_SCHEMA_VERSION, load_example, pod_specs


def validate(obj):
    # kubernetes-validate knows the built-in kinds only: the CloudNativePG Cluster (a CRD) is checked by hand below.
    if obj["apiVersion"].startswith("postgresql.cnpg.io/"):
        return
    kubernetes_validate.validate(obj, K8S_SCHEMA_VERSION, strict=True)


def contexts(example="four-countries", clouds_patch=None):
    suite, clouds = load_example(example)
    if clouds_patch:
        clouds = {name: clouds_patch(c.model_copy(deep=True)) for name, c in clouds.items()}
    return build_contexts(suite, clouds)


@pytest.fixture(scope="module")
def fr():
    return contexts()[0]


def by_kind(objs):
    return {o["kind"]: o for o in objs}


def test_embedded_objects_and_connection(fr):
    objs, secrets, db = render_postgres(fr, "matrix", Postgres())
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("ConfigMap", "matrix-postgres-hba"),
        ("Service", "matrix-postgres"),
        ("StatefulSet", "matrix-postgres"),
    ]
    for o in objs:
        validate(o)
        assert o["metadata"]["namespace"] == "eu-workplace-fr"
        assert o["metadata"]["labels"]["app.kubernetes.io/component"] == "postgres"
        assert o["metadata"]["labels"]["sovereignsuite.io/component"] == "matrix"
    assert db == Database(
        host="matrix-postgres",
        port=5432,
        name="matrix",
        user="matrix",
        password_secret="matrix-postgres",
        password_key="password",
        ssl_mode="verify-full",  # the server accepts TLS only; clients verify it with the tenant's CA
        ca_secret="tenant-tls",
        ca_key="ca.crt",
    )
    [secret] = secrets
    assert (secret.name, secret.namespace, secret.component) == ("matrix-postgres", "eu-workplace-fr", "matrix")
    assert secret.keys == {"password": SecretKey("random", 32)}


def test_embedded_statefulset_is_applied_in_the_data_phase(fr):
    objs, _, _ = render_postgres(fr, "matrix", Postgres())
    sts = by_kind(objs)["StatefulSet"]
    assert phase_of(sts) == "data"
    assert phase_of(by_kind(objs)["Service"]) == "config"


def test_embedded_pod(fr):
    pg = Postgres(storage="42Gi", resources=resources({"cpu": "1", "memory": "1Gi"}, {"cpu": "3", "memory": "3Gi"}))
    objs, _, _ = render_postgres(fr, "docs", pg)
    sts = by_kind(objs)["StatefulSet"]
    svc = by_kind(objs)["Service"]
    assert sts["metadata"]["name"] == "docs-postgres"
    assert sts["spec"]["replicas"] == 1
    assert sts["spec"]["serviceName"] == svc["metadata"]["name"]
    assert svc["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]
    assert "app.kubernetes.io/version" not in svc["spec"]["selector"]
    assert sts["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"] == image_tag(pg.image)

    [pod] = pod_specs(sts)
    assert pod["affinity"] == fr.region_affinity()
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"
    ][0] == {"key": "topology.kubernetes.io/region", "operator": "In", "values": ["eu-west-2"]}
    assert pod["securityContext"]["runAsUser"] == 999 and pod["securityContext"]["fsGroup"] == 999
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    [c] = pod["containers"]
    assert c["image"] == "docker.io/library/postgres:17.6-bookworm"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "3", "memory": "3Gi"}}
    env = {e["name"]: e for e in c["env"]}
    assert env["POSTGRES_INITDB_ARGS"]["value"] == "--lc-collate=C --lc-ctype=C --encoding=UTF8"
    assert env["POSTGRES_USER"]["value"] == "docs" and env["POSTGRES_DB"]["value"] == "docs"
    assert "POSTGRES_PASSWORD" not in env  # a file of the Secret instead (tests/test_secret_files.py)
    assert env["POSTGRES_PASSWORD_FILE"]["value"] == "/etc/postgres-password/password"
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert env["PGDATA"]["value"].startswith("/var/lib/postgresql/data/")
    assert mounts["/var/lib/postgresql/data"] == "data"
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path in ("/var/run/postgresql", "/tmp"):
        assert "emptyDir" in volumes[mounts[path]]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["exec"]["command"][0] == "pg_isready"
    [claim] = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "42Gi"
    assert claim["spec"]["storageClassName"] == "standard"
    assert "app.kubernetes.io/version" not in claim["metadata"]["labels"]  # immutable after creation


def test_two_components_never_share_a_selector(fr):
    matrix_sts = by_kind(render_postgres(fr, "matrix", Postgres())[0])["StatefulSet"]
    docs_sts = by_kind(render_postgres(fr, "docs", Postgres())[0])["StatefulSet"]
    m, d = matrix_sts["spec"]["selector"]["matchLabels"], docs_sts["spec"]["selector"]["matchLabels"]
    assert m != d
    assert not set(m.items()) <= set(docs_sts["spec"]["template"]["metadata"]["labels"].items())


def test_embedded_without_storage_class():
    def no_class(cloud):
        cloud.spec.storage_class = None
        return cloud

    ctx = contexts(clouds_patch=no_class)[0]
    sts = by_kind(render_postgres(ctx, "matrix", Postgres())[0])["StatefulSet"]
    assert "storageClassName" not in sts["spec"]["volumeClaimTemplates"][0]["spec"]
    validate(sts)


def test_custom_database_and_user(fr):
    objs, _, db = render_postgres(fr, "matrix", Postgres(database="synapse", user="synapse_user"))
    assert (db.name, db.user, db.ssl_mode) == ("synapse", "synapse_user", "verify-full")
    env = {e["name"]: e.get("value") for e in pod_specs(by_kind(objs)["StatefulSet"])[0]["containers"][0]["env"]}
    assert env["POSTGRES_DB"] == "synapse" and env["POSTGRES_USER"] == "synapse_user"


@pytest.mark.parametrize("db_mode", ["embedded", "cloudnative-pg"])
@pytest.mark.parametrize("mode", ["disable", "prefer", "require", "verify-ca"])
def test_tenant_databases_refuse_weaker_ssl_modes(fr, db_mode, mode):
    """The embedded and CloudNativePG databases accept TLS only and the suite's clients verify them: a weaker
    sslMode is refused, naming the field; verify-full (or nothing) is accepted."""
    with pytest.raises(InputError) as err:
        render_postgres(fr, "matrix", Postgres(mode=db_mode, ssl_mode=mode))
    assert [p.path for p in err.value.problems] == ["spec.components.matrix.postgres.sslMode"]
    assert "TLS only" in err.value.problems[0].message
    assert render_postgres(fr, "matrix", Postgres(mode=db_mode, ssl_mode="verify-full"))[2].ssl_mode == "verify-full"


def test_cloudnative_pg_cluster(fr):
    pg = Postgres(mode="cloudnative-pg", instances=3, storage="50Gi")
    objs, secrets, db = render_postgres(fr, "matrix", pg)
    [cluster] = [o for o in objs if o["kind"] == "Cluster"]
    assert [o["kind"] for o in objs if o is not cluster] == ["NetworkPolicy"]  # test_postgres_network.py
    assert secrets == []  # CNPG generates the owner's Secret itself
    assert (cluster["apiVersion"], cluster["kind"]) == ("postgresql.cnpg.io/v1", "Cluster")
    assert cluster["metadata"]["name"] == "matrix-postgres"
    assert cluster["metadata"]["namespace"] == "eu-workplace-fr"
    assert phase_of(cluster) == "data"
    spec = cluster["spec"]
    assert spec["instances"] == 3
    assert spec["storage"] == {"size": "50Gi", "storageClass": "standard"}
    assert spec["bootstrap"]["initdb"] == {
        "database": "matrix",
        "owner": "matrix",
        "encoding": "UTF8",
        "localeCollate": "C",
        "localeCType": "C",
    }
    assert spec["affinity"]["nodeAffinity"] == fr.region_affinity()["nodeAffinity"]
    assert spec["resources"] == pg.resources.wire()
    # CNPG's own TLS: plaintext refused ahead of its default rule, clients verify its CA (Secret <cluster>-ca)
    assert spec["postgresql"] == {"pg_hba": ["hostnossl all all all reject"]}
    assert db == Database("matrix-postgres-rw", 5432, "matrix", "matrix", "matrix-postgres-app", "password",
                          "verify-full", "matrix-postgres-ca", "ca.crt")


def test_external(fr):
    pg = Postgres(
        mode="external",
        host="pg.internal.example.eu",
        port=6432,
        database="chat",
        user="chat_rw",
        password_secret_ref=SecretKeyRef(name="chat-db", key="pw"),
        ssl_mode="verify-full",
    )
    objs, secrets, db = render_postgres(fr, "matrix", pg)
    assert objs == [] and secrets == []
    assert db == Database("pg.internal.example.eu", 6432, "chat", "chat_rw", "chat-db", "pw", "verify-full")
    assert db.ca_secret is None  # the system's roots: the server's owner's CA


def test_external_keeps_prefer_by_default(fr):
    pg = Postgres(mode="external", host="pg.example.eu", password_secret_ref=SecretKeyRef(name="db", key="pw"))
    assert render_postgres(fr, "matrix", pg)[2].ssl_mode == "prefer"


def test_every_tenant_of_both_examples_validates():
    for example in ("two-countries", "four-countries"):
        for ctx in contexts(example):
            for component in ("matrix", "docs"):
                for pg in (Postgres(), Postgres(mode="cloudnative-pg")):
                    for o in render_postgres(ctx, component, pg)[0]:
                        validate(o)
                        assert o["metadata"]["namespace"] == ctx.namespace


def test_deterministic(fr):
    for pg in (Postgres(), Postgres(mode="cloudnative-pg", instances=2)):
        assert render_postgres(fr, "matrix", pg) == render_postgres(fr, "matrix", pg)


@pytest.mark.parametrize(
    "image, tag",
    [
        ("docker.io/library/postgres:17.6-bookworm", "17.6-bookworm"),
        ("registry:5000/postgres:17", "17"),
        ("registry:5000/postgres", None),
        ("postgres:17@sha256:" + "a" * 64, "17"),
    ],
)
def test_image_tag(image, tag):
    assert image_tag(image) == tag
