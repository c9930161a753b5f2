"""Issue 15: only the NationalCloud (the platform team) can let a suite use host ports, and only in the range
it declares; nothing a suite editor writes alone lowers the tenant namespace's Pod Security level."""

from __future__ import annotations

import copy

import pytest
import yaml

from sovereign_suite.api.validation import InputError, parse_cloud
from sovereign_suite.components import tenancy
from sovereign_suite.components.base import build_contexts
from sovereign_suite.render import render_suite

from .helpers import CLOUDS, load_example, suite_with, with_host_ports

HOST_PORT = {"components": {"jitsi": {"jvb": {"type": "HostPort"}}}}


def namespace_levels(suite, clouds) -> set[str]:
    return {o["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
            for o in render_suite(suite, clouds).manifests if o["kind"] == "Namespace"}


def test_host_port_on_a_cloud_without_host_ports_is_rejected():
    suite, clouds = suite_with("two-countries", HOST_PORT), load_example("two-countries")[1]
    with pytest.raises(InputError) as err:
        render_suite(suite, clouds)
    assert [str(p) for p in err.value.problems] == [
        "spec.components.jitsi.jvb.type: HostPort is not allowed on NationalCloud 'fr-secnumcloud': a host port needs "
        "the namespace's Pod Security level privileged, which only the cloud's owner can allow (NationalCloud "
        "spec.hostPorts); use NodePort or LoadBalancer",
        "spec.components.jitsi.jvb.type: HostPort is not allowed on NationalCloud 'de-c5': a host port needs "
        "the namespace's Pod Security level privileged, which only the cloud's owner can allow (NationalCloud "
        "spec.hostPorts); use NodePort or LoadBalancer",
    ]


def test_namespace_stays_restricted_when_the_cloud_does_not_allow_host_ports():
    suite, clouds = suite_with("two-countries", HOST_PORT), load_example("two-countries")[1]
    for ctx in build_contexts(suite, clouds):
        assert tenancy.pod_security_level(ctx) == "restricted"


def test_host_port_in_the_clouds_range_renders_a_privileged_namespace():
    suite, clouds = suite_with("two-countries", HOST_PORT), with_host_ports(load_example("two-countries")[1])
    assert namespace_levels(suite, clouds) == {"privileged"}


def test_udp_port_outside_the_clouds_range_is_rejected():
    suite = suite_with("two-countries", {"components": {"jitsi": {"jvb": {"type": "HostPort", "udpPort": 20000}}}})
    with pytest.raises(InputError) as err:
        render_suite(suite, with_host_ports(load_example("two-countries")[1]))
    assert [str(p) for p in err.value.problems][0] == (
        "spec.components.jitsi.jvb.udpPort: 20000 is outside the host ports NationalCloud 'fr-secnumcloud' allows "
        "(10000-10100)")


def test_udp_port_53_is_rejected():
    with pytest.raises(InputError) as err:
        suite_with("two-countries", {"components": {"jitsi": {"jvb": {"type": "HostPort", "udpPort": 53}}}})
    assert [str(p) for p in err.value.problems] == [
        "spec.components.jitsi.jvb.udpPort: Input should be greater than or equal to 1024"]


def test_a_tenant_override_is_named():
    tenants = [{"country": "FR", "cloud": "fr-secnumcloud", "components": HOST_PORT["components"]},
               {"country": "DE", "cloud": "de-c5"}]
    with pytest.raises(InputError) as err:
        render_suite(suite_with("two-countries", {"tenants": tenants}), load_example("two-countries")[1])
    assert [p.path for p in err.value.problems] == ["spec.tenants[0].components.jitsi.jvb.type"]


def test_cloud_host_port_range_must_be_ordered_and_unprivileged():
    doc = copy.deepcopy(next(d for d in yaml.safe_load_all(CLOUDS.read_text()) if d["metadata"]["name"] == "de-c5"))
    doc["spec"]["hostPorts"] = {"min": 20000, "max": 10000}
    with pytest.raises(InputError) as err:
        parse_cloud(doc)
    assert [str(p) for p in err.value.problems] == ["NationalCloud/de-c5.spec.hostPorts: min 20000 is above max 10000"]
    doc["spec"]["hostPorts"] = {"min": 53, "max": 53}
    with pytest.raises(InputError) as err:
        parse_cloud(doc)
    assert [p.path for p in err.value.problems] == ["NationalCloud/de-c5.spec.hostPorts.min",
                                                     "NationalCloud/de-c5.spec.hostPorts.max"]
