"""Image references: the registry part, and rewriting it to a country's own registry (NationalCloud
spec.imageRegistry). Follows the reference grammar of distribution/reference (normalize.go): the first path
component is a registry when it holds a "." or a ":" or is "localhost"; otherwise the image is on docker.io, and
a one-component path there is under "library/"."""

from __future__ import annotations

import re
from typing import Any

DEFAULT_REGISTRY = "docker.io"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# host[:port][/path]: a DNS name or an IPv4 address, an optional port, optional path components
REGISTRY_PATTERN = rf"^{_LABEL}(?:\.{_LABEL})*(?::[0-9]{{1,5}})?(?:/{_PATH_COMPONENT})*$"


def registry_problem(value: str) -> str | None:
    """Why ``value`` is not a registry host[:port][/path] (None when it is)."""
    if len(value) > 255:
        return "is longer than 255 characters"
    if not re.match(REGISTRY_PATTERN, value):
        return ("must be a registry host[:port][/path] in lower case, e.g. registry.example.fr or "
                "mirror.example.fr:5000/suite (no scheme, no tag, no trailing slash)")
    port = re.search(r":([0-9]+)", value)
    if port and not 1 <= int(port.group(1)) <= 65535:
        return "has a port outside 1-65535"
    return None


def split(image: str) -> tuple[str, str, str]:
    """(registry, repository path, ":tag" and/or "@digest" as written) of an image reference."""
    name, at, digest = image.partition("@")
    tag = ""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, tag = name.rpartition(":")
        tag = ":" + tag
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = DEFAULT_REGISTRY, name
        if "/" not in path:
            path = f"library/{path}"
    return registry, path, tag + (at + digest if at else "")


def rewrite(image: str, registry: str | None) -> str:
    """``image`` from ``registry`` instead of its own (tag and digest kept); unchanged without a registry."""
    if not registry:
        return image
    _, path, suffix = split(image)
    return f"{registry}/{path}{suffix}"


def _pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec") or {}
    kind = obj.get("kind")
    if kind == "Pod":
        return [spec]
    if kind == "CronJob":
        return [((spec.get("jobTemplate") or {}).get("spec") or {}).get("template", {}).get("spec") or {}]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"):
        return [(spec.get("template") or {}).get("spec") or {}]
    return []


def rewrite_objects(objects: list[dict[str, Any]], registry: str | None) -> list[dict[str, Any]]:
    """Every container image of the pods these objects run, from ``registry`` (in place; returns ``objects``)."""
    if registry:
        for obj in objects:
            for pod in _pod_specs(obj):
                for key in ("initContainers", "containers", "ephemeralContainers"):
                    for container in pod.get(key) or []:
                        if container.get("image"):
                            container["image"] = rewrite(container["image"], registry)
    return objects
