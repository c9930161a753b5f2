"""The tenant's TLS Secret: which servers get a certificate (components/tls.py) and how the values are made once
and filled in later without regenerating a stored one (tlsgen.py, secretgen.missing_keys)."""

from __future__ import annotations

import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sovereign_suite.components import tls
from sovereign_suite.components.base import build_contexts
from sovereign_suite.secretgen import missing_keys
from sovereign_suite.tlsgen import TlsStateError, new_ca

from .helpers import load_example, suite_with


def ctx_of(patch=None):
    suite, clouds = load_example("four-countries")
    if patch:
        suite = suite_with("four-countries", patch)
    return build_contexts(suite, clouds)[0]


def cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def test_servers_and_names_of_the_example_tenant():
    ctx = ctx_of()
    assert tls.servers(ctx) == ["docs-postgres", "docs-redis", "matrix-postgres"]
    spec = tls.secret_spec(ctx)
    assert (spec.name, spec.namespace, spec.component) == ("tenant-tls", "eu-workplace-fr", "tenancy")
    assert set(spec.keys) == {"ca.crt", "ca.key", "docs-postgres.crt", "docs-postgres.key", "docs-redis.crt",
                              "docs-redis.key", "matrix-postgres.crt", "matrix-postgres.key"}
    assert spec.keys["matrix-postgres.crt"].hosts == (
        "matrix-postgres", "matrix-postgres.eu-workplace-fr", "matrix-postgres.eu-workplace-fr.svc",
        "matrix-postgres.eu-workplace-fr.svc.cluster.local", "localhost", "127.0.0.1")


@pytest.mark.parametrize("patch, expected", [
    ({"components": {"matrix": {"postgres": {"mode": "cloudnative-pg"}}}}, ["docs-postgres", "docs-redis"]),
    ({"components": {"docs": {"enabled": False}}}, ["matrix-postgres"]),
    ({"components": {"docs": {"enabled": False}, "matrix": {"enabled": False}}}, []),
])
def test_servers_follow_the_components(patch, expected):
    ctx = ctx_of(patch)
    assert tls.servers(ctx) == expected
    assert (tls.secret_spec(ctx) is None) == (not expected)


def test_generated_ca_and_server_certificates_verify():
    spec = tls.secret_spec(ctx_of())
    values = missing_keys(spec, None)
    assert set(values) == set(spec.keys)
    ca = cert(values["ca.crt"])
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.subject.rfc4514_string() == "CN=eu-workplace FR tenant CA"
    ca_key = serialization.load_pem_private_key(values["ca.key"].encode(), None)
    assert ca_key.public_key().public_numbers() == ca.public_key().public_numbers()
    for server in tls.servers(ctx_of()):
        c = cert(values[f"{server}.crt"])
        c.verify_directly_issued_by(ca)  # raises if the CA did not sign it
        san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName)[0] == server
        assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
        assert c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
        key = serialization.load_pem_private_key(values[f"{server}.key"].encode(), None)
        assert key.public_key().public_numbers() == c.public_key().public_numbers()
        assert values[f"{server}.key"].startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, what postgres reads
        assert c.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc) > datetime.timedelta(days=3000)
    # two servers, two keys
    assert values["docs-postgres.key"] != values["matrix-postgres.key"]


def test_a_server_added_later_is_signed_by_the_stored_ca_and_nothing_is_regenerated():
    before = missing_keys(tls.secret_spec(ctx_of({"components": {"docs": {"enabled": False}}})), None)
    assert set(before) == {"ca.crt", "ca.key", "matrix-postgres.crt", "matrix-postgres.key"}
    added = missing_keys(tls.secret_spec(ctx_of()), before)
    assert set(added) == {"docs-postgres.crt", "docs-postgres.key", "docs-redis.crt", "docs-redis.key"}
    for server in ("docs-postgres", "docs-redis"):
        cert(added[f"{server}.crt"]).verify_directly_issued_by(cert(before["ca.crt"]))
    assert missing_keys(tls.secret_spec(ctx_of()), {**before, **added}) == {}


@pytest.mark.parametrize("drop", [("ca.key",), ("ca.crt", "ca.key"), ("matrix-postgres.key",)])
def test_half_a_stored_pair_is_refused_not_overwritten(drop):
    spec = tls.secret_spec(ctx_of())
    stored = missing_keys(spec, None)
    for key in drop:
        del stored[key]
    with pytest.raises(TlsStateError, match="delete the Secret"):
        missing_keys(spec, stored)


def test_a_certificate_of_another_ca_does_not_verify():
    values = missing_keys(tls.secret_spec(ctx_of()), None)
    with pytest.raises(Exception):
        cert(values["matrix-postgres.crt"]).verify_directly_issued_by(cert(new_ca("other")[0]))


def test_pods_mount_only_what_they_need():
    server = tls.server_volume("tls", "docs-redis")
    assert [i["key"] for i in server["secret"]["items"]] == ["ca.crt", "docs-redis.crt", "docs-redis.key"]
    assert server["secret"]["defaultMode"] == 0o440
    client = tls.ca_volume("tls-ca")
    assert client["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]  # never ca.key


def test_synapse_workers_add_their_redis_server_and_client_pair_to_the_stored_secret():
    """Turning workers on adds synapse-redis (server) and synapse-redis-client (client: clientAuth only, never
    serverAuth) to an existing tenant-tls, signed by its stored CA; nothing else is regenerated."""
    before = missing_keys(tls.secret_spec(ctx_of()), None)
    workers = ctx_of({"components": {"matrix": {"workers": {"size": "small"}}}})
    assert tls.servers(workers) == ["docs-postgres", "docs-redis", "matrix-postgres", "synapse-redis"]
    assert tls.clients(workers) == ["synapse-redis-client"] and tls.clients(ctx_of()) == []
    added = missing_keys(tls.secret_spec(workers), before)
    assert set(added) == {"synapse-redis.crt", "synapse-redis.key", "synapse-redis-client.crt",
                          "synapse-redis-client.key"}
    usage = {}
    for name in ("synapse-redis", "synapse-redis-client"):
        c = cert(added[f"{name}.crt"])
        c.verify_directly_issued_by(cert(before["ca.crt"]))
        usage[name] = list(c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert usage == {"synapse-redis": [x509.ExtendedKeyUsageOID.SERVER_AUTH],
                     "synapse-redis-client": [x509.ExtendedKeyUsageOID.CLIENT_AUTH]}
    assert f"synapse-redis.{workers.namespace}.svc.cluster.local" in tls.hosts(workers, "synapse-redis")
