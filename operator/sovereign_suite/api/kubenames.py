"""Kubernetes' own rules for names, label keys and label values (k8s.io/apimachinery/pkg/util/validation).

Each ``*_problem`` function returns None for a valid value, or the reason it is invalid, phrased to follow a
field path ("spec.domain: <reason>"). The API server applies the same rules to what the operator renders, so
a value that breaks one here would otherwise fail only at apply time, on an object the user never wrote.
"""

from __future__ import annotations

import ipaddress
import re

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
LABEL_VALUE_MAX = 63
LABEL_NAME_MAX = 63  # the name part of a label key (after the optional "<prefix>/")

DNS1123_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# A label value, and the name part of a label key: alphanumerics at both ends, '-', '_', '.' inside.
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# Any ASCII control character (and DEL): never valid in a name, a header, or a line of a config file.
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

# For pydantic ``pattern=``: the same rules as whole-string patterns (the CRD gets them too, so the API
# server rejects what the operator would). Lengths are separate ``max_length`` constraints.
LABEL_VALUE_PATTERN = LABEL_VALUE_RE.pattern
DNS1123_LABEL_PATTERN = DNS1123_LABEL_RE.pattern
DNS1123_SUBDOMAIN_PATTERN = DNS1123_SUBDOMAIN_RE.pattern
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


def dns1123_label_problem(value: str) -> str | None:
    if len(value) > DNS1123_LABEL_MAX:
        return f"{value!r} has {len(value)} characters; a DNS-1123 label has at most {DNS1123_LABEL_MAX}"
    if not DNS1123_LABEL_RE.match(value):
        return f"{value!r} is not a DNS-1123 label (lower-case letters, digits and '-', alphanumeric at both ends)"
    return None


def dns1123_subdomain_problem(value: str) -> str | None:
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        return f"it has {len(value)} characters; a DNS-1123 subdomain has at most {DNS1123_SUBDOMAIN_MAX}"
    if not DNS1123_SUBDOMAIN_RE.match(value):
        return f"{value!r} is not a DNS-1123 subdomain (lower-case labels of letters, digits and '-', joined by dots)"
    for label in value.split("."):
        if len(label) > DNS1123_LABEL_MAX:
            return f"its label {label[:20]!r}... has {len(label)} characters; a DNS label has at most {DNS1123_LABEL_MAX}"
    return None


def label_value_problem(value: str) -> str | None:
    if len(value) > LABEL_VALUE_MAX:
        return f"{value[:20]!r}... has {len(value)} characters; a label value has at most {LABEL_VALUE_MAX}"
    if not LABEL_VALUE_RE.match(value):
        return (f"{value!r} is not a valid label value (letters, digits, '-', '_' and '.', "
                "beginning and ending with a letter or digit)")
    return None


def label_key_problem(value: str) -> str | None:
    """A label key (also a node-selector or toleration key): ``[<DNS subdomain prefix>/]<name>``."""
    prefix, slash, name = value.rpartition("/")
    if slash and (not prefix or dns1123_subdomain_problem(prefix)):
        return f"{value!r} is not a valid label key: its prefix {prefix!r} must be a DNS-1123 subdomain"
    if not name or len(name) > LABEL_NAME_MAX or not LABEL_VALUE_RE.match(name):
        return (f"{value!r} is not a valid label key: the name after the optional '<prefix>/' must have 1 to "
                f"{LABEL_NAME_MAX} letters, digits, '-', '_' or '.', beginning and ending with a letter or digit")
    return None


def host_problem(value: str) -> str | None:
    """A host a client connects to: a DNS name (one label is enough, e.g. a Service name) or an IP address."""
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            return f"{value!r} is not an IPv6 address"
        return None
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    problem = dns1123_subdomain_problem(value)
    return f"host {problem}" if problem else None


def label_value_from(text: str) -> str | None:
    """The longest valid label value ``text`` gives: at most 63 characters, trimmed to end (and begin) with a
    letter or digit; None when nothing is left. For derived values such as an image tag (``v1-`` -> ``v1``)."""
    value = re.sub(r"[^-A-Za-z0-9_.]", "", text)[:LABEL_VALUE_MAX]
    value = value.strip("-_.")
    return value or None
