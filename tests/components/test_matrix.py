"""The Matrix renderer: Synapse, Element Web, the well-known files, and their database."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest
import yaml

from sovereign_suite.api.validation import InputError, parse_suite
from sovereign_suite.components import matrix, tenancy
from sovereign_suite.components.base import SecretKey, build_contexts
from sovereign_suite.render import phase_of

from ..helpers import K8S_SCHEMA_VERSION, example_dict, load_example, pod_specs, render_example, suite_with

FR_DOMAIN = "fr.workplace.example.eu"


def validate(obj):
    # kubernetes-validate knows the built-in kinds only; a CloudNativePG Cluster (CRD) is skipped.
    if obj["apiVersion"].startswith("postgresql.cnpg.io/"):
        return
    kubernetes_validate.validate(obj, K8S_SCHEMA_VERSION, strict=True)


def contexts(example="four-countries", suite=None):
    suite_, clouds = load_example(example)
    return build_contexts(suite or suite_, clouds)


def fr_context(suite=None):
    return contexts(suite=suite)[0]


def with_tenant_override(example, index, components):
    doc = example_dict(example)
    doc["spec"]["tenants"][index]["components"] = components
    return parse_suite(doc)


def objects(ctx):
    return {(o["kind"], o["metadata"]["name"]): o for o in matrix.render(ctx)}


def homeserver(objs):
    return yaml.safe_load(objs[("ConfigMap", "synapse")]["data"]["homeserver.yaml"])


def element_files(objs):
    return objs[("ConfigMap", "element-web")]["data"]


@pytest.fixture(scope="module")
def fr():
    return objects(fr_context())


# ---- every tenant, every object ------------------------------------------------------------------

@pytest.mark.parametrize("example", ["two-countries", "four-countries"])
def test_examples_render_and_validate(example):
    for ctx in contexts(example):
        objs = matrix.render(ctx)
        assert len({(o["kind"], o["metadata"]["name"]) for o in objs}) == len(objs)
        for o in objs:
            validate(o)
            assert o["metadata"]["namespace"] == ctx.namespace
            labels = o["metadata"]["labels"]
            assert labels["sovereignsuite.io/component"] == "matrix"
            assert labels["app.kubernetes.io/managed-by"] == "sovereign-suite-operator"
            assert labels["sovereignsuite.io/country"] == ctx.country
            selector = (o["spec"].get("selector") or {}) if "spec" in o else {}
            selector = selector.get("matchLabels", selector)
            assert "app.kubernetes.io/version" not in selector
        assert {(o["kind"], o["metadata"]["name"]) for o in objs} == {
            ("ConfigMap", "matrix-postgres-hba"),
            ("Service", "matrix-postgres"),
            ("StatefulSet", "matrix-postgres"),
            ("ConfigMap", "synapse"),
            ("PersistentVolumeClaim", "synapse-media"),
            ("Service", "synapse"),
            ("Deployment", "synapse"),
            ("Ingress", "synapse"),
            ("ConfigMap", "element-web"),
            ("Service", "element-web"),
            ("Deployment", "element-web"),
            ("PodDisruptionBudget", "element-web"),
            ("Ingress", "element-web"),
            ("Ingress", "matrix-well-known"),
        }


@pytest.mark.parametrize("example", ["two-countries", "four-countries"])
def test_pods_follow_the_rules(example):
    for ctx in contexts(example):
        for o in matrix.render(ctx):
            for pod in pod_specs(o):
                assert pod["affinity"] == ctx.region_affinity()
                assert pod["automountServiceAccountToken"] is False
                assert pod["enableServiceLinks"] is False
                assert pod["securityContext"]["runAsNonRoot"] is True
                assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
                volumes = {v["name"]: v for v in pod["volumes"]}
                volumes.update({t["metadata"]["name"]: t for t in o["spec"].get("volumeClaimTemplates", [])})
                for c in pod.get("initContainers", []) + pod["containers"]:
                    sc = c["securityContext"]
                    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
                    assert sc["readOnlyRootFilesystem"] is True
                    assert set(c["resources"]) == {"requests", "limits"}
                    assert {"cpu", "memory"} <= set(c["resources"]["requests"]) & set(c["resources"]["limits"])
                    for m in c["volumeMounts"]:
                        assert m["name"] in volumes
                    if c["volumeMounts"] and any(m["mountPath"] == "/tmp" for m in c["volumeMounts"]):
                        tmp = next(m["name"] for m in c["volumeMounts"] if m["mountPath"] == "/tmp")
                        assert "emptyDir" in volumes[tmp]


def test_apply_phases(fr):
    assert phase_of(fr[("StatefulSet", "matrix-postgres")]) == "data"
    assert phase_of(fr[("Deployment", "synapse")]) == "apps"
    assert phase_of(fr[("Ingress", "matrix-well-known")]) == "routing"


# ---- Synapse -------------------------------------------------------------------------------------

def test_homeserver_yaml(fr):
    hs = homeserver(fr)
    assert hs["server_name"] == FR_DOMAIN
    assert hs["public_baseurl"] == f"https://matrix.{FR_DOMAIN}/"
    assert hs["report_stats"] is False
    assert hs["enable_metrics"] is True
    assert hs["listeners"] == [
        {
            "port": 8008,
            "type": "http",
            "tls": False,
            "x_forwarded": True,
            "bind_addresses": ["::", "0.0.0.0"],
            "resources": [{"names": ["client", "federation"], "compress": False}],
        },
        {"port": 9001, "type": "metrics", "bind_addresses": ["0.0.0.0"]},
    ]
    assert hs["database"] == {
        "name": "psycopg2",
        "allow_unsafe_locale": False,
        "args": {
            "host": "matrix-postgres",
            "port": 5432,
            "dbname": "matrix",
            "user": "matrix",
            "sslmode": "verify-full",
            "sslrootcert": "/synapse/database-ca/ca.crt",
            "cp_min": 5,
            "cp_max": 10,
        },
    }
    assert hs["encryption_enabled_by_default_for_room_type"] == "invite"  # private and invite-only rooms
    assert hs["max_upload_size"] == "100M"
    assert hs["trusted_key_servers"] == [] and hs["suppress_key_server_warning"] is True
    assert hs["web_client_location"] == f"https://chat.{FR_DOMAIN}/"


def test_federation_whitelist_is_the_peers_and_extra_domains():
    four = contexts("four-countries")
    assert matrix.federation_whitelist(four[0]) == [
        "de.workplace.example.eu",
        "lu.workplace.example.eu",
        "matrix.org",
        "se.workplace.example.eu",
    ]
    assert matrix.federation_whitelist(four[3]) == [
        "de.workplace.example.eu",
        "fr.workplace.example.eu",
        "lu.workplace.example.eu",
        "matrix.org",
    ]
    two = contexts("two-countries")
    assert homeserver(objects(two[1]))["federation_domain_whitelist"] == ["fr.workplace.example.eu"]


def test_federation_disabled():
    suite = suite_with("four-countries", {"components": {"matrix": {"federation": {"enabled": False}}}})
    objs = objects(fr_context(suite))
    hs = homeserver(objs)
    assert hs["federation_domain_whitelist"] == []
    assert hs["listeners"][0]["resources"] == [{"names": ["client"], "compress": False}]
    files = element_files(objs)
    assert "matrix-server" not in files and "matrix-client" in files
    items = objs[("Deployment", "element-web")]["spec"]["template"]["spec"]["volumes"]
    assert {"key": "matrix-server", "path": "server"} not in next(v for v in items if v["name"] == "well-known")[
        "configMap"
    ]["items"]
    assert json.loads(files["config.json"])["default_federate"] is False


def test_no_secret_in_the_config_map(fr):
    hs = homeserver(fr)
    assert "password" not in hs["database"]["args"]
    for key in matrix.RESERVED:
        assert key not in hs
    for o in fr.values():
        if o["kind"] == "Secret":
            pytest.fail("render() must not output Secrets")


def test_secret_files_match_the_declared_secret(fr):
    """Every *_path in homeserver.yaml is a key of the generated Secret synapse-keys, mounted where it points."""
    ctx = fr_context()
    declared = {s.name: s for s in matrix.secrets(ctx)}
    keys = declared["synapse-keys"]
    assert keys.keys == {
        "signing.key": SecretKey("synapse-signing-key"),
        "macaroon_secret_key": SecretKey("random", 64),
        "registration_shared_secret": SecretKey("random", 64),
        "form_secret": SecretKey("random", 64),
    }
    assert keys.namespace == ctx.namespace and keys.component == "matrix"
    assert declared["matrix-postgres"].keys == {"password": SecretKey("random", 32)}

    hs = homeserver(fr)
    [pod] = pod_specs(fr[("Deployment", "synapse")])
    [synapse] = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in synapse["volumeMounts"]}
    options = ("signing_key_path", "macaroon_secret_key_path", "registration_shared_secret_path", "form_secret_path")
    for option in options:
        directory, _, key = hs[option].rpartition("/")
        assert key in keys.keys, option
        assert volumes[mounts[directory]["name"]]["secret"]["secretName"] == "synapse-keys"
    # every Secret a pod references is declared (or, for CNPG/external, created by someone else)
    for o in fr.values():
        for p in pod_specs(o):
            for c in p.get("initContainers", []) + p["containers"]:
                for e in c.get("env", []):
                    ref = e.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        assert ref["key"] in declared[ref["name"]].keys


def test_database_password_reaches_synapse_through_the_init_container(fr):
    [pod] = pod_specs(fr[("Deployment", "synapse")])
    [init] = pod["initContainers"]
    [synapse] = pod["containers"]
    # the password as a file of its Secret, mounted in the init container only (issue 22, item 17)
    assert "env" not in init
    paths = matrix.PATHS
    secret = next(v for v in pod["volumes"] if v["name"] == "database-secret")["secret"]
    assert secret == {"secretName": "matrix-postgres", "items": [{"key": "password", "path": "password"}],
                      "defaultMode": 0o440}
    assert {m["name"]: m["mountPath"] for m in init["volumeMounts"]}["database-secret"] == paths.database_secret
    assert paths.database_password == f"{paths.database_secret}/password"
    assert "database-secret" not in {m["name"] for m in synapse["volumeMounts"]}
    assert init["command"] == ["python3", paths.script, paths.homeserver, paths.database, paths.database_password]
    assert synapse["command"] == [
        "python3", "-m", "synapse.app.homeserver",
        "--config-path", paths.homeserver, "--config-path", paths.database, "--no-secrets-in-config",
    ]
    assert "env" not in synapse
    runtime = next(v for v in pod["volumes"] if v["name"] == "runtime")
    assert runtime["emptyDir"]["medium"] == "Memory"
    assert {m["mountPath"]: m.get("readOnly", False) for m in synapse["volumeMounts"]}[paths.runtime] is True
    assert fr[("ConfigMap", "synapse")]["data"]["write-database-config.py"] == matrix.write_database_script()


def test_cloudnative_pg_database():
    suite = suite_with("four-countries", {"components": {"matrix": {"postgres": {"mode": "cloudnative-pg"}}}})
    objs = objects(fr_context(suite))
    assert ("Cluster", "matrix-postgres") in objs and ("StatefulSet", "matrix-postgres") not in objs
    assert homeserver(objs)["database"]["args"]["host"] == "matrix-postgres-rw"
    [pod] = pod_specs(objs[("Deployment", "synapse")])
    secret = next(v for v in pod["volumes"] if v["name"] == "database-secret")["secret"]
    assert (secret["secretName"], secret["items"]) == ("matrix-postgres-app", [{"key": "password", "path": "password"}])
    assert [s.name for s in matrix.secrets(fr_context(suite))] == ["synapse-keys"]


def test_synapse_deployment(fr):
    deploy = fr[("Deployment", "synapse")]
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}
    # the tenancy NetworkPolicy that lets the ingress controller (and so federation) in selects Synapse by this label
    netpol = next(o for o in tenancy.render(fr_context()) if o["metadata"]["name"] == "allow-to-synapse")
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert netpol["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    [pod] = pod_specs(deploy)
    assert pod["securityContext"]["runAsUser"] == 991
    [c] = pod["containers"]
    assert c["image"] == "ghcr.io/element-hq/synapse:v1.163.2"
    assert c["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8008, "metrics": 9001}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "http"}
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600  # first start runs the migrations
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert mounts[homeserver(fr)["media_store_path"]] == "media"
    media = next(v for v in pod["volumes"] if v["name"] == "media")
    assert media["persistentVolumeClaim"]["claimName"] == "synapse-media"
    pvc = fr[("PersistentVolumeClaim", "synapse-media")]
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert pvc["spec"]["storageClassName"] == "standard"
    svc = fr[("Service", "synapse")]
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"http": 8008, "metrics": 9001}
    assert svc["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"]


def test_config_change_rolls_the_pods(fr):
    suite = suite_with("four-countries", {"components": {"matrix": {"maxUploadSize": "20M"}}})
    other = objects(fr_context(suite))
    key = "sovereignsuite.io/config-hash"
    before = fr[("Deployment", "synapse")]["spec"]["template"]["metadata"]["annotations"][key]
    after = other[("Deployment", "synapse")]["spec"]["template"]["metadata"]["annotations"][key]
    assert before != after
    assert other[("Ingress", "synapse")]["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "20m"


def test_synapse_ingress(fr):
    ing = fr[("Ingress", "synapse")]["spec"]
    assert ing["ingressClassName"] == "nginx"
    assert ing["tls"] == [{"hosts": [f"matrix.{FR_DOMAIN}"], "secretName": f"matrix.{FR_DOMAIN}-tls"}]
    [rule] = ing["rules"]
    assert rule["host"] == f"matrix.{FR_DOMAIN}"
    assert [(p["path"], p["pathType"], p["backend"]["service"]["name"]) for p in rule["http"]["paths"]] == [
        ("/_matrix", "Prefix", "synapse"),
        ("/_synapse/client", "Prefix", "synapse"),
    ]


# ---- Element Web and the well-known files ------------------------------------------------------

def test_element_config(fr):
    config = json.loads(element_files(fr)["config.json"])
    assert config["default_server_config"] == {
        "m.homeserver": {"base_url": f"https://matrix.{FR_DOMAIN}", "server_name": FR_DOMAIN}
    }
    assert config["jitsi"] == {"preferred_domain": f"meet.{FR_DOMAIN}"}
    assert config["disable_guests"] is True
    assert config["brand"] == "Sovereign Suite"


def test_element_without_jitsi_for_one_tenant():
    suite = with_tenant_override("two-countries", 1, {"jitsi": {"enabled": False}})
    fr_ctx, de_ctx = contexts("two-countries", suite)
    assert "jitsi" in json.loads(element_files(objects(fr_ctx))["config.json"])
    assert "jitsi" not in json.loads(element_files(objects(de_ctx))["config.json"])


def test_element_deployment(fr):
    deploy = fr[("Deployment", "element-web")]
    assert deploy["spec"]["replicas"] == 2
    [pod] = pod_specs(deploy)
    [c] = pod["containers"]
    assert c["image"] == "ghcr.io/element-hq/element-web:v1.11.110"
    assert pod["securityContext"]["runAsUser"] == 101
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["ELEMENT_WEB_PORT"] == "8080"
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/app/config.json"]["subPath"] == "config.json"
    assert mounts["/etc/nginx/conf.d/default.conf"]["subPath"] == "default.conf"
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path in ("/tmp", "/var/cache/nginx"):
        assert "emptyDir" in volumes[mounts[path]["name"]]
    nginx = element_files(fr)["default.conf"]
    assert "listen 8080;" in nginx
    assert f'alias "{matrix.WELL_KNOWN_DIR}/";' in nginx
    assert mounts[matrix.WELL_KNOWN_DIR]["name"] == "well-known"
    assert volumes["well-known"]["configMap"]["items"] == [
        {"key": "matrix-client", "path": "client"},
        {"key": "matrix-server", "path": "server"},
    ]
    pdb = fr[("PodDisruptionBudget", "element-web")]
    assert pdb["spec"]["selector"]["matchLabels"] == deploy["spec"]["selector"]["matchLabels"]
    ing = fr[("Ingress", "element-web")]["spec"]
    assert ing["rules"][0]["host"] == f"chat.{FR_DOMAIN}"
    assert ing["tls"][0]["hosts"] == [f"chat.{FR_DOMAIN}"]


def test_no_pdb_for_a_single_element_replica():
    suite = suite_with("four-countries", {"components": {"matrix": {"elementReplicas": 1}}})
    objs = objects(fr_context(suite))
    assert ("PodDisruptionBudget", "element-web") not in objs
    assert objs[("Deployment", "element-web")]["spec"]["replicas"] == 1


def test_well_known(fr):
    files = element_files(fr)
    assert json.loads(files["matrix-server"]) == {"m.server": f"matrix.{FR_DOMAIN}:443"}
    assert json.loads(files["matrix-client"]) == {"m.homeserver": {"base_url": f"https://matrix.{FR_DOMAIN}"}}

    ing = fr[("Ingress", "matrix-well-known")]["spec"]
    [rule] = ing["rules"]
    assert rule["host"] == FR_DOMAIN
    [path] = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/.well-known/matrix", "Prefix")
    assert path["backend"]["service"] == {"name": "element-web", "port": {"name": "http"}}
    assert ing["tls"] == [{"hosts": [FR_DOMAIN], "secretName": f"{FR_DOMAIN}-tls"}]


# ---- extraConfig ---------------------------------------------------------------------------------

def test_extra_config_is_merged_and_may_replace_defaults():
    extra = {"presence": {"enabled": False}, "trusted_key_servers": [{"server_name": "de.workplace.example.eu"}]}
    suite = suite_with("four-countries", {"components": {"matrix": {"extraConfig": extra}}})
    hs = homeserver(objects(fr_context(suite)))
    assert hs["presence"] == {"enabled": False}
    assert hs["trusted_key_servers"] == [{"server_name": "de.workplace.example.eu"}]
    assert hs["server_name"] == FR_DOMAIN


@pytest.mark.parametrize("key", ["server_name", "database", "listeners", "federation_domain_whitelist", "form_secret"])
def test_extra_config_cannot_override_owned_keys(key):
    suite = suite_with("four-countries", {"components": {"matrix": {"extraConfig": {key: "x"}}}})
    with pytest.raises(InputError) as err:
        matrix.render(fr_context(suite))
    assert [p.path for p in err.value.problems] == [f"spec.components.matrix.extraConfig.{key}"]


def test_tenant_extra_config_clash_names_the_tenant_field():
    suite = with_tenant_override("four-countries", 2, {"matrix": {"extraConfig": {"public_baseurl": "https://x/"}}})
    lu = contexts(suite=suite)[2]
    with pytest.raises(InputError) as err:
        matrix.render(lu)
    assert [p.path for p in err.value.problems] == ["spec.tenants[2].components.matrix.extraConfig.public_baseurl"]


# ---- determinism ---------------------------------------------------------------------------------

def test_deterministic():
    for a, b in zip(contexts(), contexts()):
        assert matrix.render(a) == matrix.render(b)
        assert yaml.safe_dump(matrix.render(a)) == yaml.safe_dump(matrix.render(b))
        assert matrix.secrets(a) == matrix.secrets(b)


# ---- in the whole suite --------------------------------------------------------------------------

def test_suite_applies_the_database_before_synapse():
    result = render_example("four-countries")
    names = [(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]) for o in result.manifests
             if o["metadata"].get("namespace") == "eu-workplace-fr"]
    assert names.index(("StatefulSet", "eu-workplace-fr", "matrix-postgres")) < names.index(
        ("Deployment", "eu-workplace-fr", "synapse")
    )
    assert names.index(("Deployment", "eu-workplace-fr", "synapse")) < names.index(
        ("Ingress", "eu-workplace-fr", "synapse")
    )
    declared = {(s.namespace, s.name) for s in result.secrets}
    for country in ("fr", "de", "lu", "se"):
        assert {(f"eu-workplace-{country}", "synapse-keys"), (f"eu-workplace-{country}", "matrix-postgres")} <= declared


def test_element_follows_encryption_off():
    """With encryptionByDefault off, the client well-known tells Element not to encrypt new rooms by itself
    either; with invite (the default) Element's own default (private rooms and DMs encrypted) agrees."""
    ctx = fr_context(suite_with("four-countries", {"components": {"matrix": {"encryptionByDefault": "off"}}}))
    assert matrix.well_known(ctx)["client"]["io.element.e2ee"] == {"default": False}
    assert matrix.homeserver_config(ctx)["encryption_enabled_by_default_for_room_type"] == "off"
