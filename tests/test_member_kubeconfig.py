"""A member's kubeconfig is read as data only (members/kubeconfig.py): anything that would make the operator run a
program or read a file is refused naming the field, never quoting a value; a data-only kubeconfig gives a client
Configuration built from its fields alone."""

from __future__ import annotations

import base64
import copy
import os

import pytest
import yaml

from sovereign_suite.members import kubeconfig
from sovereign_suite.members.join import member_kubeconfig
from sovereign_suite.members.kubeconfig import KubeconfigRefused, configuration, parse

CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
KEY = base64.b64encode(b"-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n").decode()
TOKEN = "eyJhbGciOiJSUzI1NiJ9.secret-token-value"


def _doc(**user) -> dict:
    return yaml.safe_load(member_kubeconfig("de-c5", "https://10.0.0.1:6443", CA, TOKEN)) if not user else {
        "apiVersion": "v1", "kind": "Config", "current-context": "ctx",
        "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443", "certificate-authority-data": CA}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
    }


def _refused(doc: dict) -> KubeconfigRefused:
    with pytest.raises(KubeconfigRefused) as err:
        parse(yaml.safe_dump(doc).encode())
    assert TOKEN not in str(err.value) and "secret-token" not in str(err.value)
    return err.value


def test_the_kubeconfig_cloud_join_writes_is_accepted_and_builds_a_client_from_its_fields_only():
    creds = parse(yaml.safe_dump(_doc()).encode())
    assert creds.server == "https://10.0.0.1:6443" and creds.token == TOKEN
    assert TOKEN not in repr(creds)
    cfg = configuration(creds, pool_size=7)
    assert cfg.host == "https://10.0.0.1:6443" and cfg.verify_ssl
    assert cfg.authorization() == f"Bearer {TOKEN}"
    assert "BEGIN CERTIFICATE" in cfg.ca_cert_data and cfg.ssl_ca_cert is None  # in memory, no file
    assert cfg.connection_pool_maxsize == 7 and cfg.cert_file is None


@pytest.mark.parametrize("user, field", [
    ({"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "/bin/sh",
               "args": ["-c", "touch /tmp/pwned"]}}, "users[0].user.exec"),
    ({"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}, "users[0].user.tokenFile"),
    ({"auth-provider": {"name": "oidc", "config": {"id-token": "x"}}}, "users[0].user.auth-provider"),
    ({"client-certificate": "/etc/ssl/c.crt", "client-key": "/etc/ssl/c.key"}, "users[0].user.client-certificate"),
    ({"username": "admin", "password": "x"}, "users[0].user.password"),  # keys sorted: password first
    ({"token": TOKEN, "as": "system:admin"}, "users[0].user.as"),
    ({"token": TOKEN, "something-new": True}, "users[0].user.something-new"),
])
def test_a_user_entry_that_would_run_or_read_something_is_refused_naming_the_field(user, field):
    err = _refused(_doc(**user))
    assert err.path == field


@pytest.mark.parametrize("cluster, field", [
    ({"certificate-authority": "/etc/kubernetes/pki/ca.crt"}, "clusters[0].cluster.certificate-authority"),
    ({"proxy-url": "http://evil.example:3128"}, "clusters[0].cluster.proxy-url"),
    ({"insecure-skip-tls-verify": True}, "clusters[0].cluster.insecure-skip-tls-verify"),
    ({"server": "http://10.0.0.1:6443"}, "clusters[0].cluster.server"),
    ({"server": "https://user:pw@10.0.0.1:6443"}, "clusters[0].cluster.server"),
    ({"certificate-authority-data": base64.b64encode(b"not a certificate").decode()},
     "clusters[0].cluster.certificate-authority-data"),
])
def test_a_cluster_entry_that_reads_a_file_or_weakens_tls_is_refused_naming_the_field(cluster, field):
    doc = _doc()
    doc["clusters"][0]["cluster"].update(cluster)
    assert _refused(doc).path == field


def test_an_unused_entry_is_checked_too():
    doc = _doc()
    doc["users"].append({"name": "other", "user": {"exec": {"command": "/bin/true"}}})
    assert _refused(doc).path == "users[1].user.exec"


def test_structure_is_checked():
    doc = _doc()
    doc["current-context"] = "missing"
    assert _refused(doc).path == "current-context"
    doc = _doc()
    doc["preferences"] = {}
    doc["unknown-top"] = 1
    assert _refused(doc).path == "unknown-top"
    assert _refused(_doc(**{"client-certificate-data": CA})).path == "users[0].user.client-key-data"
    with pytest.raises(KubeconfigRefused):
        parse(b"{not: [valid")


def test_a_client_certificate_is_written_to_private_files_of_the_operator():
    creds = parse(yaml.safe_dump(_doc(**{"client-certificate-data": CA, "client-key-data": KEY})).encode())
    cfg = configuration(creds, pool_size=1)
    assert open(cfg.cert_file, "rb").read() == base64.b64decode(CA)
    assert open(cfg.key_file, "rb").read() == base64.b64decode(KEY)
    assert os.stat(cfg.key_file).st_mode & 0o077 == 0
    again = configuration(copy.copy(creds), pool_size=1)
    assert again.key_file == cfg.key_file  # the same credential reuses its file
    assert os.path.dirname(cfg.key_file) == kubeconfig._files_dir
