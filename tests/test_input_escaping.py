"""Issue 15: a user value reaches a generated file only after validation as what it is, and through an escaper
for that file's format (tojson in YAML templates, the nginx filter in nginx configurations)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sovereign_suite.api.validation import InputError
from sovereign_suite.components import docs as docs_mod
from sovereign_suite.components.base import build_contexts, nginx_quoted
from sovereign_suite.render import render_suite

from .helpers import load_example, suite_with

COMPONENTS = Path(docs_mod.__file__).resolve().parent.parent
S3 = {"bucket": "docs-media", "credentialsSecretRef": "docs-s3"}


def problems_of(patch: dict) -> list[str]:
    with pytest.raises(InputError) as err:
        suite_with("two-countries", patch)
    return [str(p) for p in err.value.problems]


def s3_problems(endpoint: str) -> list[str]:
    return problems_of({"components": {"docs": {"s3": {**S3, "endpoint": endpoint}}}})


# ---- docs.s3.endpoint -> the media proxy's nginx configuration ------------------------------------------

def test_nginx_injection_through_the_s3_endpoint_is_rejected():
    assert s3_problems("https://s3.example.eu;internal;/x/;}location/{") == [
        "spec.components.docs.s3.endpoint: contains ';{}': an endpoint is <scheme>://<host>[:<port>] and nothing else"]


def test_credentials_in_the_s3_endpoint_are_rejected():
    assert s3_problems("https://user:pw@host") == [
        "spec.components.docs.s3.endpoint: must not hold credentials (user:password@host): they would be written into "
        "a ConfigMap"]


@pytest.mark.parametrize("endpoint, problem", [
    ("ftp://s3.example.eu", "must start with https:// or http://"),
    ("https://s3.example.eu/bucket", "has a path ('/bucket'): an endpoint is <scheme>://<host>[:<port>] and nothing else"),
    ("https://s3.example.eu?x=1", "must not have a query (?) or a fragment (#)"),
    ("https://s3.example.eu:99999", "'https://s3.example.eu:99999': port '99999' is not a number from 1 to 65535"),
    ("https://S3.example.eu", "'https://S3.example.eu': host 'S3.example.eu' is not a DNS-1123 subdomain (lower-case "
                              "labels of letters, digits and '-', joined by dots)"),
    ("https://s3.example.eu\nx", "contains whitespace or a control character"),
])
def test_s3_endpoint_is_scheme_host_and_port_only(endpoint, problem):
    assert s3_problems(endpoint) == [f"spec.components.docs.s3.endpoint: {problem}"]


@pytest.mark.parametrize("endpoint", ["https://s3.example.eu", "http://minio:9000", "https://10.0.0.5:9000/",
                                      "http://[2001:db8::1]:9000"])
def test_s3_endpoints_that_stay_valid(endpoint):
    suite = suite_with("two-countries", {"components": {"docs": {"s3": {**S3, "endpoint": endpoint}}}})
    assert suite.spec.components.docs.s3.endpoint == endpoint


def test_oidc_issuer_with_credentials_or_a_query_is_rejected():
    oidc = {"clientId": "suite", "clientSecretRef": {"name": "oidc", "key": "secret"}}
    assert problems_of({"identity": {"oidc": {**oidc, "issuer": "https://u:p@id.example.eu/realms/x"}}})[0].startswith(
        "spec.identity.oidc.issuer: must not hold credentials")
    assert problems_of({"identity": {"oidc": {**oidc, "issuer": "https://id.example.eu/realms/x;y"}}}) == [
        "spec.identity.oidc.issuer: its path contains ';' (allowed: letters, digits and - . _ ~ / %)"]


def test_oidc_scope_with_a_space_is_rejected():
    oidc = {"issuer": "https://id.example.eu/realms/x", "clientId": "suite",
            "clientSecretRef": {"name": "oidc", "key": "secret"}, "scopes": ["openid", "email profile"]}
    assert problems_of({"identity": {"oidc": oidc}})[0].startswith("spec.identity.oidc.scopes[1]: 'email profile' is "
                                                                   "not an OAuth scope token")


def test_advertised_address_must_be_an_ip_or_a_host_name():
    problems = problems_of({"components": {"jitsi": {"jvb": {"advertisedAddress": "198.51.100.7,evil\"}"}}}})
    assert [p.split(":")[0] for p in problems] == ["spec.components.jitsi.jvb.advertisedAddress"]


def test_external_postgres_host_and_user_are_validated():
    pg = {"mode": "external", "host": "db.example.eu -c", "user": "-h evil",
          "passwordSecretRef": {"name": "db", "key": "password"}}
    problems = problems_of({"components": {"matrix": {"postgres": pg}}})
    assert [p.split(":")[0] for p in problems] == ["spec.components.matrix.postgres.host",
                                                   "spec.components.matrix.postgres.user"]


def test_nginx_filter_quotes_and_refuses_what_it_cannot_quote():
    assert nginx_quoted('a;b{c}"d\\') == 'a;b{c}\\"d\\\\'
    for bad in ("$host", "a\nb"):
        with pytest.raises(ValueError):
            nginx_quoted(bad)


def test_media_proxy_writes_the_endpoint_only_inside_quotes():
    suite = suite_with("two-countries", {"components": {"docs": {"s3": {**S3, "endpoint": "http://minio:9000"}}}})
    _, clouds = load_example("two-countries")
    conf = docs_mod.media_nginx_conf(build_contexts(suite, clouds)[0])
    assert 'proxy_pass "http://minio:9000/docs-media/";' in conf
    assert 'proxy_set_header Host "minio:9000";' in conf


# ---- YAML: no user value without tojson -----------------------------------------------------------------

@pytest.mark.parametrize("namespace", ["123", "1e3", "0x1f", "null", "true", "0o17"])
def test_ingress_namespace_stays_a_string(namespace):
    suite = suite_with("two-countries", {"ingressNamespace": namespace})
    _, clouds = load_example("two-countries")
    policy = next(o for o in render_suite(suite, clouds).manifests
                  if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "allow-to-synapse")
    selector = policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
    assert selector == {"kubernetes.io/metadata.name": namespace}


def test_ingress_namespace_with_a_dot_is_rejected():
    # a namespace name is a DNS label: the old ObjectName type accepted subdomains
    assert problems_of({"ingressNamespace": "ingress.nginx"})[0].startswith("spec.ingressNamespace: 'ingress.nginx'")


# Expressions a YAML template may print without tojson: integers (ports, replica counts, probe timings) and
# calls of the templates' own macros. Everything else is a string and must go through tojson.
RAW_OK = re.compile(
    r"^(\w+\(.*\)"  # macro call
    r"|(\w+\.)?(\w+_)?(port|replicas|instances|period|threshold|concurrency)"
    r")$"
)
EXPRESSION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")


def _templates(suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in COMPONENTS.glob("*/templates/*.j2") if p.name.endswith(suffixes))


@pytest.mark.parametrize("path", _templates((".yaml.j2", "_pod.j2")), ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_yaml_templates_quote_every_string(path):
    raw = [e for e in EXPRESSION.findall(path.read_text()) if not e.endswith("| tojson") and not RAW_OK.match(e)]
    assert not raw, f"{path.name}: printed without tojson: {raw}"


@pytest.mark.parametrize("path", _templates((".conf.j2",)), ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_nginx_templates_quote_every_string(path):
    text = path.read_text()
    assert EXPRESSION.search(text), "no expression: nothing to check"
    for line in text.splitlines():
        for expr in EXPRESSION.findall(line):
            if RAW_OK.match(expr):
                continue
            assert expr.endswith("| nginx"), f"{path.name}: {line.strip()!r} prints {expr!r} without the nginx filter"
            assert re.search(r'"[^"]*\{\{\s*' + re.escape(expr) + r'\s*\}\}[^"]*"', line), (
                f"{path.name}: {line.strip()!r}: the nginx filter's output must stand inside double quotes")
