"""The release catalogue: the suite's releases (api/releases.yaml), each fixing every component's image (its pins
in api/image_pins.py), and what the operator must know to move a tenant between them (Synapse's schema versions,
the embedded PostgreSQL's major, releases an upgrade must stop at).

A suite names a release (``spec.release``, a tenant may override it: ``spec.tenants[].release``); absent, the
current one. An image field a user sets (``spec.components.matrix.image``...) overrides the release's pin for that
component only. Pure: the catalogue is read once from the package's data file.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .image_pins import release_pins

DATA = Path(__file__).with_name("releases.yaml")

# Each image field of spec.components (wire names, a path under components) and the pin it defaults to.
IMAGE_FIELDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("matrix", "image"), "synapse"),
    (("matrix", "elementImage"), "element-web"),
    (("matrix", "redisImage"), "synapse-redis"),
    (("matrix", "routerImage"), "synapse-router"),
    (("matrix", "postgres", "image"), "postgres"),
    (("jitsi", "webImage"), "jitsi-web"),
    (("jitsi", "prosodyImage"), "jitsi-prosody"),
    (("jitsi", "jicofoImage"), "jitsi-jicofo"),
    (("jitsi", "jvbImage"), "jitsi-jvb"),
    (("docs", "backendImage"), "docs-backend"),
    (("docs", "frontendImage"), "docs-frontend"),
    (("docs", "yProviderImage"), "docs-y-provider"),
    (("docs", "redisImage"), "redis"),
    (("docs", "postgres", "image"), "postgres"),
    (("llm", "image"), "vllm"),
    (("llm", "gateway", "image"), "litellm"),
)
_NAME_RE = re.compile(r"^[0-9]{4}\.[0-9]{2}$")


@dataclass(frozen=True)
class SynapseSchema:
    schema_version: int  # SCHEMA_VERSION: what it migrates a database to
    compat_version: int  # SCHEMA_COMPAT_VERSION: the oldest SCHEMA_VERSION that may run on what it leaves


@dataclass(frozen=True)
class Release:
    name: str
    synapse: SynapseSchema
    postgres_major: int
    requires_stepping_through: bool
    images: dict[str, str]  # pin name -> rendered reference


@dataclass(frozen=True)
class Catalogue:
    releases: tuple[Release, ...]  # oldest first

    @property
    def current(self) -> Release:
        return self.releases[-1]

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.releases]

    def release(self, name: str | None) -> Release:
        """``name``'s release (None: the current one); KeyError if unknown."""
        if name is None:
            return self.current
        for r in self.releases:
            if r.name == name:
                return r
        raise KeyError(name)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def by_synapse_image(self, image: str) -> Release | None:
        """The release whose Synapse pin is ``image`` (the first; None when no release pins it)."""
        return next((r for r in self.releases if r.images["synapse"] == image), None)


def parse(doc: dict[str, Any]) -> Catalogue:
    """The catalogue from the data file's document; ValueError for a malformed one (checked by the unit tests)."""
    out = []
    for i, r in enumerate(doc.get("releases") or []):
        name = str(r["name"])
        if not _NAME_RE.match(name):
            raise ValueError(f"releases[{i}].name {name!r}: expected YYYY.MM")
        syn = r["synapse"]
        schema = SynapseSchema(int(syn["schemaVersion"]), int(syn["compatVersion"]))
        if schema.compat_version > schema.schema_version:
            raise ValueError(f"release {name}: compatVersion above schemaVersion")
        images = {k: p.ref for k, p in release_pins(name).items()}
        out.append(Release(name, schema, int(r["postgresMajor"]), bool(r.get("requiresSteppingThrough")), images))
    if not out:
        raise ValueError("no release")
    names = [r.name for r in out]
    if names != sorted(set(names)):
        raise ValueError(f"releases must be unique and oldest first: {names}")
    for a, b in zip(out, out[1:]):
        if b.synapse.schema_version < a.synapse.schema_version:
            raise ValueError(f"release {b.name}: a Synapse schema older than {a.name}'s")
    return Catalogue(tuple(out))


@functools.cache
def catalogue() -> Catalogue:
    return parse(yaml.safe_load(DATA.read_text()))


def _get(doc: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def _set(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        doc = doc.setdefault(key, {})
    doc[path[-1]] = value


def explicit_images(components: Any) -> dict[str, Any]:
    """The image fields a parsed Components model got from its document (not from a default), in wire form."""
    from pydantic.alias_generators import to_snake

    out: dict[str, Any] = {}
    for path, _ in IMAGE_FIELDS:
        model, found = components, True
        for key in path:
            attr = to_snake(key)
            if attr not in getattr(model, "model_fields_set", ()):
                found = False
                break
            model = getattr(model, attr)
        if found:
            _set(out, path, model)
    return out


def release_images(components: dict[str, Any], explicit: list[dict[str, Any]], release: Release) -> dict[str, Any]:
    """``components`` (wire form) with each image field that none of ``explicit`` (the user's own documents,
    suite then tenant) sets taken from ``release``'s pins."""
    out = components
    for path, pin in IMAGE_FIELDS:
        if any(_get(doc, path) is not None for doc in explicit):
            continue
        if _get(components, path[:-1]) is None:
            continue  # a part the components do not have (e.g. the LLM gateway not configured)
        if _get(components, path) != release.images[pin]:
            _set(out, path, release.images[pin])
    return out
