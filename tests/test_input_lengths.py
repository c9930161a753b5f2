"""Issue 15: names derived from user input (hosts, TLS Secret names, namespaces) are checked against their
Kubernetes limits at validation time, naming the field that makes them too long."""

from __future__ import annotations

import pytest

from sovereign_suite.api.derived_names import derived_names, tenant_hosts
from sovereign_suite.api.validation import InputError, check_suite
from sovereign_suite.render import render_suite

from .helpers import load_example, suite_with


def domain_of_length(length: int) -> str:
    """A valid DNS name of exactly ``length`` characters (labels of at most 63)."""
    labels, left = [], length
    while left > 0:
        size = min(63, left if left <= 63 else left - 2)  # keep room for a dot and a label of at least one
        labels.append("a" * size)
        left -= size + 1
    name = ".".join(labels)
    assert len(name) == length, len(name)
    return name


def clouds():
    return load_example("two-countries")[1]


def test_246_character_domain_is_rejected_naming_spec_domain():
    # meet.fr.<domain> has 254 characters, its TLS Secret 258; matrix.fr.<domain>-tls, the longest, 260
    suite = suite_with("two-countries", {"domain": domain_of_length(246)})
    problems = check_suite(suite, clouds())
    assert [p.path for p in problems] == ["spec.domain"]
    assert "TLS Secret name" in problems[0].message and "it has 260 characters" in problems[0].message
    assert "a DNS-1123 subdomain has at most 253" in problems[0].message
    with pytest.raises(InputError):
        render_suite(suite, clouds())


def test_longest_domain_that_fits_renders_names_within_limits():
    # matrix.<cc>.<domain>-tls: 7 + 3 + 239 + 4 = 253
    suite = suite_with("two-countries", {"domain": domain_of_length(239)})
    assert check_suite(suite, clouds()) == []
    result = render_suite(suite, clouds())
    for obj in result.manifests:
        if obj["kind"] == "Ingress":
            for tls in obj["spec"]["tls"]:
                assert len(tls["secretName"]) <= 253 and all(len(h) <= 253 for h in tls["hosts"])
    assert check_suite(suite_with("two-countries", {"domain": domain_of_length(240)}), clouds())


def test_too_long_tenant_domain_names_the_tenant():
    tenants = [{"country": "FR", "cloud": "fr-secnumcloud", "domain": domain_of_length(245)},
               {"country": "DE", "cloud": "de-c5"}]
    problems = check_suite(suite_with("two-countries", {"tenants": tenants}), clouds())
    assert [p.path for p in problems] == ["spec.tenants[0].domain"]


def test_every_host_prefix_the_renderers_use_is_checked():
    """RenderContext.host refuses a prefix not in TENANT_HOST_PREFIXES, so each rendered host is in this list."""
    suite, cl = load_example("four-countries")
    rendered = {h for o in render_suite(suite, cl).manifests if o["kind"] == "Ingress"
                for rule in o["spec"]["rules"] for h in [rule["host"]]}
    checked = {h for t in suite.spec.tenants for h in tenant_hosts(suite, t)}
    assert rendered <= checked
    names = {d.value for i, t in enumerate(suite.spec.tenants) for d in derived_names(suite, i, t)}
    secrets = {tls["secretName"] for o in render_suite(suite, cl).manifests if o["kind"] == "Ingress"
               for tls in o["spec"]["tls"]}
    assert secrets <= names
