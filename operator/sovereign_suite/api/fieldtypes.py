"""Field types for user values that end up in a generated file or a Kubernetes name: each one is validated as
what it really is, so that nothing a user writes can change the structure of the file it lands in (an nginx
``server`` block, a command line, a label selector).

A type is an ``Annotated[str, ...]``: a pydantic ``pattern``/``max_length`` when a regular expression says it
all (the CRD carries the same pattern, so the API server refuses the value too), otherwise an
``AfterValidator`` with a precise message and a looser pattern for the CRD (``json_schema_extra``).
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from .kubenames import (
    CONTROL_RE,
    DNS1123_LABEL_MAX,
    DNS1123_LABEL_PATTERN,
    DNS1123_SUBDOMAIN_MAX,
    DNS1123_SUBDOMAIN_PATTERN,
    LABEL_KEY_PATTERN,
    LABEL_VALUE_MAX,
    LABEL_VALUE_PATTERN,
    host_problem,
    label_key_problem,
)

# ---- Kubernetes names and labels -----------------------------------------------------------------------

LabelValue = Annotated[str, Field(min_length=1, max_length=LABEL_VALUE_MAX, pattern=LABEL_VALUE_PATTERN)]
NamespaceName = Annotated[str, Field(min_length=1, max_length=DNS1123_LABEL_MAX, pattern=DNS1123_LABEL_PATTERN)]
SubdomainName = Annotated[
    str, Field(min_length=1, max_length=DNS1123_SUBDOMAIN_MAX, pattern=DNS1123_SUBDOMAIN_PATTERN)
]
# A namespace name, or a glob of one: '*' any run of characters, '?' one character (NationalCloud suiteNamespaces).
NAMESPACE_GLOB_PATTERN = r"^[a-z0-9*?]([-a-z0-9*?]*[a-z0-9*?])?$"
NamespaceGlob = Annotated[str, Field(min_length=1, max_length=DNS1123_LABEL_MAX, pattern=NAMESPACE_GLOB_PATTERN)]


def _label_key(value: str) -> str:
    problem = label_key_problem(value)
    if problem:
        raise ValueError(problem)
    return value


# 253 (prefix) + "/" + 63 (name)
LabelKey = Annotated[
    str,
    AfterValidator(_label_key),
    Field(min_length=1, max_length=317, json_schema_extra={"pattern": LABEL_KEY_PATTERN}),
]

# ---- network addresses -----------------------------------------------------------------------------------

# The only characters a scheme://host[:port] endpoint can hold. Checked first, so that the message names the
# offending characters (';', '{', whitespace, ...) rather than a consequence of them.
_ENDPOINT_CHARS_RE = re.compile(r"[^A-Za-z0-9.:\[\]/-]")
_URL_PATH_CHARS_RE = re.compile(r"[^A-Za-z0-9._~/%-]")
ENDPOINT_PATTERN = r"^https?://[a-z0-9.:\[\]-]+/?$"
HTTPS_URL_PATTERN = r"^https://[a-z0-9.:\[\]-]+(/[A-Za-z0-9._~/%-]*)?$"


def _host_port(netloc: str) -> str | None:
    """The problem with ``host[:port]``, if any."""
    if not netloc:
        return "has no host"
    host, port = netloc, None
    if netloc.startswith("["):
        end = netloc.find("]")
        host, rest = netloc[: end + 1], netloc[end + 1:]
        if rest:
            if not rest.startswith(":"):
                return f"has something after the host: {rest!r}"
            port = rest[1:]
    elif ":" in netloc:
        host, port = netloc.rsplit(":", 1)
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        return f"port {port!r} is not a number from 1 to 65535"
    problem = host_problem(host)
    return problem


def _url_problem(value: str, schemes: tuple[str, ...], path_allowed: bool) -> str | None:
    if CONTROL_RE.search(value) or " " in value:
        return "contains whitespace or a control character"
    if "@" in value:
        return "must not hold credentials (user:password@host): they would be written into a ConfigMap"
    try:
        parts = urlsplit(value)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL" for an unbalanced '['
        return f"is not a URL: {exc}"
    if parts.scheme not in schemes or not value.startswith(f"{parts.scheme}://"):
        return f"must start with {' or '.join(s + '://' for s in schemes)}"
    if parts.query or parts.fragment or "?" in value or "#" in value:
        return "must not have a query (?) or a fragment (#)"
    if not path_allowed:
        bad = sorted(set(_ENDPOINT_CHARS_RE.findall(value)))
        if bad:
            return f"contains {''.join(bad)!r}: an endpoint is <scheme>://<host>[:<port>] and nothing else"
        if parts.path not in ("", "/"):
            return f"has a path ({parts.path!r}): an endpoint is <scheme>://<host>[:<port>] and nothing else"
    else:
        bad = sorted(set(_URL_PATH_CHARS_RE.findall(parts.path)))
        if bad:
            return f"its path contains {''.join(bad)!r} (allowed: letters, digits and - . _ ~ / %)"
    problem = _host_port(parts.netloc)
    return f"{value!r}: {problem}" if problem else None


def _s3_endpoint(value: str) -> str:
    problem = _url_problem(value, ("https", "http"), path_allowed=False)
    if problem:
        raise ValueError(problem)
    return value


def _https_url(value: str) -> str:
    problem = _url_problem(value, ("https",), path_allowed=True)
    if problem:
        raise ValueError(problem)
    return value


def _host(value: str) -> str:
    problem = host_problem(value)
    if problem:
        raise ValueError(problem)
    return value


Endpoint = Annotated[
    str, AfterValidator(_s3_endpoint), Field(max_length=270, json_schema_extra={"pattern": ENDPOINT_PATTERN})
]
HttpsUrl = Annotated[
    str, AfterValidator(_https_url), Field(max_length=1024, json_schema_extra={"pattern": HTTPS_URL_PATTERN})
]
HostName = Annotated[
    str,
    AfterValidator(_host),
    Field(min_length=1, max_length=DNS1123_SUBDOMAIN_MAX, json_schema_extra={"pattern": r"^[a-z0-9.:\[\]-]+$"}),
]

# An image reference ([registry/]repository[:tag][@digest]) in the characters the OCI distribution grammar
# allows: whitespace or a control character in it would only fail at pull time, on every node.
# The digest is one of the OCI image spec's registered algorithms at its exact length (api/image_pins.py).
IMAGE_PATTERN = (r"^[a-z0-9]([a-z0-9._/:-]*[a-z0-9])?(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
                 r"(@(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}))?$")
ImageRef = Annotated[str, Field(min_length=1, max_length=512, pattern=IMAGE_PATTERN)]

# ---- identities, command lines -----------------------------------------------------------------------------

def _not_system_group(value: str) -> str:
    if value.startswith("system:"):
        raise ValueError(
            f"{value!r} is a Kubernetes system group (system:*): binding tenant-admin to it would give its rights to "
            "every member (system:authenticated is every signed-in user)"
        )
    if CONTROL_RE.search(value):
        raise ValueError("contains a control character")
    return value


AdminGroup = Annotated[
    str,
    AfterValidator(_not_system_group),
    Field(
        min_length=1,
        max_length=253,
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "!self.startsWith('system:')", "message": "adminGroup may not be a system: group"}
            ]
        },
    ),
]

# A Hugging Face repository id (``org/name``) or an absolute path in the model cache. Never a leading '-': the
# value is the first argument of `vllm serve`, where it would be read as a flag.
MODEL_ID_PATTERN = r"^(/[A-Za-z0-9._/-]+|[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?)$"
ModelId = Annotated[str, Field(min_length=1, max_length=256, pattern=MODEL_ID_PATTERN)]
# The name clients ask the gateway for (also the value of --served-model-name and a key of LiteLLM's routes).
SERVED_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"
ServedName = Annotated[str, Field(min_length=1, max_length=128, pattern=SERVED_NAME_PATTERN)]
# One argument of a command line: any printable text (it is one element of a JSON list, never split by a shell).
CommandArg = Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f\x7f]+$")]
# An OAuth 2.0 scope token (RFC 6749, 3.3): scopes are joined with spaces, so a space would split one in two.
SCOPE_PATTERN = r"^[\x21\x23-\x5b\x5d-\x7e]+$"
Scope = Annotated[str, Field(min_length=1, max_length=128, pattern=SCOPE_PATTERN)]
# A PostgreSQL identifier the operator passes to initdb, pg_isready and Synapse (never quoted by them).
PG_IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
PgIdentifier = Annotated[str, Field(min_length=1, max_length=63, pattern=PG_IDENTIFIER_PATTERN)]
# An environment variable name, which is also a valid ConfigMap key.
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
EnvName = Annotated[str, Field(min_length=1, max_length=253, pattern=ENV_NAME_PATTERN)]
# A value the Jitsi images copy, unescaped, into their generated Lua (prosody), HOCON (jvb) and JavaScript
# (web) configuration files: a quote or a backslash would end the string it is pasted into.
JITSI_VALUE_PATTERN = r"""^[^\x00-\x1f\x7f"'`\\]*$"""
JitsiValue = Annotated[str, Field(max_length=4096, pattern=JITSI_VALUE_PATTERN)]

# For validation.problems_from: what a pattern means, in the error message.
PATTERN_MEANINGS = {
    LABEL_VALUE_PATTERN: "a label value (at most 63 letters, digits, '-', '_' or '.', beginning and ending with a "
    "letter or digit)",
    DNS1123_LABEL_PATTERN: "a DNS-1123 label (lower-case letters, digits and '-', alphanumeric at both ends)",
    DNS1123_SUBDOMAIN_PATTERN: "a DNS-1123 subdomain (lower-case labels of letters, digits and '-', joined by dots)",
    NAMESPACE_GLOB_PATTERN: "a namespace name or a glob of one (lower-case letters, digits, '-', and the wildcards "
    "'*' and '?')",
    MODEL_ID_PATTERN: "a Hugging Face model id (org/name) or an absolute path; it may not begin with '-'",
    SERVED_NAME_PATTERN: "a model name (letters, digits and . _ : / -, beginning with a letter or digit)",
    r"^[^\x00-\x1f\x7f]+$": "a printable argument (no control characters)",
    SCOPE_PATTERN: "an OAuth scope token (printable ASCII without spaces, '\"' or '\\')",
    PG_IDENTIFIER_PATTERN: "a PostgreSQL identifier (letters, digits and '_', not beginning with a digit)",
    ENV_NAME_PATTERN: "a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
    IMAGE_PATTERN: "an image reference ([registry/]repository[:tag][@sha256:<64 hex digits>], lower-case "
    "repository)",
    JITSI_VALUE_PATTERN: "a value without quotes, backslashes or control characters (the Jitsi images paste it "
    "unescaped into Lua, HOCON and JavaScript files)",
}
